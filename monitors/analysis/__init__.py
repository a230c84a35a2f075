"""Analysis of whole logs and simulated years, beside the running service and built on the same rules.

:mod:`~monitors.analysis.backtest` (the worker's rules and the monitor's alert timeline over a log, with
pandas), :mod:`~monitors.analysis.report` (the HTML report) and :mod:`~monitors.analysis.evaluate` (the
drift rule judged on simulated years).
"""
