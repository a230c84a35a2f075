"""What the worker does with each Kafka record it reads: :class:`EventCounter`, with no Faust and no Kafka in it.

``streams/app.py`` wires it to Faust (the agent hands it each record, in partition order); unit tests hand it
plain objects. For one record:

* already covered by its partition's durable state (``streams/partition_state.py``): acknowledged at once,
  nothing applied;
* a **packed** record (docs/wire-format.md): each element checked against the contract (``bcfwatch.core.events``,
  into :class:`~bcfwatch.core.events.EventFacts`, with no Faust record); a bad element is dead-lettered alone (with
  its ``index``, ``packed: true``), the others applied in order; a value that is not a JSON array is dead-lettered
  whole (``packed: true``, no ``index``);
* a **single-event** record goes through the same code as a packed record of one element; a bad one is
  dead-lettered whole, with its reason;
* each valid event is applied to its partition's tables by the board rules (``streams/board_state.apply_event``);
  every outcome is counted in the metrics (``streams/metrics.py``; a packed record's at once), late and held
  events also go to their topics (never silently lost);
* the record's offset is marked applied in the partition state, which acknowledges it once a snapshot covers it;
  once the partition has seen enough new event ids, they are sealed (``PartitionState.bound_state``).

Dead-letter, late and held messages are at-least-once side outputs: after a crash they may repeat, and carry their
source topic, partition, offset (and index, for a packed element) so a reader can drop repeats.

The collaborators are constructor arguments: the partition states (``PartitionStates`` in the worker: ``get``,
the ``applying`` lock, ``stopping``), ``send(topic, key, value)`` for the side outputs (the snapshot producer in
the worker), the metrics (the ``streams.metrics`` module), the worker's config (topics, lateness, max ahead), a
logger and a sleep for the retry back-off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from bcfwatch.core.events import (
    EventFacts,
    InvalidEvent,
    Reason,
    Window,
    decoded,
    event_facts_batch,
    is_packed,
    unpack,
)
from bcfwatch.core.messages import dead_letter_fields
from bcfwatch.core.nhs_number import redact
from bcfwatch.core.topics import EVENT_TYPES
from bcfwatch.infra.kafka import messages_behind
from streams import metrics as worker_metrics
from streams.board_state import Applied, Outcome, apply_event
from streams.config import WorkerConfig
from streams.partition_state import PartitionState
from streams.seen_events import SeenEvents

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 0.5  # the back-off before applying a record again after a failure, doubling ...
LAST_RETRY_SECONDS = 10.0  # ... up to this
HELD_REASON = ("no clock yet, or more than max_ahead_days ahead of the board's clock: held until a later event on "
               "the same stream corroborates it")

Send = Callable[[str, bytes | None, bytes], Awaitable[object]]
"""``send(topic, key, value)``: one side output (dead letter, late or held event), its value already encoded."""


class RecordEnvelope(Protocol):
    """What the counter reads of a consumed record besides its value (Faust's ``Message``)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...

    @property
    def key(self) -> bytes | None: ...

    @property
    def headers(self) -> Any: ...

    @property
    def timestamp(self) -> float | None: ...


class ConsumedRecord(Protocol):
    """One consumed record as the agent hands it over (Faust's ``Event``): its envelope, its raw value, and the
    acknowledgement the partition state gives once a snapshot covers it."""

    @property
    def message(self) -> RecordEnvelope: ...

    @property
    def value(self) -> Any: ...

    def ack(self) -> object: ...


class PartitionSource(Protocol):
    """The partition states a counter applies records to (:class:`streams.partition_state.PartitionStates`)."""

    @property
    def stopping(self) -> bool: ...

    @property
    def applying(self) -> AbstractAsyncContextManager[Any]: ...

    async def get(self, partition: int) -> PartitionState: ...


class CountingMetrics(Protocol):
    """The metrics a counter updates (the :mod:`streams.metrics` module)."""

    def observe_events(self, outcomes: dict[tuple[str, str], int], latest_seconds: dict[str, float],
                       kafka_timestamp_seconds: float | None) -> None: ...

    def count_dead_letter(self, reason: Reason) -> None: ...


class ErrorLog(Protocol):
    def error(self, message: str, /, *args: Any) -> None: ...


class EventCounter:
    """Applies the records of the event topics to the partition states, in order, and reports what became of them.

    :meth:`count_until_applied` is the agent's whole step for one record; :meth:`count` applies it once.
    """

    def __init__(self, config: WorkerConfig, states: PartitionSource, send: Send,
                 metrics: CountingMetrics = worker_metrics, log: ErrorLog = log,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
        self.topics = config.topics
        self.lateness_days = config.lateness_days
        self.max_ahead_days = config.max_ahead_days
        self.lateness_seconds = config.lateness_days * 86_400
        self.max_ahead_seconds = config.max_ahead_days * 86_400
        self.seen_seal_after = config.seen_seal_after
        self.states = states
        self.send = send
        self.metrics = metrics
        self.log = log
        self.sleep = sleep

    async def count_until_applied(self, event: ConsumedRecord) -> None:
        """:meth:`count` one record between two snapshots (holding ``states.applying``: a snapshot never sees half
        of it), trying again after a failure until it is applied or the worker is stopping (then it is left
        unacknowledged and read again after the restart).

        A crashed agent would skip the record for good (Faust restarts the actor with the next message, e.g. after
        a broker outage while loading a partition): so it is kept and tried again, with a back-off. Applying twice
        is harmless: the second time its events are duplicates of themselves.
        """
        retry_in = FIRST_RETRY_SECONDS
        while not self.states.stopping:
            try:
                async with self.states.applying:
                    await self.count(event)
                return
            except Exception as error:
                message = event.message
                self.log.error("could not apply %s[%d]@%d (%s); trying again in %.1f s", message.topic,
                               message.partition, message.offset, error, retry_in)
                await self.sleep(retry_in)  # a back-off before retrying, not synchronisation
                retry_in = min(retry_in * 2, LAST_RETRY_SECONDS)

    async def count(self, event: ConsumedRecord) -> None:
        """Apply one record (single-event or packed) to its partition's state, unless that state covers it already
        (then only acknowledge it), and mark its offset applied."""
        message = event.message
        state = await self.states.get(message.partition)
        if state.already_applied(message.topic, message.offset):
            event.ack()
            return
        if is_packed(message.headers):
            await self._count_packed(state, event)  # the record's offset covers all of it
        else:
            await self._count_single(state, event)
        # Sealed as soon as due, not at the next snapshot (up to 30 s later in a bulk load: 8 partitions' recent
        # ids then held ~200 MiB more); the segment is written before the snapshot that counts it, as before.
        # Before the record is marked applied: if sealing fails, the record is applied again (its events are then
        # duplicates), never acknowledged before a snapshot covers it.
        state.bound_state(self.lateness_seconds, self.seen_seal_after)
        state.applied_event(message.topic, message.offset, event)

    async def _count_single(self, state: PartitionState, event: ConsumedRecord) -> None:
        """A single-event record: as a packed record of one element, but a bad one is dead-lettered whole."""
        try:
            payload = decoded(event.value)
        except InvalidEvent as error:
            await self._dead_letter(event.message, error, bytes(event.value).decode("utf-8", "replace"))
            return
        await self._count_elements(state, event, [payload], packed=False)

    async def _count_packed(self, state: PartitionState, event: ConsumedRecord) -> None:
        try:
            elements = unpack(event.value)
        except InvalidEvent as error:
            await self._dead_letter(event.message, error, bytes(event.value).decode("utf-8", "replace"),
                                    packed=True)
            return
        await self._count_elements(state, event, elements, packed=True)

    async def _count_elements(self, state: PartitionState, event: ConsumedRecord, elements: list[Any],
                              packed: bool) -> None:
        """Each element through the contract; a bad one is dead-lettered alone (a packed record's with its index),
        the rest applied in order, each late or held one sent to its topic as it is applied. The elements are
        checked against one moment (the record's :class:`Window`), their ids looked up in the sealed tier at
        once, and the metrics observed once per record."""
        message = event.message
        window = Window.at()
        valid: list[tuple[int, EventFacts]] = []
        for index, facts in enumerate(event_facts_batch(elements, window=window)):
            if not isinstance(facts, InvalidEvent):
                valid.append((index, facts))
            elif packed:
                await self._dead_letter(message, facts, orjson.dumps(elements[index]).decode(), index=index,
                                        packed=True)
            else:
                await self._dead_letter(message, facts, bytes(event.value).decode("utf-8", "replace"))
        seen = state.tables.seen_events
        if isinstance(seen, SeenEvents) and len(valid) > 1:
            seen.look_up([f"{facts.type}|{facts.event_id}" for _, facts in valid])
        outcomes: dict[tuple[str, Outcome], int] = {}
        latest: dict[str, float] = {}
        tables, lateness, max_ahead = state.tables, self.lateness_seconds, self.max_ahead_seconds
        try:
            for index, facts in valid:
                for applied in apply_event(tables, facts, lateness, max_ahead):
                    done, outcome = applied
                    tally = (done.type, outcome)
                    outcomes[tally] = outcomes.get(tally, 0) + 1
                    if done.occurred_seconds > latest.get(done.type, 0.0):
                        latest[done.type] = done.occurred_seconds
                    if outcome is Outcome.LATE or outcome is Outcome.HELD:
                        # sent at once: if the send fails, the record is applied again and the events after
                        # this one are then applied (and reported) for the first time
                        await self._side_output(*self._side_report(state, applied, message,
                                                                   index if packed else None))
        finally:  # what was applied is observed, even when a side output failed
            if outcomes:
                self.metrics.observe_events({(event_type, outcome.value): number
                                             for (event_type, outcome), number in outcomes.items()},
                                            latest, message.timestamp)

    async def _dead_letter(self, message: RecordEnvelope, error: InvalidEvent, raw: str, **where: object) -> None:
        """``where``: what a packed record adds after the topic, partition and offset (``index``, ``packed``)."""
        self.metrics.count_dead_letter(error.reason)
        await self._side_output(self.topics.dead_letter, message.key, dead_letter_fields(
            "worker", error, redact(raw), topic=message.topic, partition=message.partition, offset=message.offset,
            **where))

    def _side_report(self, state: PartitionState, applied: Applied, message: RecordEnvelope,
                     index: int | None = None) -> tuple[str, bytes | None, dict[str, Any]]:
        """(topic, key, value) of a late or held event's side output, with the stream's clock as it stands now."""
        record, outcome = applied.event, applied.outcome
        clock = state.tables.stream_times.get(f"{record.board}|{record.type}")
        side = {
            "board": record.board, "type": record.type, "event_id": record.event_id,
            "occurred_at": record.occurred_at.isoformat(),
            "stream_time": datetime.fromtimestamp(clock, UTC).isoformat() if clock is not None else None,
            "topic": message.topic, "partition": message.partition, "offset": message.offset,
            **({} if index is None else {"index": index}),  # the event's place in a packed record
        }
        if outcome is Outcome.LATE:
            return self.topics.late_events, message.key, {**side, "lateness_days": self.lateness_days}
        return self.topics.held_events, message.key, {**side, "max_ahead_days": self.max_ahead_days,
                                                      "reason": HELD_REASON}

    async def _side_output(self, topic: str, key: bytes | None, value: dict[str, Any]) -> None:
        await self.send(topic, key, orjson.dumps(value))


def held_events_by_type(states: Iterable[PartitionState]) -> dict[str, int]:
    """How many events are held far ahead of their clocks, by event type (every type, zero included)."""
    held = dict.fromkeys(EVENT_TYPES, 0)
    for state in states:
        for key, entries in state.tables.held_events.items():
            held[key.rsplit("|", 1)[1]] += len(entries)
    return held


def messages_behind_by_partition(owned: Mapping[int, PartitionState], event_topics: Sequence[str],
                                 highwater: Callable[[str, int], int | None]) -> dict[int, int]:
    """Per owned partition, the messages of the event topics not applied yet (``highwater(topic, partition)``:
    the offset after the partition's last message, as the consumer last saw it)."""
    return {partition: sum(messages_behind(highwater(topic, partition), state.applied.get(topic, -1) + 1)
                           for topic in event_topics)
            for partition, state in owned.items()}
