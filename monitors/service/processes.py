"""The long-running `bcfwatch monitor` and `bcfwatch notify` processes.

Each is its loop (:class:`monitors.service.monitor.Monitor`, :class:`monitors.alerting.delivery.Notifier`) with a broker
probe, health (``/metrics``, ``/healthz``, ``/readyz``) and a graceful stop (``bcfwatch/infra/lifecycle.py``);
the CLI parses the options, installs the :class:`GracefulStop`, builds one of these, and prints what it reports.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from bcfwatch.core.plans import BoardPlan
from bcfwatch.core.topics import Topics
from bcfwatch.infra.lifecycle import BrokerProbe, GracefulStop, Health, serve_health
from monitors.alerting.alerts import Alert
from monitors.alerting.delivery import Notifier
from monitors.alerting.subscriptions import Subscriber
from monitors.service.monitor import Monitor
from streams.config import WorkerConfig

MONITOR_LIVE_WITHIN = 120.0  # seconds without a round before the monitor is not live (at least 3 intervals)


class MonitorService:
    """The monitor evaluating every ``interval`` seconds until ``stop`` is requested."""

    def __init__(self, config: WorkerConfig, plans: dict[str, BoardPlan], plan_year_start: date, interval: float,
                 stop: GracefulStop) -> None:
        self.interval = interval
        self.stop = stop
        self.probe = BrokerProbe(config.bootstrap, "monitor").start()
        self.monitor = Monitor(config, plans, plan_year_start)
        self.monitor.stop = stop.requested
        self.health = Health("monitor", self.probe, stop.requested,
                             live_within=max(MONITOR_LIVE_WITHIN, 3 * interval), lag=lambda: self.monitor.live.lag)

    def serve_health(self, port: int, bind_address: str) -> None:
        """Board metrics and /healthz, /readyz on ``bind_address:port``; OSError when the port is taken."""
        serve_health(self.health, port, bind_address)

    def run(self, on_round: Callable[[list[Alert]], None], once: bool = False) -> None:
        """Evaluate until stopped (``once``: one round); ``on_round(alert events)`` after every round."""

        def round_done(events: list[Alert]) -> None:
            self.health.beat()
            on_round(events)

        try:
            self.monitor.run(self.interval, round_done, rounds=1 if once else None)
        finally:
            self.monitor.close()
            self.probe.stop()
        if self.stop.requested.is_set():
            self.stop.done()


class NotifierService:
    """The notifier delivering alerts until ``stop`` is requested."""

    def __init__(self, bootstrap: str, topics: Topics, subscribers: list[Subscriber], stop: GracefulStop) -> None:
        self.stop = stop
        self.probe = BrokerProbe(bootstrap, "notifier").start()
        self.notifier = Notifier(bootstrap, topics, subscribers)
        self.notifier.stop = stop.requested
        self.health = Health("notifier", self.probe, stop.requested, lag=self.notifier.lag)

    def serve_health(self, port: int, bind_address: str) -> None:
        """The notifier's metrics and /healthz, /readyz on ``bind_address:port``; OSError when the port is taken."""
        serve_health(self.health, port, bind_address)

    def run(self, on_delivery: Callable[[Alert, list], None]) -> None:
        """Deliver until stopped; ``on_delivery(alert, [(subscriber, outcome), ...])`` for every alert."""
        try:
            while not self.stop.requested.is_set():
                self.notifier.poll(on_delivery=on_delivery)
                self.health.beat()
        finally:
            self.notifier.close()
            self.probe.stop()
        self.stop.done()
