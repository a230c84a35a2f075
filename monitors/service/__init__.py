"""The running services: the monitor, the notifier and the board metrics they export.

:mod:`~monitors.service.board_days` (the worker's published counts, read into board histories),
:mod:`~monitors.service.monitor` (the monitor's rounds), :mod:`~monitors.service.exporter` (Prometheus
board series) and :mod:`~monitors.service.processes` (the long-running ``bcfwatch monitor`` and
``bcfwatch notify`` processes with health and graceful stops). Built on alerting and rules.
"""
