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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.types import TP
from kafka.partitioner.default import murmur2
from prometheus_client import start_http_server

from bcfwatch.kafka_security import faust_broker_credentials
from bcfwatch.settings import EVENT_TYPES, Topics, max_ahead_days
from producers.pseudonym import redact
from streams import metrics
from streams.board_state import Applied, Outcome, apply_event
from streams.partition_state import PartitionStates
from streams.records import InvalidEvent, parse_wire
from streams.views import board_metrics


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "bcf"
    partitions: int = 8
    lateness_days: int = 14
    max_ahead_days: int = field(default_factory=max_ahead_days)
    datadir: Path = field(default_factory=lambda: Path(".bcfwatch-worker"))
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    snapshot_seconds: float = 1.0
    metrics_port: int | None = None  # Prometheus /metrics on 127.0.0.1 (None: not served)

    @property
    def app_id(self) -> str:
        return f"bcfwatch-{self.topic_prefix}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def state_topic(self) -> str:
        return f"{self.app_id}-state"


def ensure_worker_topics(config: WorkerConfig) -> None:
    """Create the topics a worker reads and writes, if missing (idempotent)."""
    from bcfwatch.kafka_admin import ensure_topics
    from streams.partition_state import BOARD_DAYS_TOPIC_CONFIG, STATE_TOPIC_CONFIG

    topics = config.topics
    ensure_topics(config.bootstrap, [*topics.events, topics.dead_letter, topics.late_events, topics.held_events],
                  config.partitions)
    ensure_topics(config.bootstrap, [config.state_topic], config.partitions, STATE_TOPIC_CONFIG)
    ensure_topics(config.bootstrap, [topics.board_days], config.partitions, BOARD_DAYS_TOPIC_CONFIG)


def board_partition(board: str, partitions: int) -> int:
    """The partition a board's events are on (Kafka's default murmur2 partitioner)."""
    return (murmur2(board.encode()) & 0x7FFFFFFF) % partitions


def create_app(config: WorkerConfig) -> faust.App:
    app = faust.App(
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
        stream_buffer_maxsize=16_384,
        # A worker killed with SIGKILL leaves the group only when its session times out: keep that short
        # so its partitions move to a live worker within seconds, not a minute.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
    )
    topics = config.topics
    lateness_seconds = config.lateness_days * 86_400
    max_ahead_seconds = config.max_ahead_days * 86_400
    events = app.topic(*topics.events, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=config.partitions)
    states = app.service(PartitionStates(config.bootstrap, config.state_topic, config.datadir / "state",
                                         topics.board_days))
    app.partition_states = states
    metrics.initialise(config.partitions)

    async def side_output(topic: str, key: bytes | None, value: dict[str, Any]) -> None:
        await states.producer.send(topic, key=key, value=orjson.dumps(value))

    async def report_outcome(state, applied: Applied, message) -> None:
        """Metrics for every outcome; late and held events also go to their topics (never silently lost)."""
        record, outcome = applied.event, applied.outcome
        occurred = record.occurred_at.timestamp()
        metrics.observe_event(record.type, outcome.value, occurred, message.timestamp)
        if outcome not in (Outcome.LATE, Outcome.HELD):
            return
        clock = state.tables.stream_times.get(f"{record.board}|{record.type}")
        side = {
            "board": record.board, "type": record.type, "event_id": record.event_id,
            "occurred_at": record.occurred_at.isoformat(),
            "stream_time": datetime.fromtimestamp(clock, UTC).isoformat() if clock is not None else None,
            "topic": message.topic, "partition": message.partition, "offset": message.offset,
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
            message = event.message
            state = await states.get(message.partition)
            if state.already_applied(message.topic, message.offset):
                event.ack()
                continue
            try:
                record = parse_wire(event.value)
            except InvalidEvent as error:
                metrics.DEAD_LETTERED.labels(error.reason).inc()
                await side_output(topics.dead_letter, message.key, {
                    "source": "worker", "reason": str(error), "reason_code": str(error.reason), "topic": message.topic,
                    "partition": message.partition, "offset": message.offset,
                    "raw": redact(bytes(event.value).decode("utf-8", "replace")),
                    "dead_lettered_at": datetime.now(UTC).isoformat(),
                })
            else:
                for applied in apply_event(state.tables, record, lateness_seconds, max_ahead_seconds):
                    await report_outcome(state, applied, message)
            state.applied_event(message.topic, message.offset, event)

    @app.timer(interval=config.snapshot_seconds)
    async def snapshot_state() -> None:
        await states.save_dirty()
        held = dict.fromkeys(EVENT_TYPES, 0)
        for state in list(states.owned.values()):
            for key, entries in state.tables.held_events.items():
                held[key.rsplit("|", 1)[1]] += len(entries)
        for event_type, number in held.items():
            metrics.HELD_EVENTS.labels(event_type).set(number)
        for partition, state in list(states.owned.items()):
            behind = 0
            for topic in topics.events:
                highwater = app.consumer.highwater(TP(topic, partition))
                if highwater is not None:
                    behind += max(0, highwater - state.applied.get(topic, -1) - 1)
            metrics.CONSUMER_LAG.labels(str(partition)).set(behind)

    if config.metrics_port is not None:
        @app.task
        async def serve_metrics() -> None:
            try:
                start_http_server(config.metrics_port, addr=config.web_host)
            except OSError as error:  # a second worker on the same machine: keep counting, say why
                app.log.error("metrics port %s unavailable (%s): pass --metrics-port", config.metrics_port, error)

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
