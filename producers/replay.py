"""Replay a historic event log into Kafka with kafka-python.

Idempotent producer, acks=all, keyed by board so a board's events stay in order
on one partition. Lines that break the contract go to the dead-letter topic with
their line number and reason (NHS numbers redacted); nothing is dropped silently.

**Resumable.** As the broker acknowledges deliveries, the replay records in a
checkpoint file (:func:`checkpoint_path`, in the cache dir, keyed by the log's
path, size and modification time, the topic prefix and the bootstrap servers)
the last line up to which *every* line has been acknowledged. It is never ahead
of the broker: a line counts only once its own delivery and every earlier
line's have succeeded. ``resume=True`` continues after that line; the lines
between the checkpoint and a crash are sent again and the workers count them as
duplicates (the same ``event_id`` counts once), so a killed and resumed replay
gives the counts of one clean replay. Dead-letter messages around the
checkpoint may repeat (same file and line).

**Outages are reported.** While the broker acknowledges nothing, a watch thread
says so every ``warn_every`` seconds (``on_warning``) with how long it has been;
after ``delivery_timeout`` seconds without an acknowledgement the replay stops
with :class:`DeliveryTimeout` (the checkpoint holds what was delivered).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.producer.future import FutureRecordMetadata

from bcfwatch.core.boards import load_boards
from bcfwatch.core.events import PACKED_HEADERS, RECORDS, InvalidEvent, wire_fields
from bcfwatch.core.messages import dead_letter_record
from bcfwatch.core.topics import Topics
from bcfwatch.infra.kafka import ensure_topics
from bcfwatch.infra.kafka_security import kafka_python_options
from bcfwatch.infra.lifecycle import broker_reachable
from producers.eventlog.logformat import LogLine, check_line, line_to_event, read_log, redacted_line
from producers.packing import BoardBatches
from producers.pseudonym import Pseudonymiser

DEFAULT_DELIVERY_TIMEOUT = 120.0  # seconds without any acknowledgement before the replay gives up
CHECKPOINT_SECONDS = 0.5  # how often the acknowledged line is written down (when it moved)
PACKED_CHUNK_LINES = 100_000  # --packed: lines grouped per board before every open batch is sent
PACKED_CHUNK_SECONDS = 1.0  # --packed: and at most this long (a paced replay's events wait no longer)
WARN_AFTER = 5.0  # seconds without an acknowledgement before the first outage warning
WARN_EVERY = 10.0  # seconds between outage warnings


class ReplayError(RuntimeError):
    """The replay could not finish; the message says what happened and what to do."""


class DeliveryTimeout(ReplayError):
    """The broker acknowledged nothing for the delivery timeout."""


@dataclass
class ReplayReport:
    lines: int = 0  # lines read and sent by this run (after the checkpoint when resuming)
    produced: Counter = field(default_factory=Counter)  # by event type
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    rejected_by_reason: Counter = field(default_factory=Counter)  # reason code -> lines
    seconds: float = 0.0
    resumed_after_line: int = 0  # 0: from the start
    acknowledged_through_line: int = 0  # every line up to this one is on the broker
    already_complete: bool = False  # resume found the log replayed completely: nothing sent
    checkpoint: Path | None = None
    outages: list[float] = field(default_factory=list)  # seconds of each outage ridden out
    packed_records: int = 0  # --packed: packed records sent (each holds many events)

    @property
    def events_per_second(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


def make_producer(bootstrap: str, delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT) -> KafkaProducer:
    timeout_ms = int(delivery_timeout * 1000)
    linger_ms = 20
    request_timeout_ms = max(500, min(30_000, timeout_ms // 2))
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="bcfwatch-replay",
        **kafka_python_options(),
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        batch_size=512 * 1024,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=request_timeout_ms,
        # The watch thread gives up first, with its own message; these only bound what it cannot interrupt.
        delivery_timeout_ms=max(timeout_ms + 5_000, request_timeout_ms + linger_ms + 1),
        max_block_ms=timeout_ms + 5_000,
        reconnect_backoff_max_ms=2_000,
    )


# -- the checkpoint ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LogIdentity:
    """What a checkpoint belongs to: this file as it is now, replayed under this prefix to these servers."""

    path: str
    size: int
    mtime_ns: int
    topic_prefix: str
    bootstrap: str

    @classmethod
    def of(cls, log: Path, topic_prefix: str, bootstrap: str) -> LogIdentity:
        stat = log.stat()
        return cls(str(log.resolve()), stat.st_size, stat.st_mtime_ns, topic_prefix, bootstrap)

    @property
    def key(self) -> str:
        text = "|".join((self.path, str(self.size), str(self.mtime_ns), self.topic_prefix, self.bootstrap))
        return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Checkpoint:
    acknowledged_through_line: int
    complete: bool
    updated_at: str


def checkpoint_dir() -> Path:
    from bcfwatch.core.settings import cache_dir

    return cache_dir() / "replay-checkpoints"


def checkpoint_path(log: Path, topic_prefix: str, bootstrap: str, directory: Path | None = None) -> Path:
    """The checkpoint file of replaying ``log`` (as it is now) under ``topic_prefix`` to ``bootstrap``."""
    identity = LogIdentity.of(log, topic_prefix, bootstrap)
    return (directory or checkpoint_dir()) / f"{Path(identity.path).name}.{identity.key}.json"


def read_checkpoint(path: Path) -> Checkpoint | None:
    try:
        data = orjson.loads(path.read_bytes())
        return Checkpoint(int(data["acknowledged_through_line"]), bool(data["complete"]), str(data["updated_at"]))
    except (FileNotFoundError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def write_checkpoint(path: Path, identity: LogIdentity, line: int, complete: bool) -> None:
    """Atomically (write, fsync, rename): a kill -9 leaves the old checkpoint or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = orjson.dumps({
        "log": identity.path, "size": identity.size, "mtime_ns": identity.mtime_ns,
        "topic_prefix": identity.topic_prefix, "bootstrap": identity.bootstrap,
        "acknowledged_through_line": line, "complete": complete, "updated_at": datetime.now(UTC).isoformat(),
    }, option=orjson.OPT_INDENT_2)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    with open(temporary, "wb") as handle:
        handle.write(body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


# -- deliveries and outages ----------------------------------------------------------------------------------
class Deliveries:
    """Lines handed to the producer, in order, and the line up to which the broker has acknowledged them all."""

    def __init__(self, acknowledged_through: int) -> None:
        self.acknowledged_through = acknowledged_through
        self._pending: deque[tuple[int, FutureRecordMetadata]] = deque()
        self.last_acknowledged = time.monotonic()  # set by kafka-python's I/O thread on each acknowledgement
        self.sending = False  # inside producer.send / flush (which block while the buffer is full)

    def _acknowledged(self, _metadata: object) -> None:
        self.last_acknowledged = time.monotonic()

    def sent(self, line: int, future: FutureRecordMetadata) -> None:
        future.add_callback(self._acknowledged)
        self._pending.append((line, future))

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def advance(self) -> int:
        """Move the acknowledged line past every delivery done in order; raise on a failed one."""
        pending = self._pending
        while pending and pending[0][1].is_done:
            line, future = pending.popleft()
            if future.failed():
                pending.appendleft((line, future))
                raise future.exception
            self.acknowledged_through = line
        return self.acknowledged_through


class OutageWatch(threading.Thread):
    """Says when the broker has acknowledged nothing for a while, and when it is back; flags the timeout."""

    def __init__(self, deliveries: Deliveries, bootstrap: str, delivery_timeout: float,
                 on_warning: Callable[[str], None], warn_after: float = WARN_AFTER,
                 warn_every: float = WARN_EVERY) -> None:
        super().__init__(name="bcfwatch-replay-outage-watch", daemon=True)
        self.deliveries, self.bootstrap = deliveries, bootstrap
        self.delivery_timeout, self.on_warning = delivery_timeout, on_warning
        self.warn_after, self.warn_every = warn_after, warn_every
        self.timed_out = False
        self.stalled_for = 0.0
        self.outages: list[float] = []
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)

    def run(self) -> None:
        quiet_since = time.monotonic()  # when nothing was waiting for the broker
        outage_since: float | None = None
        last_warned = 0.0
        while not self._stopping.wait(0.25):
            now = time.monotonic()
            deliveries = self.deliveries
            if not deliveries.outstanding and not deliveries.sending:
                quiet_since = now
            since = max(deliveries.last_acknowledged, quiet_since)
            self.stalled_for = now - since
            if outage_since is not None and since > outage_since:
                self.outages.append(since - outage_since)
                self.on_warning(f"Kafka at {self.bootstrap} acknowledges deliveries again after "
                                f"{since - outage_since:.0f} s; continuing")
                outage_since = None
            if self.stalled_for < self.warn_after:
                continue
            if outage_since is None:
                outage_since, last_warned = since, 0.0
            if now - last_warned >= self.warn_every:
                last_warned = now
                what = "unreachable" if not broker_reachable(self.bootstrap) else "reachable but acknowledging nothing"
                self.on_warning(f"broker {self.bootstrap} {what} for {self.stalled_for:.0f} s, retrying "
                                f"(giving up after {self.delivery_timeout:.0f} s)")
            if self.stalled_for >= self.delivery_timeout:
                self.timed_out = True


# -- the replay ----------------------------------------------------------------------------------------------
@dataclass
class _Chunk:
    """--packed: the lines grouped since the last chunk ended (``floor``: that chunk's last line)."""

    floor: int
    started: float
    lines: int = 0
    last_future: FutureRecordMetadata | None = None


def replay(
    path: Path,
    bootstrap: str,
    topics: Topics,
    pseudonymiser: Pseudonymiser,
    partitions: int,
    events_per_second: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_produced: Callable[[int], None] | None = None,
    resume: bool = False,
    delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
    on_warning: Callable[[str], None] | None = None,
    checkpoints: Path | None = None,
    packed: bool = False,
) -> ReplayReport:
    """Produce every line of ``path`` (after the checkpoint with ``resume``); returns what was produced and rejected.

    ``on_progress(lines)`` advances by lines read (skipped lines of a resumed replay included);
    ``on_produced(line_number)`` is called as each event is handed to the producer (benchmarks time it).
    ``checkpoints`` is the checkpoint folder (default: the cache dir's ``replay-checkpoints``).
    ``packed`` publishes packed records (docs/wire-format.md): the log is read in chunks of
    ``PACKED_CHUNK_LINES`` lines (or ``PACKED_CHUNK_SECONDS``), each chunk's events grouped per board and type
    into records of at most ``MAX_PACKED_EVENTS`` events / ``MAX_PACKED_BYTES`` bytes, in log order; the
    checkpoint moves to a chunk's last line once everything of the chunk (and before it) is acknowledged.
    Raises :class:`DeliveryTimeout` when the broker acknowledges nothing for ``delivery_timeout`` seconds and
    :class:`ReplayError` when it refuses a delivery.
    """
    identity = LogIdentity.of(path, topics.prefix, bootstrap)
    checkpoint_file = checkpoint_path(path, topics.prefix, bootstrap, checkpoints)
    report = ReplayReport(checkpoint=checkpoint_file)
    previous = read_checkpoint(checkpoint_file) if resume else None
    if previous is not None:
        report.resumed_after_line = report.acknowledged_through_line = previous.acknowledged_through_line
        if previous.complete:
            report.already_complete = True
            return report
    boards = load_boards()
    ensure_topics(bootstrap, [*topics.events, topics.dead_letter, topics.late_events], partitions)
    say = on_warning or (lambda message: None)
    producer = make_producer(bootstrap, delivery_timeout)
    deliveries = Deliveries(report.resumed_after_line)
    watch = OutageWatch(deliveries, bootstrap, delivery_timeout, say)
    written, last_written = report.resumed_after_line, time.monotonic()
    unread = 0  # lines read but not yet reported to on_progress

    def send(line_number: int, topic: str, key: bytes | None, value: bytes,
             headers: list[tuple[str, bytes]] | None = None) -> None:
        deliveries.sending = True
        try:
            future = producer.send(topic, key=key, value=value, headers=headers)
        except KafkaTimeoutError:
            raise _timeout(bootstrap, delivery_timeout, deliveries.advance()) from None
        finally:
            deliveries.sending = False
        deliveries.sent(line_number, future)
        chunk.last_future = future

    def send_packed(topic: str, key: bytes, value: bytes, lines: list[int]) -> None:
        # Acknowledged only as far as the line before the chunk: the chunk's end is registered at its end.
        send(chunk.floor, topic, key, value, PACKED_HEADERS)
        report.packed_records += 1
        if on_produced is not None:
            for number in lines:
                on_produced(number)

    batches = BoardBatches(send_packed)
    chunk = _Chunk(floor=report.resumed_after_line, started=time.monotonic())

    def end_chunk(last_line: int) -> None:
        """Send every open batch; the checkpoint may move to ``last_line`` once all the chunk is acknowledged."""
        batches.flush()
        if chunk.last_future is not None:
            deliveries.sent(last_line, chunk.last_future)  # registered again, after every future of the chunk
        chunk.floor, chunk.lines, chunk.last_future, chunk.started = last_line, 0, None, time.monotonic()

    def keep_checkpoint(force: bool = False) -> None:
        nonlocal written, last_written
        if watch.timed_out:
            raise _timeout(bootstrap, delivery_timeout, deliveries.acknowledged_through)
        now = time.monotonic()
        if force or now - last_written >= CHECKPOINT_SECONDS:
            acknowledged = deliveries.advance()
            if acknowledged != written:
                write_checkpoint(checkpoint_file, identity, acknowledged, complete=False)
                written = acknowledged
            last_written = now

    def dead_letter(line: LogLine, error: InvalidEvent, registered_as: int) -> None:
        reason, code = str(error), str(error.reason)
        report.rejected.append((line.number, reason))
        report.rejected_by_reason[code] += 1
        send(registered_as, topics.dead_letter, None,
             dead_letter_record("replay", error, redacted_line(line, pseudonymiser), file=path.name,
                                line=line.number))

    def send_line(line: LogLine) -> None:
        try:
            event = line_to_event(line, pseudonymiser, boards)
        except InvalidEvent as error:
            dead_letter(line, error, line.number)
        else:
            send(line.number, topics.event(event.type), event.board.encode(), event.to_wire())
            report.produced[event.type] += 1
            if on_produced is not None:
                on_produced(line.number)

    def pack_line(line: LogLine) -> None:
        """The same contract as :func:`line_to_event`, without building the record (the wire is identical)."""
        try:
            record, fields, digits = check_line(line, boards)
        except InvalidEvent as error:
            dead_letter(line, error, chunk.floor)
            return
        wire = wire_fields(record, fields, pseudonymiser.pseudonym(digits), pseudonymiser.key_id)
        event_type = record_types[record]
        batches.add(topics.event(event_type), fields["board"], wire, line.number)
        report.produced[event_type] += 1

    record_types = {record: event_type for event_type, record in RECORDS.items()}
    last_read = report.resumed_after_line
    started = time.monotonic()
    watch.start()
    failed = True
    try:
        for line in read_log(path):
            unread += 1
            if line.number <= report.resumed_after_line:
                if unread >= 1000 and on_progress is not None:
                    on_progress(unread)
                    unread = 0
                continue
            report.lines += 1
            last_read = line.number
            if packed:
                pack_line(line)
                chunk.lines += 1
                if chunk.lines >= PACKED_CHUNK_LINES or time.monotonic() - chunk.started >= PACKED_CHUNK_SECONDS:
                    end_chunk(line.number)
            else:
                send_line(line)
            if on_progress is not None and unread >= 1000:
                on_progress(unread)
                unread = 0
            keep_checkpoint()
            if events_per_second:
                ahead = report.lines / events_per_second - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)  # pacing a live-rate replay, not synchronisation
        if packed and chunk.lines:
            end_chunk(last_read)
        deliveries.sending = True
        while deliveries.outstanding:
            try:
                producer.flush(timeout=0.5)
            except KafkaTimeoutError:
                pass
            keep_checkpoint(force=True)
        deliveries.sending = False
        if on_progress is not None and unread:
            on_progress(unread)
        last_line = max(deliveries.acknowledged_through, report.resumed_after_line)
        write_checkpoint(checkpoint_file, identity, last_line, complete=True)
        report.acknowledged_through_line = last_line
        failed = False
    except KafkaError as error:  # a delivery the broker refused or that expired
        acknowledged = deliveries.acknowledged_through
        if isinstance(error, KafkaTimeoutError):
            raise _timeout(bootstrap, delivery_timeout, acknowledged) from None
        raise ReplayError(f"Kafka at {bootstrap} refused a delivery after line {acknowledged} ({error}); "
                          f"every line up to {acknowledged} is on the broker: fix the cause and run again "
                          "with --resume") from None
    finally:
        watch.stop()
        if failed:
            try:
                deliveries.advance()
            except KafkaError:
                pass
            if deliveries.acknowledged_through != written:
                write_checkpoint(checkpoint_file, identity, deliveries.acknowledged_through, complete=False)
            abandon(producer)
        else:
            producer.close()
        report.outages = watch.outages
        report.acknowledged_through_line = max(report.acknowledged_through_line, deliveries.acknowledged_through)
    report.seconds = time.monotonic() - started
    return report


def abandon(producer: KafkaProducer) -> None:
    """Close a producer whose records can no longer be delivered, without waiting for them.

    kafka-python's ``close(timeout)`` flushes first and raises when records are still pending; then its
    sender thread is stopped by hand and the producer marked closed, so its ``__del__`` does not try again.
    """
    try:
        producer.close(timeout=1)
    except KafkaError:
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(2)
        producer._closed = True


def _timeout(bootstrap: str, delivery_timeout: float, acknowledged: int) -> DeliveryTimeout:
    return DeliveryTimeout(
        f"gave up: Kafka at {bootstrap} acknowledged no delivery for {delivery_timeout:.0f} s "
        f"(--delivery-timeout). Every line up to {acknowledged:,} is on the broker; start the broker (or fix the "
        "network) and run the same command with --resume to continue from there.")
