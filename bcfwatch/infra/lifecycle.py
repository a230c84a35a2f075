"""Graceful stop and health for the long-running services (worker, monitor, notifier).

**Stopping.** The first SIGTERM or SIGINT asks the service to stop: it finishes the message in hand, makes
what it applied durable, commits and exits (0). A watchdog ends the process (exit 1) if that takes longer
than the stop timeout (``--stop-timeout``, ``BCFWATCH_STOP_SECONDS``, default 10 s); a second signal ends it
at once (128 + signal number). Nothing is lost either way: every service restarts from durable state.

**Health.** Each service serves, on its metrics port (loopback unless ``--bind-address`` /
``BCFWATCH_BIND_ADDRESS`` says otherwise), ``/metrics`` (Prometheus), ``/healthz`` (liveness: the service's
loop has beaten recently; 200 or 503) and ``/readyz`` (readiness: live, the broker reachable, started and not
stopping; 200 or 503), each with a JSON body. The metrics ``bcf_up``, ``bcf_ready``,
``bcf_broker_connected``, ``bcf_broker_disconnected_since_timestamp_seconds`` and
``bcf_heartbeat_timestamp_seconds`` say the same to Prometheus (``compose/prometheus/rules.yml``), beside each
service's consumer lag. A :class:`BrokerProbe` checks every couple of seconds that a bootstrap server
accepts a connection; while none does it logs ``broker ... unreachable: disconnected since ...`` (at once,
then every 30 s) and logs again when the broker is back.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest

from bcfwatch.core.settings import current

log = logging.getLogger("bcfwatch.health")


UP = Gauge("bcf_up", "1 while the service runs and is not stopping")
READY = Gauge("bcf_ready", "1 while the service is ready: live, broker reachable, started, not stopping")
BROKER_CONNECTED = Gauge("bcf_broker_connected",
                         "1 if a Kafka bootstrap server accepted a connection at the last probe")
DISCONNECTED_SINCE = Gauge("bcf_broker_disconnected_since_timestamp_seconds",
                           "Since when no bootstrap server has accepted a connection (0 while connected)")
BROKERS_UNREACHABLE = Gauge("bcf_kafka_brokers_unreachable",
                            "Bootstrap servers (brokers of a cluster) that refused a connection at the last probe")
HEARTBEAT = Gauge("bcf_heartbeat_timestamp_seconds", "When the service's main loop last made progress")
CONSUMER_LAG = Gauge("bcf_consumer_lag_messages",
                     "Messages on the service's input topics not yet handled (worker: events not yet applied)")


def stop_seconds() -> float:
    """How long a service may take to stop gracefully before it is ended (``BCFWATCH_STOP_SECONDS``)."""
    return current().stop_seconds


def bind_address() -> str:
    """Where the metrics and health endpoints listen (``BCFWATCH_BIND_ADDRESS``, loopback by default)."""
    return current().bind_address


# -- stopping --------------------------------------------------------------------------------------------
class GracefulStop:
    """First signal: set :attr:`requested` (and call ``on_request``), arm the watchdog; second: exit now."""

    def __init__(self, service: str, timeout: float | None = None,
                 on_request: Callable[[int], None] | None = None) -> None:
        self.service = service
        self.timeout = stop_seconds() if timeout is None else timeout
        self.on_request = on_request
        self.requested = threading.Event()
        self._watchdog: threading.Timer | None = None

    def install(self) -> GracefulStop:
        """Handle SIGTERM and SIGINT with Python signal handlers (the main thread only)."""
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any = None) -> None:
        self.signalled(signum)

    def signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.requested.is_set():
            log.warning("%s: second %s, exiting now", self.service, name)
            _exit(128 + signum)
        self.requested.set()
        log.warning("%s: %s received, finishing the message in hand and stopping (at most %.0f s)",
                    self.service, name, self.timeout)
        UP.set(0)
        READY.set(0)
        self._watchdog = threading.Timer(self.timeout, self._expired)
        self._watchdog.daemon = True
        self._watchdog.start()
        if self.on_request is not None:
            self.on_request(signum)

    def _expired(self) -> None:
        log.error("%s: did not stop within %.0f s, exiting now (it restarts from its durable state)",
                  self.service, self.timeout)
        _exit(1)

    def done(self) -> None:
        """The graceful stop finished: disarm the watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        log.warning("%s: stopped gracefully", self.service)


def exit_crashed(service: str, reason: BaseException) -> None:
    """A part of the service crashed (an agent, a task): exit non-zero now, so that a supervisor restarts it,
    rather than live on without it. Nothing durable is lost: the service resumes from its durable state, as
    after a kill -9."""
    log.critical("%s: crashed (%s: %s); exiting with code 1 so that its supervisor restarts it", service,
                 type(reason).__name__, reason, exc_info=reason)
    _exit(1)


def _exit(code: int) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(code)


# -- logging during an outage -----------------------------------------------------------------------------
REPEAT_LOG_SECONDS = 30.0


class RepeatedLineFilter(logging.Filter):
    """Lets the first of a kind of line through, then at most one per ``interval`` with how many were held back.

    A kind is the logger, the message template and its first argument (Kafka clients put the broker there:
    "Unable connect to node with id %s"), so an outage logs one line per broker per interval, not one per
    connection attempt (an outage of 108 s once wrote 355,000 lines).
    """

    def __init__(self, interval: float = REPEAT_LOG_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[str, str, str], tuple[float, int]] = {}  # kind -> (last let through, held back)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        first = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        kind = (record.name, str(record.msg), str(first))
        now = self.clock()
        with self._lock:
            last, held = self._seen.get(kind, (-math.inf, 0))
            if now - last < self.interval:
                self._seen[kind] = (last, held + 1)
                return False
            self._seen[kind] = (now, 0)
            if len(self._seen) > 10_000:  # kinds are few; never let odd messages grow this without bound
                self._seen = {kind: (now, 0)}
        if held:
            record.msg = f"{record.msg} [{held} more like this in the last {now - last:.0f} s]"
        return True


def rate_limit_repeated_lines(logger: logging.Logger | None = None, interval: float = REPEAT_LOG_SECONDS) -> None:
    """Put one :class:`RepeatedLineFilter` on every handler of ``logger`` (the root logger)."""
    line_filter = RepeatedLineFilter(interval)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(line_filter)


# -- broker connectivity ---------------------------------------------------------------------------------
def servers(bootstrap: str) -> list[str]:
    """The ``host:port`` servers of a bootstrap list."""
    return [server.strip() for server in bootstrap.split(",") if server.strip()]


def server_reachable(server: str, timeout: float = 1.0) -> bool:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def unreachable_servers(bootstrap: str, timeout: float = 1.0) -> list[str]:
    """The bootstrap servers that do not accept a TCP connection now."""
    return [server for server in servers(bootstrap) if not server_reachable(server, timeout)]


def broker_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    """True when any bootstrap server accepts a TCP connection."""
    return any(server_reachable(server, timeout) for server in servers(bootstrap))


class BrokerProbe:
    """Checks the broker every ``interval`` seconds on a daemon thread; keeps the gauges and says when it
    is unreachable."""

    def __init__(self, bootstrap: str, service: str, interval: float = 2.0, repeat_every: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.service = service
        self.interval = interval
        self.repeat_every = repeat_every
        self.connected = True
        self.disconnected_since: datetime | None = None
        self.unreachable: list[str] = []  # bootstrap servers down while others answer (a cluster losing a broker)
        self._last_said = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{service}-broker-probe", daemon=True)

    def start(self) -> BrokerProbe:
        self.check()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> bool:
        lost = unreachable_servers(self.bootstrap)
        self._report_lost_brokers(lost)
        reachable = len(lost) < len(servers(self.bootstrap))
        now = time.monotonic()
        if reachable:
            if not self.connected:
                down = (datetime.now(UTC) - self.disconnected_since).total_seconds() if self.disconnected_since else 0
                log.warning("%s: broker %s reachable again after %.0f s", self.service, self.bootstrap, down)
            self.connected, self.disconnected_since = True, None
            BROKER_CONNECTED.set(1)
            DISCONNECTED_SINCE.set(0)
            return True
        if self.connected:
            self.connected, self.disconnected_since = False, datetime.now(UTC)
            self._last_said = 0.0
            BROKER_CONNECTED.set(0)
            DISCONNECTED_SINCE.set(self.disconnected_since.timestamp())
        if now - self._last_said >= self.repeat_every:
            self._last_said = now
            assert self.disconnected_since is not None  # set whenever connected turns False
            log.error("%s: broker %s unreachable: disconnected since %s", self.service, self.bootstrap,
                      self.disconnected_since.isoformat(timespec="seconds"))
        return False

    def _report_lost_brokers(self, down: list[str]) -> None:
        """A cluster that lost some brokers still serves: say which, once when it changes (not a readiness
        matter; the partitions' new leaders carry on)."""
        BROKERS_UNREACHABLE.set(len(down))
        if down != self.unreachable:
            if down:
                log.warning("%s: broker%s %s unreachable", self.service, "s" if len(down) > 1 else "",
                            ", ".join(down))
            else:
                log.warning("%s: every broker reachable again", self.service)
        self.unreachable = down

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the probe must never take the service down
                log.exception("%s: broker probe failed", self.service)


# -- health ----------------------------------------------------------------------------------------------
class Health:
    """Liveness and readiness of one service; the service calls :meth:`beat` as its loop makes progress."""

    def __init__(self, service: str, probe: BrokerProbe | None, stopping: threading.Event,
                 live_within: float = 60.0, lag: Callable[[], int | None] | None = None,
                 blockers: Callable[[], dict[str, str]] | None = None) -> None:
        """``blockers``: what keeps the service from doing its work now although it runs (e.g. a worker's
        partitions whose snapshots cannot be written), by name; any makes it not ready."""
        self.service = service
        self.blockers = blockers
        self.probe = probe
        self.stopping = stopping
        self.live_within = live_within
        self.lag = lag
        self.started = False
        self.last_beat = time.monotonic()
        self.last_lag: int | None = None
        UP.set(1)
        READY.set_function(lambda: 1 if self.ready() else 0)  # as of the scrape, like /readyz
        HEARTBEAT.set(time.time())

    def beat(self, started: bool = True) -> None:
        """The service's loop made progress (and, with ``started``, it has started)."""
        self.last_beat = time.monotonic()
        self.started = self.started or started
        HEARTBEAT.set(time.time())
        lag = self._lag()  # read on the service's own thread: Kafka clients are not thread-safe
        if lag is not None:
            self.last_lag = lag
            CONSUMER_LAG.set(lag)

    def _lag(self) -> int | None:
        if self.lag is None:
            return None
        try:
            return self.lag()
        except Exception:  # a lag we cannot read now is reported as unknown, never fatal
            return None

    def live(self) -> bool:
        return time.monotonic() - self.last_beat <= self.live_within

    def _blocked(self) -> dict[str, str]:
        if self.blockers is None:
            return {}
        try:
            return self.blockers()
        except Exception as error:  # a blocker that cannot be read is itself a reason not to be ready
            return {"health": f"could not read what blocks the service: {error}"}

    def ready(self) -> bool:
        connected = self.probe is None or self.probe.connected
        return self.live() and connected and self.started and not self.stopping.is_set() and not self._blocked()

    def report(self) -> dict[str, Any]:
        probe = self.probe
        since = probe.disconnected_since if probe is not None else None
        lag = self.last_lag
        return {
            "service": self.service, "live": self.live(), "ready": self.ready(),
            "status": "stopping" if self.stopping.is_set() else "running" if self.started else "starting",
            "broker_connected": probe.connected if probe is not None else None,
            "disconnected_since": since.isoformat(timespec="seconds") if since else None,
            "seconds_since_heartbeat": round(time.monotonic() - self.last_beat, 3),
            "consumer_lag": lag,
            "brokers_unreachable": list(probe.unreachable) if probe is not None else [],
            "not_ready_because": self._blocked(),
        }


class _Handler(BaseHTTPRequestHandler):
    health: Health

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, status, kind = generate_latest(REGISTRY), 200, CONTENT_TYPE_LATEST
        elif path in ("/healthz", "/readyz"):
            report = self.health.report()
            ok = report["live"] if path == "/healthz" else report["ready"]
            body, status, kind = orjson.dumps(report), 200 if ok else 503, "application/json"
        else:
            body, status, kind = b'{"error": "not found: try /metrics, /healthz or /readyz"}', 404, "application/json"
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: scrapes every few seconds would drown the service's own lines


def serve_health(health: Health, port: int, host: str | None = None) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz on ``host:port`` from a daemon thread; returns the server."""
    handler = type("HealthHandler", (_Handler,), {"health": health})
    server = ThreadingHTTPServer((host or bind_address(), port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"{health.service}-health", daemon=True).start()
    return server
