"""The Faust worker: one agent reads the three event topics into event-time board tables.

The agent is thin: skip what the durable state already covers, decode and
validate (``streams/records.py``), apply the board rules
(``streams/board_state.py``), route bad and late events to their topics. State
and its durability are in ``streams/partition_state.py`` (why not Faust tables:
see there). Faust windowed tables are not used either: they expire windows by
wall clock, so a 2015 replay would expire at once; days are explicit keys and
lateness is judged on stream time, never on ``time.time()``.

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

import asyncio
import signal
import threading
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.types import TP
from kafka.partitioner.default import murmur2

from bcfwatch.core.events import InvalidEvent, is_packed, parse_event, parse_wire, unpack
from bcfwatch.core.messages import dead_letter_fields
from bcfwatch.core.nhs_number import redact
from bcfwatch.core.topics import EVENT_TYPES
from bcfwatch.infra.kafka import messages_behind
from bcfwatch.infra.kafka_security import faust_broker_credentials
from bcfwatch.infra.lifecycle import BrokerProbe, GracefulStop, Health, serve_health
from streams import metrics
from streams.board_state import Applied, Outcome, apply_event
from streams.config import WorkerConfig
from streams.partition_state import PartitionStates
from streams.views import board_metrics


def ensure_worker_topics(config: WorkerConfig) -> None:
    """Create the topics a worker reads and writes, if missing (idempotent)."""
    from bcfwatch.core.topics import BOARD_DAYS_TOPIC_CONFIG, STATE_TOPIC_CONFIG
    from bcfwatch.infra.kafka import ensure_topics

    topics = config.topics
    ensure_topics(config.bootstrap, [*topics.events, topics.dead_letter, topics.late_events, topics.held_events],
                  config.partitions)
    ensure_topics(config.bootstrap, [config.state_topic, config.seen_topic], config.partitions, STATE_TOPIC_CONFIG)
    ensure_topics(config.bootstrap, [topics.board_days], config.partitions, BOARD_DAYS_TOPIC_CONFIG)


def board_partition(board: str, partitions: int) -> int:
    """The partition a board's events are on (Kafka's default murmur2 partitioner)."""
    return (murmur2(board.encode()) & 0x7FFFFFFF) % partitions


class CountingApp(faust.App):
    """The Faust app, with one step added to its stop: snapshot (and so acknowledge) what was applied
    before the consumer commits and leaves the group."""

    partition_states: PartitionStates | None = None

    async def on_stop(self) -> None:
        if self.partition_states is not None:
            try:
                await self.partition_states.finish()
            except Exception:  # the restart recovers from the last good snapshot: stop anyway
                self.log.exception("could not take the final snapshot")
        await super().on_stop()


class GracefulWorker(faust.Worker):
    """A Faust worker whose SIGTERM/SIGINT stops gracefully within a bound, and whose second exits at once."""

    def __init__(self, app: CountingApp, *args: Any, stop_timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(app, *args, **kwargs)
        self.graceful = GracefulStop(f"worker {app.conf.id}", stop_timeout, on_request=self._begin_stop)

    def _on_sigterm(self) -> None:
        self.graceful.signalled(signal.SIGTERM)

    def _on_sigint(self) -> None:
        self.graceful.signalled(signal.SIGINT)

    def _begin_stop(self, signum: int) -> None:
        if self.app.partition_states is not None:
            self.app.partition_states.stopping = True  # the agent applies nothing more from now on
        health = getattr(self.app, "health", None)
        if health is not None:
            health.stopping.set()
        self._schedule_shutdown(signal.Signals(signum))

    async def _stop_on_signal(self, signum: signal.Signals) -> None:
        await super()._stop_on_signal(signum)
        self.graceful.done()


def create_app(config: WorkerConfig) -> faust.App:
    app = CountingApp(
        config.app_id,
        broker=f"kafka://{config.bootstrap}",
        broker_credentials=faust_broker_credentials(),
        datadir=str(config.datadir),
        topic_partitions=config.partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        web_host=config.web_host,
        web_port=config.web_port,
        web_bind=config.web_host,
        web_router_enabled=False, web_tables_enabled=False, web_graph_enabled=False,  # no /router, /table
        stream_buffer_maxsize=16_384,
        # A worker killed with SIGKILL leaves the group only when its session times out: keep that short
        # so its partitions move to a live worker within seconds, not a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        # Events are acknowledged only once a snapshot covers them; on stop the last snapshot acknowledges
        # what was applied, and what was fetched but not applied is read again after a restart: Faust need
        # not wait for it (it would wait forever, the agent having stopped applying).
        stream_wait_empty=False,
    )
    topics = config.topics
    lateness_seconds = config.lateness_days * 86_400
    max_ahead_seconds = config.max_ahead_days * 86_400
    events = app.topic(*topics.events, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=config.partitions)
    states = app.service(PartitionStates(config.bootstrap, config.state_topic, config.datadir / "state",
                                         topics.board_days, topics.dead_letter, seen_topic=config.seen_topic,
                                         seen_seal_after=config.seen_seal_after, lateness_seconds=lateness_seconds))
    app.partition_states = states
    probe = BrokerProbe(config.bootstrap, f"worker {config.app_id}")
    health = Health(f"worker {config.app_id}", probe, threading.Event(),
                    live_within=max(60.0, 10 * config.snapshot_seconds),
                    lag=lambda: int(sum(sample.value for sample in metrics.CONSUMER_LAG.collect()[0].samples)))
    app.health = health
    metrics.initialise(config.partitions)

    async def side_output(topic: str, key: bytes | None, value: dict[str, Any]) -> None:
        await states.producer.send(topic, key=key, value=orjson.dumps(value))

    async def report_outcome(state, applied: Applied, message, index: int | None = None,
                             observe: bool = True) -> None:
        """Metrics for every outcome (unless the caller tallies them: ``observe``); late and held events also
        go to their topics (never silently lost)."""
        record, outcome = applied.event, applied.outcome
        if observe:
            metrics.observe_event(record.type, outcome.value, record.occurred_at.timestamp(), message.timestamp)
        if outcome not in (Outcome.LATE, Outcome.HELD):
            return
        clock = state.tables.stream_times.get(f"{record.board}|{record.type}")
        side = {
            "board": record.board, "type": record.type, "event_id": record.event_id,
            "occurred_at": record.occurred_at.isoformat(),
            "stream_time": datetime.fromtimestamp(clock, UTC).isoformat() if clock is not None else None,
            "topic": message.topic, "partition": message.partition, "offset": message.offset,
            **({} if index is None else {"index": index}),  # the event's place in a packed record
        }
        if outcome is Outcome.LATE:
            await side_output(topics.late_events, message.key, {**side, "lateness_days": config.lateness_days})
        else:
            await side_output(topics.held_events, message.key, {
                **side, "max_ahead_days": config.max_ahead_days,
                "reason": "no clock yet, or more than max_ahead_days ahead of the board's clock: held until "
                          "a later event on the same stream corroborates it"})

    @app.agent(events, name="count_events")
    async def count_events(stream):
        async for event in stream.noack().events():
            retry_in = 0.5
            while not states.stopping:  # stopping: left unacknowledged, read again after the restart
                try:
                    async with states.applying:  # a snapshot never sees half an event
                        await count_event(event)
                    break
                except Exception as error:
                    # A crashed agent would skip this event for good (Faust restarts the actor with the next
                    # message, e.g. after a broker outage while loading a partition): keep it, try again. Applying
                    # twice is harmless: the second time it is a duplicate of itself.
                    app.log.error("could not apply %s[%d]@%d (%s); trying again in %.1f s", event.message.topic,
                                  event.message.partition, event.message.offset, error, retry_in)
                    await asyncio.sleep(retry_in)  # a back-off before retrying, not synchronisation
                    retry_in = min(retry_in * 2, 10.0)

    async def count_event(event) -> None:
        message = event.message
        state = await states.get(message.partition)
        if state.already_applied(message.topic, message.offset):
            event.ack()
            return
        if is_packed(message.headers):
            await count_packed(state, event)
            state.applied_event(message.topic, message.offset, event)  # the record's offset covers all of it
            return
        try:
            record = parse_wire(event.value)
        except InvalidEvent as error:
            metrics.count_dead_letter(error.reason)
            await side_output(topics.dead_letter, message.key, dead_letter_fields(
                "worker", error, redact(bytes(event.value).decode("utf-8", "replace")), topic=message.topic,
                partition=message.partition, offset=message.offset))
        else:
            for applied in apply_event(state.tables, record, lateness_seconds, max_ahead_seconds):
                await report_outcome(state, applied, message)
        state.applied_event(message.topic, message.offset, event)

    async def count_packed(state, event) -> None:
        """A packed record (docs/wire-format.md): each element in order through the same contract and rules as
        a single-event record; a bad element is dead-lettered alone (with its index), the rest applied."""
        message = event.message
        try:
            elements = unpack(event.value)
        except InvalidEvent as error:
            await dead_letter_packed(message, error, bytes(event.value).decode("utf-8", "replace"))
            return
        outcomes: dict[tuple[str, str], int] = {}  # metrics once per record, not once per event
        latest: dict[str, float] = {}
        for index, element in enumerate(elements):
            try:
                record = parse_event(element)
            except InvalidEvent as error:
                await dead_letter_packed(message, error, orjson.dumps(element).decode(), index)
                continue
            for applied in apply_event(state.tables, record, lateness_seconds, max_ahead_seconds):
                done = applied.event
                tally = (done.type, applied.outcome.value)
                outcomes[tally] = outcomes.get(tally, 0) + 1
                latest[done.type] = max(latest.get(done.type, 0.0), done.occurred_at.timestamp())
                if applied.outcome in (Outcome.LATE, Outcome.HELD):
                    await report_outcome(state, applied, message, index, observe=False)
        metrics.observe_events(outcomes, latest, message.timestamp)

    async def dead_letter_packed(message, error: InvalidEvent, raw: str, index: int | None = None) -> None:
        metrics.count_dead_letter(error.reason)
        await side_output(topics.dead_letter, message.key, dead_letter_fields(
            "worker", error, redact(raw), topic=message.topic, partition=message.partition, offset=message.offset,
            **({} if index is None else {"index": index}), packed=True))

    @app.timer(interval=config.snapshot_seconds)
    async def snapshot_state() -> None:
        await states.save_dirty()
        health.beat()
        held = dict.fromkeys(EVENT_TYPES, 0)
        for state in list(states.owned.values()):
            for key, entries in state.tables.held_events.items():
                held[key.rsplit("|", 1)[1]] += len(entries)
        for event_type, number in held.items():
            metrics.HELD_EVENTS.labels(event_type).set(number)
        for partition, state in list(states.owned.items()):
            behind = 0
            for topic in topics.events:
                behind += messages_behind(app.consumer.highwater(TP(topic, partition)),
                                          state.applied.get(topic, -1) + 1)
            metrics.CONSUMER_LAG.labels(str(partition)).set(behind)

    @app.task
    async def start_probe() -> None:
        probe.start()

    if config.metrics_port is not None:
        @app.task
        async def serve_metrics() -> None:
            try:
                serve_health(health, config.metrics_port, config.web_host)
            except OSError as error:  # a second worker on the same machine: keep counting, say why
                app.log.error("metrics port %s unavailable (%s): pass --metrics-port", config.metrics_port, error)

    @app.page("/healthz")
    async def liveness(web, request):
        report = health.report()
        return web.json(report, status=200 if report["live"] else 503)

    @app.page("/readyz")
    async def readiness(web, request):
        report = health.report()
        return web.json(report, status=200 if report["ready"] else 503)

    @app.on_partitions_revoked.connect
    async def release_revoked(app: faust.App, revoked: set, **kwargs: Any) -> None:
        await states.release({tp.partition for tp in revoked if tp.topic in topics.events})

    @app.page("/boards/{board}/metrics")
    async def metrics_view(web, request, board: str):
        partition = board_partition(board, config.partitions)
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic in topics.events}
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

    return app
