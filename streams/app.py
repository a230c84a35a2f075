"""The Faust worker: one agent reads the three event topics into event-time board tables.

This module only wires the worker to Faust: the app, its topics, the agent, the snapshot timer, the health and
board pages. What is done with each record is in :class:`streams.event_counter.EventCounter` (no Faust there):
skip what the durable state already covers, decode and validate (``bcfwatch/core/events.py``), apply the board
rules (``streams/board_state.py``), route bad, late and held events to their topics, update the metrics. State
and its durability are in ``streams/partition_state.py`` (why not Faust tables: see there). Faust windowed
tables are not used either: they expire windows by wall clock, so a 2015 replay would expire at once; days are
explicit keys and lateness is judged on stream time, never on ``time.time()``.

Dead-letter and late-event messages are at-least-once side outputs: after a
crash they may repeat, and carry their source topic, partition and offset so a
reader can drop repeats. The tallies in the state are exactly once.

Stopping (:class:`GracefulWorker`): the first SIGTERM or SIGINT stops the agent applying events, snapshots
what it applied (so acknowledges it: ``PartitionStates.finish``), then Faust commits, leaves the group and
the process exits, within the stop timeout (``bcfwatch/lifecycle.py``; a watchdog ends it otherwise, a
second signal at once). Faust's own wait for every fetched message to be acknowledged
(``stream_wait_empty``) is off: fetched events not applied are simply read again after the restart.

Health: ``/healthz`` and ``/readyz`` on the metrics port (with ``/metrics``) and on the web port; the
``bcf_up``, ``bcf_ready``, ``bcf_broker_connected`` gauges; a broker probe logs "disconnected since ...".

The worker's configuration, :class:`WorkerConfig`, is in ``streams/config.py`` (no Faust there, for its
readers); it is imported here too, as before.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from typing import Any

import faust
from faust.tables import TableManager
from faust.types import TP
from kafka.partitioner.default import murmur2

from bcfwatch.infra.kafka import Replication, ensure_topics
from bcfwatch.infra.kafka_security import faust_broker_credentials
from bcfwatch.infra.lifecycle import (
    BrokerProbe,
    GracefulStop,
    Health,
    exit_crashed,
    rate_limit_repeated_lines,
    serve_health,
)
from bcfwatch.infra.memory import FreedMemoryReturn
from streams import metrics
from streams.config import WorkerConfig
from streams.event_counter import EventCounter, held_events_by_type, messages_behind_by_partition
from streams.partition_state import PartitionStates
from streams.views import board_metrics


def ensure_worker_topics(config: WorkerConfig) -> Replication:
    """Create the topics a worker reads and writes, if missing (idempotent), with the configured replication;
    return it (Faust's own topics get the same: :func:`create_app`)."""
    from bcfwatch.core.topics import BOARD_DAYS_TOPIC_CONFIG, STATE_TOPIC_CONFIG

    topics = config.topics
    ensure_topics(config.bootstrap, [*topics.events, topics.dead_letter, topics.late_events, topics.held_events],
                  config.partitions)
    ensure_topics(config.bootstrap, [config.state_topic, config.seen_topic], config.partitions, STATE_TOPIC_CONFIG)
    return ensure_topics(config.bootstrap, [topics.board_days], config.partitions, BOARD_DAYS_TOPIC_CONFIG)


def board_partition(board: str, partitions: int) -> int:
    """The partition a board's events are on (Kafka's default murmur2 partitioner)."""
    return (murmur2(board.encode()) & 0x7FFFFFFF) % partitions


class CountingApp(faust.App):
    """The Faust app, with one step added to its stop: snapshot (and so acknowledge) what was applied
    before the consumer commits and leaves the group; and no life after a crash: an agent or a task that
    crashes ends the process with code 1 (a live process never carries a dead agent; the restart resumes from
    the snapshots, as after a kill -9)."""

    partition_states: PartitionStates | None = None
    health: Health | None = None

    async def on_stop(self) -> None:
        if self.partition_states is not None:
            try:
                await self.partition_states.finish()
            except Exception:  # the restart recovers from the last good snapshot: stop anyway
                self.log.exception("could not take the final snapshot")
        await super().on_stop()

    async def crash(self, reason: BaseException) -> None:
        exit_crashed(f"worker {self.conf.id}", reason)

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
        exit_crashed(f"worker {self.conf.id}: agent {agent.name}", exc)


class TablelessManager(TableManager):
    """Faust's table manager, without the second it waits at start for tables declared late (Faust's
    ``TableManager.on_start`` sleeps 1.0 s before the conductor may subscribe): a worker declares no Faust table
    (its state is ``streams/partition_state.py``'s), so it subscribes at once, and every start and restart is a
    second shorter (the worker log's "Waiting for tables to be registered..." to "Recovery: Starting..." was
    exactly 1.0 s). With a table declared it is Faust's own start, wait included."""

    async def on_start(self) -> None:
        if len(self):
            await super().on_start()
        elif not self.should_stop:
            await self._update_channels()
            await self.recovery.start()


class GracefulWorker(faust.Worker):
    """A Faust worker whose SIGTERM/SIGINT stops gracefully within a bound, and whose second exits at once."""

    def __init__(self, app: CountingApp, *args: Any, stop_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(app, *args, **kwargs)
        self.graceful = GracefulStop(f"worker {app.conf.id}", stop_timeout, on_request=self._begin_stop)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # No start-up spinner: Faust's puts the root logger at DEBUG (for the spinner's own handler), after which
        # every debug line of aiokafka (one per record sent) builds a log record that no handler writes: 3% of
        # the worker's event loop on bulk input (py-spy, bench/RESULTS.md).
        self.spinner = None
        super().on_setup_root_logger(logger, level)
        rate_limit_repeated_lines(logger)  # an outage logs one line per broker per interval, with a count

    def _on_sigterm(self) -> None:
        self.graceful.signalled(signal.SIGTERM)

    def _on_sigint(self) -> None:
        self.graceful.signalled(signal.SIGINT)

    def _begin_stop(self, signum: int) -> None:
        states = getattr(self.app, "partition_states", None)
        if states is not None:
            states.stopping = True  # the agent applies nothing more from now on
        health = getattr(self.app, "health", None)
        if health is not None:
            health.stopping.set()
        self._schedule_shutdown(signal.Signals(signum))

    async def _stop_on_signal(self, signum: signal.Signals) -> None:
        await super()._stop_on_signal(signum)
        self.graceful.done()


class SideOutputs:
    """The counter's ``send`` in the worker: the partition states' snapshot producer (acks=all, idempotent), which
    is started before the agent gets its first partition state (``PartitionStates.get`` waits for it)."""

    def __init__(self, states: PartitionStates) -> None:
        self.states = states

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> None:
        producer = self.states.producer
        assert producer is not None  # PartitionStates.on_start
        await producer.send(topic, key=key, value=value)


STREAM_BUFFER_RECORDS = 256
FETCH_BYTES_PER_PARTITION = 4 * 1024 * 1024


def counting_app(config: WorkerConfig, replication_factor: int = 1) -> CountingApp:
    """The Faust app of a worker, nothing registered on it yet; its internal topics with ``replication_factor``
    copies (:func:`ensure_worker_topics` gives the configured one)."""
    return CountingApp(
        config.app_id,
        broker=f"kafka://{config.bootstrap}",
        broker_credentials=faust_broker_credentials(),
        datadir=str(config.datadir),
        topic_partitions=config.partitions,
        topic_replication_factor=replication_factor,
        consumer_auto_offset_reset="earliest",
        web_host=config.web_host,
        web_port=config.web_port,
        web_bind=config.web_host,
        web_router_enabled=False, web_tables_enabled=False, web_graph_enabled=False,  # no /router, /table
        # Records fetched ahead of the agent, at most (Faust pauses fetching a partition whose buffer is under
        # pressure). A packed record is up to 256 KiB, so this bounds the buffer at 64 MiB (at 16,384 it held most
        # of a national year's records, over 1 GiB, while the worker caught up): still 256 records, seconds of
        # work, ahead of the agent (256 ran as fast as 1,024, both with a 16 MiB fetch: bench/RESULTS.md).
        stream_buffer_maxsize=STREAM_BUFFER_RECORDS,
        # A worker killed with SIGKILL leaves the group only when its session times out: keep that short
        # so its partitions move to a live worker within seconds, not a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # Events are acknowledged only once a snapshot covers them; on stop the last snapshot acknowledges
        # what was applied, and what was fetched but not applied is read again after a restart: Faust need
        # not wait for it (it would wait forever, the agent having stopped applying).
        stream_wait_empty=False,
        # Bytes fetched per partition per request, at most (Faust's default: 1 MiB, four packed records). A
        # partition's next fetch waits for the records of its last to be handed to the agent, so with 1 MiB a
        # partition was read at ~60 records/s whatever the agent's pace: the worker sat idle while the fullest
        # partitions finished (bench/RESULTS.md, issue 25). 4 MiB was as fast as 16 on a national year and held
        # 180 MiB less at the peak: what is fetched and not yet handed over is this much per partition at most.
        consumer_max_fetch_size=FETCH_BYTES_PER_PARTITION,
        TableManager=TablelessManager,
    )


def create_app(config: WorkerConfig, replication_factor: int = 1) -> CountingApp:
    """A worker: one agent hands every record of the event topics to an :class:`EventCounter`; a timer snapshots
    the partition states and reports the backlog; health and the board view are served on the web port."""
    app = counting_app(config, replication_factor)
    topics = config.topics
    events = app.topic(*topics.events, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=config.partitions)
    states = PartitionStates(config.bootstrap, config.state_topic, config.datadir / "state", topics.board_days,
                             topics.dead_letter, seen_topic=config.seen_topic, seen_seal_after=config.seen_seal_after,
                             lateness_seconds=config.lateness_days * 86_400)
    app.service(states)  # type: ignore[arg-type]  # typed for a Service class, an instance is started as well
    app.partition_states = states
    probe = BrokerProbe(config.bootstrap, f"worker {config.app_id}")
    health = Health(f"worker {config.app_id}", probe, threading.Event(),
                    live_within=max(60.0, 10 * config.snapshot_seconds),
                    lag=lambda: int(sum(sample.value for sample in next(iter(metrics.CONSUMER_LAG.collect())).samples)),
                    blockers=lambda: {f"partition {partition} snapshots": failure.describe()  # read by the
                                      for partition, failure in sorted(dict(states.failing).items())})  # web thread
    app.health = health
    metrics.initialise(config.partitions)
    counter = EventCounter(config, states, SideOutputs(states), log=app.log)

    @app.agent(events, name="count_events")
    async def count_events(stream):
        async for event in stream.noack().events():
            await counter.count_until_applied(event)

    freed_memory = FreedMemoryReturn()

    @app.timer(interval=config.snapshot_seconds)
    async def snapshot_state() -> None:
        behind = report_backlog(app, states, topics.events)
        await states.save_dirty(caught_up={partition for partition, number in behind.items() if number == 0})
        # What the records and snapshots freed leaves the RSS (bcfwatch/infra/memory.py): on the loop, at most
        # every 10 s, ~5 ms (~80 ms when it frees most of a GiB), less than a snapshot holds it up.
        freed_memory.tick()
        health.beat()

    serve_worker_health(app, config, probe, health)

    async def release_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        await states.release({tp.partition for tp in revoked if tp.topic in topics.events})

    app.on_partitions_revoked.connect(release_revoked)  # type: ignore[arg-type]  # faust types the sender loosely

    serve_board_metrics(app, config, states)
    return app


def report_backlog(app: faust.App, states: PartitionStates, event_topics: Sequence[str]) -> dict[int, int]:
    """The held-events and consumer-lag gauges, from the partition states as they stand; returns the messages
    behind by owned partition."""
    for event_type, number in held_events_by_type(list(states.owned.values())).items():
        metrics.HELD_EVENTS.labels(event_type).set(number)
    behind = messages_behind_by_partition(dict(states.owned), event_topics,
                                          lambda topic, partition: app.consumer.highwater(TP(topic, partition)))
    for partition, number in behind.items():
        metrics.CONSUMER_LAG.labels(str(partition)).set(number)
    return behind


def serve_worker_health(app: faust.App, config: WorkerConfig, probe: BrokerProbe, health: Health) -> None:
    """The broker probe, ``/healthz`` and ``/readyz`` on the web port, and on the metrics port (with ``/metrics``)
    if there is one."""

    @app.task
    async def start_probe() -> None:
        probe.start()

    metrics_port = config.metrics_port
    if metrics_port is not None:
        @app.task
        async def serve_metrics() -> None:
            try:
                serve_health(health, metrics_port, config.web_host)
            except OSError as error:  # a second worker on the same machine: keep counting, say why
                app.log.error("metrics port %s unavailable (%s): pass --metrics-port", metrics_port, error)

    @app.page("/healthz")
    async def liveness(web, request):
        report = health.report()
        return web.json(report, status=200 if report["live"] else 503)

    @app.page("/readyz")
    async def readiness(web, request):
        report = health.report()
        return web.json(report, status=200 if report["ready"] else 503)


def serve_board_metrics(app: faust.App, config: WorkerConfig, states: PartitionStates) -> None:
    """``/boards/{board}/metrics``: a board's windows from the days this worker holds (404 if it holds none)."""
    event_topics = config.topics.events

    @app.page("/boards/{board}/metrics")
    async def metrics_view(web, request, board: str):
        partition = board_partition(board, config.partitions)
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic in event_topics}
        state = await states.get(partition) if partition in assigned else None
        if state is None:
            return web.json({"error": f"board {board} is not served by this worker (or has no events yet)"},
                            status=404)
        prefix = f"{board}|"
        days = {key[len(prefix):]: value for key, value in state.tables.day_counts.items()
                if key.startswith(prefix)}
        if not days:
            return web.json({"error": f"no events yet for board {board}"}, status=404)
        return web.json(board_metrics(board, days))
