"""Durable per-partition state: the board tables of one partition and the offsets they cover.

Why not Faust tables with ``processing_guarantee="exactly_once"``: on this
stack (faust-streaming 0.15.3, aiokafka 0.14, Kafka 3.9) a worker restarted
after an exactly-once run hangs in table recovery ("Still fetching changelog
topics for recovery ... remaining=N": the changelog ends in transaction markers
that recovery waits for, faust-streaming #47), and under exactly-once the RocksDB
store already holds writes of the aborted transaction after a crash (#193, #247).
Both were reproduced here. So the worker keeps its tables itself:

* All three event topics are keyed by board and co-partitioned, so partition *p*
  of each topic holds the same boards; Faust's assignor gives all of them to one
  worker. The state of partition *p* is the board tables of those boards plus,
  per topic, the offset of the last event applied.
* Every couple of seconds (less often while snapshots are costly: ``SNAPSHOT_TIME_SHARE``) a dirty
  partition is snapshotted, state and offsets in **one** message (so they can never disagree), to a compacted
  Kafka topic
  (``bcfwatch-PREFIX-state``, key = partition) and to a local RocksDB
  (rocksdict) cache next to the worker.
* The state is bounded: event ids are sealed into immutable digest segments on ``APP-seen``
  (``streams/seen_events.py``; the snapshot counts them) and reablement state no on-time event can use again
  is forgotten (``board_state.forget_settled_reablement``), so a snapshot stays a few MB at national scale.
* Events are acknowledged to Faust only once a snapshot covering them is on the
  broker (acks=all), so the committed consumer offsets never run ahead of the
  durable state. After a crash (kill -9) or a rebalance the new owner loads the
  latest snapshot and skips events at or below its offsets: each event changes
  the state exactly once, with no Kafka transactions involved.
* With each snapshot, the day counts and stream times it changed are published
  to the compacted ``PREFIX.board_days`` topic (same partition; counts before
  clocks), just before the snapshot itself, so once a snapshot is on the broker
  so are its counts. The monitor follows the live counts by reading these small
  changes rather than whole snapshots. Values are absolute, so a repeat is
  harmless; a worker that takes over a partition publishes all of its days once,
  so if a worker dies between the two writes, the next owner recomputes from the
  previous snapshot and publishes again.
* **Stopping** (SIGTERM/SIGINT, ``streams/app.py``): :meth:`PartitionStates.finish` stops applying events,
  waits for the one in hand, snapshots what was applied and so acknowledges it, before Faust commits and
  leaves the group; events fetched but not applied stay unacknowledged and are read again after a restart.
  Snapshots are taken one at a time (``_saving``) and each captures the tables between two events
  (``applying``, held by the agent for each event), never in the middle of one.
* **Broker outages** (issue 26): a snapshot that cannot be written within ``SNAPSHOT_WRITE_SECONDS`` (broker
  down, leader moving) is given up for now, its events stay unacknowledged and the partition dirty, and the
  next timer tick tries again: one partition's failure never stops the others' snapshots, nor the timer.
  While any partition's snapshots fail, :attr:`PartitionStates.failing` names it with the reason and since
  when; the worker is then not ready (``/readyz`` 503, ``bcf_ready`` 0). Failures are logged once when they
  start, then once per ``FAILURE_LOG_SECONDS`` per partition with a count, and once when they end.
* A snapshot read back is checked against its schema (``monitors/alerting/topic_schemas.py``); one that fails goes
  to the dead-letter topic with its reason and the worker falls back to its own last snapshot (the local
  RocksDB copy) or an earlier valid one on the topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidProducerEpoch, OutOfOrderSequenceNumber, ProducerFenced, UnknownProducerId
from mode import Service

from bcfwatch.core.topics import SNAPSHOT_MAX_BYTES
from bcfwatch.infra.kafka_security import aiokafka_options
from streams.board_state import BoardTables, forget_settled_reablement
from streams.published import SNAPSHOT_LOOK_BACK, parse_snapshot
from streams.seen_events import SEAL_AFTER, SeenEvents, check_segment, parse_segment_key, segment_key

if TYPE_CHECKING:
    from rocksdict import Rdict

log = logging.getLogger(__name__)

# The worker's snapshots may take at most about this share of its time, all its partitions together: a snapshot
# that held up the event loop for d seconds (taking it under the ``applying`` lock, writing the local cache, and
# sealing the ids seen since the last one, mostly done while counting; not the waits for the broker, while which
# events are applied) is followed by the partition's next one no sooner
# than d * owned partitions / share seconds after it started. Small live partitions (d of a few ms) still
# snapshot every timer tick; partitions being bulk-loaded write their larger snapshots less often. Stops,
# revokes, the final snapshot and a partition that has caught up (``save_dirty(caught_up=...)``) are never
# skipped, so counts settle within a tick of the last event.
SNAPSHOT_TIME_SHARE = 0.1
# ... but never later than this after the last, so a bulk load's events are acknowledged (and its counts published)
# at least this often. (A slow broker no longer spaces snapshots out: only the event loop's time counts, issue 26.)
SNAPSHOT_MAX_INTERVAL = 30.0
# The longest one snapshot may take to write (seen segments, board-day changes and the snapshot itself) before it
# is given up until the next tick: a broker that does not answer must not hold up the timer and the others.
SNAPSHOT_WRITE_SECONDS = 30.0
CACHE_WRITE_BUFFER_BYTES = 4 * 1024 * 1024  # the local snapshot cache's memtable (RocksDB's default: 64 MiB)
LOAD_SECONDS = 60.0  # the longest a partition's state may take to load from the broker before it is tried again
FAILURE_LOG_SECONDS = 30.0  # while a partition's snapshots fail, one log line per partition per this
# Errors after which the idempotent snapshot producer never writes again: it is replaced (issue 26).
BROKEN_PRODUCER_ERRORS = (OutOfOrderSequenceNumber, UnknownProducerId, InvalidProducerEpoch, ProducerFenced)


@dataclass
class SnapshotFailure:
    """A partition whose snapshots cannot be written: why (the last error) and since when (monotonic)."""

    reason: str
    since: float
    error: BaseException | None = None
    attempts: int = 1
    last_logged: float = field(default_factory=time.monotonic)
    unlogged: int = 0

    def describe(self, now: float | None = None) -> str:
        seconds = (now if now is not None else time.monotonic()) - self.since
        plural = "s" if self.attempts != 1 else ""
        return f"{self.reason} (failing for {seconds:.0f} s, {self.attempts} attempt{plural})"



class ChangeTrackingDict(dict):
    """A dict that remembers which keys were set since ``changed`` was last cleared."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.changed: set[str] = set(self)  # everything counts as changed until first published

    def __setitem__(self, key: str, value: Any) -> None:
        dict.__setitem__(self, key, value)  # (not super(): this runs for nearly every event)
        self.changed.add(key)


def empty_tables() -> BoardTables:
    return BoardTables(ChangeTrackingDict(), ChangeTrackingDict(), SeenEvents(), {}, {})


def _tracked(tables: BoardTables) -> tuple[ChangeTrackingDict, ChangeTrackingDict]:
    """The day counts and stream times of a worker's tables (:func:`empty_tables`: they track their changes)."""
    day_counts, stream_times = tables.day_counts, tables.stream_times
    assert isinstance(day_counts, ChangeTrackingDict) and isinstance(stream_times, ChangeTrackingDict)
    return day_counts, stream_times


def _seen(tables: BoardTables) -> SeenEvents:
    """The seen event ids of a worker's tables (:func:`empty_tables`: recent ids and sealed segments)."""
    seen = tables.seen_events
    assert isinstance(seen, SeenEvents)
    return seen


def take_board_day_changes(tables: BoardTables) -> tuple[set[str], set[str]]:
    """The day-count and stream-time keys changed since last taken (and start tracking afresh)."""
    day_counts, stream_times = _tracked(tables)
    days, clocks = day_counts.changed, stream_times.changed
    day_counts.changed, stream_times.changed = set(), set()
    return days, clocks


def give_back_board_day_changes(tables: BoardTables, days: set[str], clocks: set[str]) -> None:
    day_counts, stream_times = _tracked(tables)
    day_counts.changed |= days
    stream_times.changed |= clocks


def board_day_messages(tables: BoardTables, days: set[str], clocks: set[str]) -> list[tuple[bytes, bytes]]:
    """(key, value) for the given day counts and stream times: day counts first, then clocks, so a reader
    never sees a board's clock ahead of the counts behind it."""
    messages = [(key.encode(), orjson.dumps({"counts": tables.day_counts[key]})) for key in sorted(days)]
    for key in sorted(clocks):
        board, _, kind = key.partition("|")
        if kind != "settled":  # the reablement bookmark is the worker's own business
            messages.append((f"{board}|clock|{kind}".encode(), orjson.dumps({"stream_time": tables.stream_times[key]})))
    return messages


@dataclass
class PartitionState:
    partition: int
    tables: BoardTables = field(default_factory=empty_tables)
    applied: dict[str, int] = field(default_factory=dict)  # topic -> offset of the last applied event
    unacked: list[Any] = field(default_factory=list)  # Faust events waiting for a durable snapshot
    dirty: bool = False
    seen_segments: int = 0  # sealed event-id segments on the seen topic (streams/seen_events.py)
    unsent_segments: list[bytes] = field(default_factory=list)  # sealed, to be written before the next snapshot
    next_snapshot_at: float = 0.0  # time.monotonic() before which the timer leaves this partition alone
    upkeep_seconds: float = 0.0  # time spent sealing ids since the last snapshot, charged to the snapshots' share

    def already_applied(self, topic: str, offset: int) -> bool:
        return offset <= self.applied.get(topic, -1)

    def applied_event(self, topic: str, offset: int, event: Any) -> None:
        """Mark a record applied; it is kept to be acknowledged once a snapshot covers it, without its value
        (a partition's snapshots can be 30 s apart: at bulk rates that was hundreds of MiB of packed values held
        only to be acknowledged; the acknowledgement reads the record's topic, partition and offset)."""
        self.applied[topic] = offset
        self.unacked.append(event)
        self.dirty = True
        holders: list[Any] = [event, getattr(event, "message", None)]  # (Faust's event and its message hold it)
        for holder in holders:
            if hasattr(holder, "value"):
                holder.value = None

    def to_snapshot(self) -> bytes:
        tables = self.tables
        return orjson.dumps({
            "partition": self.partition,
            "applied": self.applied,
            "day_counts": tables.day_counts,
            "stream_times": tables.stream_times,
            "seen_events": _seen(tables).recent,
            "seen_segments": self.seen_segments + len(self.unsent_segments),
            "reablement_patients": tables.reablement_patients,
            "reablement_due": tables.reablement_due,
            "held_events": tables.held_events,
        })

    def bound_state(self, lateness_seconds: float, seal_after: int = SEAL_AFTER) -> None:
        """Once enough event ids are recent: seal them (the segment is written before the next snapshot) and
        forget the reablement state no on-time event can use again. Neither changes any count."""
        seen = _seen(self.tables)
        if seen.due_for_sealing(seal_after):
            started = time.monotonic()
            self.unsent_segments.append(seen.seal())
            forget_settled_reablement(self.tables, lateness_seconds)
            self.upkeep_seconds += time.monotonic() - started

    @classmethod
    def from_snapshot(cls, partition: int, snapshot: bytes | None,
                      segments: list[bytes] | None = None) -> PartitionState:
        """The state a snapshot saved, with the seen-event segments it counts (``segments``, in order)."""
        return cls.from_saved(partition, orjson.loads(snapshot) if snapshot else None, segments)

    @classmethod
    def from_saved(cls, partition: int, saved: dict[str, Any] | None,
                   segments: list[bytes] | None = None) -> PartitionState:
        """:meth:`from_snapshot` for a snapshot already decoded."""
        if not saved:
            return cls(partition)
        segments = segments or []
        if len(segments) != saved.get("seen_segments", 0):
            raise ValueError(f"partition {partition}: the snapshot counts {saved.get('seen_segments', 0)} seen-event "
                             f"segments, {len(segments)} given")
        tables = BoardTables(ChangeTrackingDict(saved["day_counts"]), ChangeTrackingDict(saved["stream_times"]),
                             SeenEvents(saved["seen_events"], segments), saved["reablement_patients"],
                             saved["reablement_due"], saved.get("held_events", {}))
        return cls(partition, tables, {k: int(v) for k, v in saved["applied"].items()}, seen_segments=len(segments))


class PartitionStates(Service):
    """The partitions this worker owns: loaded lazily, snapshotted on a timer, dropped on revoke."""

    def __init__(self, bootstrap: str, state_topic: str, cache_dir: Path, board_days_topic: str,
                 dead_letter_topic: str | None, seen_topic: str, seen_seal_after: int, lateness_seconds: float,
                 **kwargs: Any) -> None:
        self.bootstrap = bootstrap
        self.lateness_seconds = lateness_seconds
        self.seen_seal_after = seen_seal_after
        self.seen_topic = seen_topic
        self.dead_letter_topic = dead_letter_topic
        self.applying = asyncio.Lock()  # held by the agent while it applies one event
        self.stopping = False  # once set, the agent applies no more events
        self._saving = asyncio.Lock()
        self.state_topic = state_topic
        self.board_days_topic = board_days_topic
        self.cache_dir = cache_dir
        self.owned: dict[int, PartitionState] = {}
        self.producer: AIOKafkaProducer | None = None
        self.reader: AIOKafkaConsumer | None = None
        self._cache: Rdict | None = None
        self._loading = asyncio.Lock()
        self._clients_started = asyncio.Event()  # the agent may ask for a partition before on_start is done
        self.failing: dict[int, SnapshotFailure] = {}  # partitions whose last snapshot could not be written
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        from rocksdict import DBCompressionType, Options, Rdict

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # RocksDB's default memtables (64 MiB, two of them) held ~110 MiB of the worker's RSS for a cache of one
        # snapshot and one offset per partition; small ones cost a flush every few snapshots, uncompressed (Snappy
        # on every flush and compaction of multi-MB snapshots was CPU the worker needs; a few MB of disk is not).
        options = Options()
        options.set_write_buffer_size(CACHE_WRITE_BUFFER_BYTES)
        options.set_compression_type(DBCompressionType.none())
        self._cache = Rdict(str(self.cache_dir / "snapshots"), options)
        self.producer = await self._new_producer()
        self.reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                       fetch_max_bytes=SNAPSHOT_MAX_BYTES,
                                       max_partition_fetch_bytes=SNAPSHOT_MAX_BYTES, **aiokafka_options())
        await self.reader.start()
        self._clients_started.set()

    async def _new_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                    max_request_size=SNAPSHOT_MAX_BYTES, compression_type=None, **aiokafka_options())
        await producer.start()
        return producer

    async def _renew_producer(self, error: BaseException) -> None:
        """Replace a producer whose idempotence state broke (a write given up mid-flight during an outage leaves
        its sequence numbers out of step with the broker's: every later write to that partition then fails with
        OutOfOrderSequenceNumber, for good). The old one is stopped first, so nothing it still holds can land
        after what the new one writes."""
        log.warning("the snapshot producer's idempotence state is broken (%s): replacing it", type(error).__name__)
        old = self.producer
        if old is not None:
            try:
                await asyncio.wait_for(old.stop(), SNAPSHOT_WRITE_SECONDS)
            except Exception:  # a broken producer may not stop cleanly: drop it
                log.warning("the old snapshot producer did not stop cleanly", exc_info=True)
        self.producer = await self._new_producer()

    async def on_stop(self) -> None:
        try:
            await self.save_dirty(every=True)
        finally:
            if self.reader is not None:
                await self.reader.stop()
            if self.producer is not None:
                await self.producer.stop()
            if self._cache is not None:
                self._cache.close()

    async def get(self, partition: int) -> PartitionState:
        state = self.owned.get(partition)
        if state is not None:
            return state
        await self._clients_started.wait()  # the snapshot reader must be running before a partition loads
        async with self._loading:  # one load at a time: the agent and the web view may ask together
            state = self.owned.get(partition)
            if state is None:
                state = await asyncio.wait_for(self._load(partition), LOAD_SECONDS)
                self.owned[partition] = state
        return state

    async def _load(self, partition: int) -> PartitionState:
        snapshot = await self._latest_snapshot(partition)
        saved = orjson.loads(snapshot) if snapshot else None
        segments = await self._seen_segments(partition, saved.get("seen_segments", 0) if saved else 0)
        return PartitionState.from_saved(partition, saved, segments)

    async def finish(self) -> None:
        """Stop applying events, wait for the one in hand, and snapshot (so acknowledge) what was applied."""
        self.stopping = True
        async with self.applying:
            pass
        await self.save_dirty(every=True)

    async def _latest_snapshot(self, partition: int, look_back: int = SNAPSHOT_LOOK_BACK) -> bytes | None:
        """The last valid snapshot on the state topic; the local RocksDB copy if it is the same one, or if
        what came after it on the topic fails the snapshot schema."""
        from bcfwatch.core.messages import InvalidMessage, invalid_message_record

        assert self.reader is not None and self.producer is not None and self._cache is not None  # on_start
        tp = TopicPartition(self.state_topic, partition)
        end = (await self.reader.end_offsets([tp]))[tp]
        if end == 0:
            return None
        cached_offset = self._cache.get(f"{partition}:offset")
        if cached_offset == end - 1:
            return self._cache.get(f"{partition}:snapshot")
        self.reader.assign([tp])
        for offset in range(end - 1, max(-1, end - 1 - look_back), -1):
            if offset == cached_offset:
                return self._cache.get(f"{partition}:snapshot")
            self.reader.seek(tp, offset)
            record = await self.reader.getone(tp)
            try:
                parse_snapshot(record.value, partition)
            except InvalidMessage as error:
                log.error("snapshot %s[%d]@%d is invalid (%s): dead-lettered, trying the one before",
                          tp.topic, partition, record.offset, error)
                if self.dead_letter_topic is not None:
                    await self.producer.send_and_wait(self.dead_letter_topic,
                                                      value=invalid_message_record("worker", error, record))
                continue
            return record.value
        log.error("no valid snapshot of partition %d in the last %d on %s: starting it empty", partition,
                  look_back, tp.topic)
        return None

    async def _seen_segments(self, partition: int, count: int) -> list[bytes]:
        """Segments 0..count-1 of a partition from the seen topic (the last written under each sequence)."""
        if count == 0:
            return []
        assert self.reader is not None  # on_start
        tp = TopicPartition(self.seen_topic, partition)
        end = (await self.reader.end_offsets([tp]))[tp]
        self.reader.assign([tp])
        await self.reader.seek_to_beginning(tp)
        found: dict[int, bytes] = {}
        while await self.reader.position(tp) < end:
            batches = await self.reader.getmany(tp, timeout_ms=1000)
            for record in batches.get(tp, []):
                key = parse_segment_key(record.key)
                if key is not None and key[0] == partition and key[1] < count:
                    found[key[1]] = check_segment(record.value)
        missing = [sequence for sequence in range(count) if sequence not in found]
        if missing:
            raise RuntimeError(f"partition {partition}: seen-event segments {missing[:5]} are not on "
                               f"{self.seen_topic}; the duplicate rule cannot be kept exactly without them")
        return [found[sequence] for sequence in range(count)]

    async def save(self, state: PartitionState) -> None:
        async with self._saving:  # one at a time, so the last snapshot on the topic is the latest taken
            await self._save(state)

    async def _save(self, state: PartitionState) -> None:
        if not state.dirty:
            return
        assert self.producer is not None and self._cache is not None  # on_start
        started = time.monotonic()
        async with self.applying:  # between two events, never in the middle of one
            state.bound_state(self.lateness_seconds, self.seen_seal_after)  # (its time is in upkeep_seconds)
            taking = time.monotonic()
            snapshot, acknowledgeable = state.to_snapshot(), state.unacked
            days, clocks = take_board_day_changes(state.tables)
            changes = board_day_messages(state.tables, days, clocks)  # as of the snapshot, before any await
            state.unacked, state.dirty = [], False
            # the ids sealed since the last snapshot (mostly while counting) count as this snapshot's upkeep
            blocking = time.monotonic() - taking + state.upkeep_seconds
            state.upkeep_seconds = 0.0
        try:
            while state.unsent_segments:  # before the snapshot that counts them
                await self.producer.send_and_wait(self.seen_topic,
                                                  key=segment_key(state.partition, state.seen_segments),
                                                  value=state.unsent_segments[0], partition=state.partition)
                state.seen_segments += 1
                state.unsent_segments.pop(0)
            sent = [await self.producer.send(self.board_days_topic, key=key, value=value, partition=state.partition)
                    for key, value in changes]
            await asyncio.gather(*sent)
            metadata = await self.producer.send_and_wait(self.state_topic, key=str(state.partition).encode(),
                                                         value=snapshot, partition=state.partition)
        except BaseException:  # an error, or given up (cancelled) by the write bound: all of it is taken again
            state.unacked, state.dirty = acknowledgeable + state.unacked, True
            give_back_board_day_changes(state.tables, days, clocks)
            raise
        caching = time.monotonic()
        self._cache[f"{state.partition}:snapshot"] = snapshot
        self._cache[f"{state.partition}:offset"] = metadata.offset
        for event in acknowledgeable:
            event.ack()
        blocking += time.monotonic() - caching
        state.next_snapshot_at = started + min(blocking * max(1, len(self.owned)) / SNAPSHOT_TIME_SHARE,
                                               SNAPSHOT_MAX_INTERVAL)

    async def save_dirty(self, every: bool = False, caught_up: Collection[int] = ()) -> None:
        """Snapshot the dirty partitions (``every``: also those whose last snapshot was recent and costly;
        ``caught_up``: partitions with nothing left to apply, snapshotted whatever their spacing). A partition
        whose snapshot cannot be written is recorded in :attr:`failing` and tried again next time; this never
        raises for it."""
        unanswered: int | None = None  # a partition whose snapshot the broker did not answer in time, this tick
        for state in list(self.owned.values()):
            if unanswered is not None and state.dirty:  # do not wait out the bound once per partition
                self._failed(state.partition, TimeoutError(f"not tried: partition {unanswered}'s snapshot was not "
                                                           f"answered within {SNAPSHOT_WRITE_SECONDS:.0f} s"))
            elif ((every or state.partition in caught_up or time.monotonic() >= state.next_snapshot_at)
                  and not await self.try_save(state)):
                if isinstance(self.failing[state.partition].error, TimeoutError):
                    unanswered = state.partition

    async def try_save(self, state: PartitionState) -> bool:
        """Snapshot one partition within ``SNAPSHOT_WRITE_SECONDS``; True if it is durable (or was clean)."""
        try:
            await asyncio.wait_for(self.save(state), SNAPSHOT_WRITE_SECONDS)
        except Exception as error:  # TimeoutError included: the broker did not answer in time
            self._failed(state.partition, error)
            if isinstance(error, BROKEN_PRODUCER_ERRORS):
                await self._renew_producer(error)
            return False
        self._recovered(state.partition)
        return True

    def _failed(self, partition: int, error: BaseException) -> None:
        now = time.monotonic()
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        failure = self.failing.get(partition)
        if failure is None:
            self.failing[partition] = SnapshotFailure(reason, since=now, error=error)
            log.error("partition %d: snapshot could not be written (%s); its events stay unacknowledged and "
                      "it is tried again on the next tick", partition, reason)
            return
        failure.reason, failure.error = reason, error
        failure.attempts, failure.unlogged = failure.attempts + 1, failure.unlogged + 1
        if now - failure.last_logged >= FAILURE_LOG_SECONDS:
            log.error("partition %d: snapshots still failing: %s; %d more since the last line", partition,
                      failure.describe(now), failure.unlogged)
            failure.last_logged, failure.unlogged = now, 0

    def _recovered(self, partition: int) -> None:
        failure = self.failing.pop(partition, None)
        if failure is not None:
            log.warning("partition %d: snapshots written again after %.0f s (%d failed attempts)", partition,
                        time.monotonic() - failure.since, failure.attempts)

    async def release(self, partitions: set[int]) -> None:
        """Snapshot and forget partitions this worker no longer owns. A snapshot that cannot be written is given
        up: the partition's new owner loads the last durable one and reads the unacknowledged events again."""
        for partition in partitions:
            state = self.owned.get(partition)
            if state is not None:
                await self.try_save(state)
                del self.owned[partition]
                self.failing.pop(partition, None)
