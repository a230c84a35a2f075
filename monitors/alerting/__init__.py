"""Alerting: what the rules' verdicts become for people, built on :mod:`monitors.rules` only.

:mod:`~monitors.alerting.alerts` (the typed alert and its lifecycle), :mod:`~monitors.alerting.timeline`
(the alert events a board's settled weeks raise, shared by the live monitor and the backtest),
:mod:`~monitors.alerting.topic_schemas` (the alert and ledger topics' schemas),
:mod:`~monitors.alerting.subscriptions` (who gets which board's alerts) and
:mod:`~monitors.alerting.delivery` (signed webhooks and e-mail, once per subscriber).
"""
