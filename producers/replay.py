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

from bcfwatch.core.boards import BoardList, load_boards
from bcfwatch.core.events import PACKED_HEADERS, RECORDS, InvalidEvent, wire_fields
from bcfwatch.core.messages import dead_letter_record
from bcfwatch.core.settings import current
from bcfwatch.core.topics import Topics
from bcfwatch.infra.kafka import ensure_topics
from bcfwatch.infra.kafka_security import kafka_python_options
from bcfwatch.infra.lifecycle import broker_reachable
from producers.columnar_packing import ChunkPacking
from producers.eventlog.logformat import LogLine, check_line, is_csv, line_to_event, read_log, redacted_line
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
    produced: Counter[str] = field(default_factory=Counter)  # by event type
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)  # reason code -> lines
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


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay a log (everything but the log, the broker, the topics and the pseudonymiser).

    - ``partitions``: of each topic the replay creates (topics that exist keep theirs).
    - ``events_per_second``: pace the replay at this rate; ``None`` is as fast as the broker takes them.
    - ``resume``: continue after the line of the checkpoint (from the start when there is none).
    - ``checkpoints``: the checkpoint folder (default: the cache dir's ``replay-checkpoints``).
    - ``delivery_timeout``: seconds without any acknowledgement before :class:`DeliveryTimeout`.
    - ``packed``: publish packed records (docs/wire-format.md): the log is read in chunks of
      ``PACKED_CHUNK_LINES`` lines (or ``PACKED_CHUNK_SECONDS``), each chunk's events grouped per board and
      type into records of at most ``MAX_PACKED_EVENTS`` events / ``MAX_PACKED_BYTES`` bytes, in log order;
      the checkpoint moves to a chunk's last line once everything of the chunk (and before it) is acknowledged.
      Unpaced, a JSON Lines log is packed column by column (:mod:`producers.columnar_packing`), in chunks of
      ``BCFWATCH_REPLAY_CHUNK_BYTES``.
    - ``processes``: packing processes for the column-wise path (default one per core; one for a log of
      less than two chunks).
    - ``on_progress(lines)``: advances by lines read (skipped lines of a resumed replay included), every
      1,000 lines and at the end.
    - ``on_produced(line_number)``: called as each event is handed to the producer (benchmarks time it).
    - ``on_warning(message)``: outage messages (the broker acknowledges nothing, and is back).
    """

    partitions: int
    events_per_second: float | None = None
    resume: bool = False
    checkpoints: Path | None = None
    delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT
    packed: bool = False
    processes: int | None = None
    on_progress: Callable[[int], None] | None = None
    on_produced: Callable[[int], None] | None = None
    on_warning: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {self.partitions}")
        if self.events_per_second is not None and not self.events_per_second > 0:
            raise ValueError(f"events_per_second must be positive (or None for as fast as possible), "
                             f"not {self.events_per_second}")
        if not self.delivery_timeout > 0:
            raise ValueError(f"delivery_timeout must be a positive number of seconds, not {self.delivery_timeout}")
        if self.processes is not None and self.processes < 1:
            raise ValueError(f"processes must be at least 1 (or None for one per core), not {self.processes}")


def _ignore(_message: str) -> None:
    pass


class Replayer:
    """One replay of one log into Kafka: ``Replayer(log, bootstrap, topics, pseudonymiser, options).run()``.

    Each line becomes an event record keyed by its board (``packed``: joins its board's open batch) or a dead
    letter. Every record handed to the producer is registered with :class:`Deliveries` under the line the
    checkpoint may move to once it (and everything before it) is acknowledged: its own line, or with
    ``packed`` the end of the previous chunk until the chunk is complete. A replayer runs once.
    """

    _boards: BoardList  # from run() on
    _producer: KafkaProducer  # from run() on

    def __init__(self, path: Path, bootstrap: str, topics: Topics, pseudonymiser: Pseudonymiser,
                 options: ReplayOptions) -> None:
        self.path, self.bootstrap, self.topics, self.pseudonymiser = path, bootstrap, topics, pseudonymiser
        self.options = options
        self.identity = LogIdentity.of(path, topics.prefix, bootstrap)
        self.checkpoint_file = checkpoint_path(path, topics.prefix, bootstrap, options.checkpoints)
        self.report = ReplayReport(checkpoint=self.checkpoint_file)
        previous = read_checkpoint(self.checkpoint_file) if options.resume else None
        if previous is not None:
            self.report.resumed_after_line = self.report.acknowledged_through_line = previous.acknowledged_through_line
            self.report.already_complete = previous.complete
        resumed_after = self.report.resumed_after_line
        self._deliveries = Deliveries(resumed_after)
        self._watch = OutageWatch(self._deliveries, bootstrap, options.delivery_timeout, options.on_warning or _ignore)
        self._batches = BoardBatches(self._send_packed_record)
        self._chunk = _Chunk(floor=resumed_after, started=time.monotonic())
        self._record_types = {record: event_type for event_type, record in RECORDS.items()}
        self._written, self._last_written = resumed_after, time.monotonic()  # the checkpoint file's line, and when
        self._unread = 0  # lines read but not yet reported to on_progress
        self._ran = False

    def run(self) -> ReplayReport:
        """Produce every line of the log (after the checkpoint with ``resume``); returns what was produced and
        rejected. Raises :class:`DeliveryTimeout` when the broker acknowledges nothing for the delivery timeout
        and :class:`ReplayError` when it refuses a delivery; the checkpoint then holds what was delivered."""
        if self._ran:
            raise RuntimeError("a Replayer runs once; make a new one to replay again")
        self._ran = True
        if self.report.already_complete:
            return self.report
        self._boards = load_boards()
        topics = self.topics
        ensure_topics(self.bootstrap, [*topics.events, topics.dead_letter, topics.late_events], self.options.partitions)
        self._producer = make_producer(self.bootstrap, self.options.delivery_timeout)
        started = self._last_written = self._chunk.started = time.monotonic()
        self._watch.start()
        failed = True
        try:
            self._send_log(started)
            self._wait_for_acknowledgements()
            self._report_progress(at_least=1)
            self._mark_complete()
            failed = False
        except KafkaError as error:  # a delivery the broker refused or that expired
            raise self._delivery_failed(error) from None
        finally:
            self._shut_down(failed)
        self.report.seconds = time.monotonic() - started
        return self.report

    # -- reading the log ---------------------------------------------------------------------------------------
    def _send_log(self, started: float) -> None:
        """Every line after the resumed one, as events (or packed) and dead letters, paced when asked."""
        if self.column_wise:
            self._send_log_column_wise()
            return
        resumed_after = last_read = self.report.resumed_after_line
        for line in read_log(self.path):
            self._unread += 1
            if line.number <= resumed_after:
                self._report_progress(at_least=1000)
                continue
            self.report.lines += 1
            last_read = line.number
            if self.options.packed:
                self._add_to_chunk(line)
            else:
                self._send_event(line)
            self._report_progress(at_least=1000)
            self._save_checkpoint()
            self._pace(started)
        if self.options.packed and self._chunk.lines:
            self._send_chunk(last_read)

    @property
    def column_wise(self) -> bool:
        """Packed, unpaced, JSON Lines: the log is packed a chunk at a time, column by column
        (:mod:`producers.columnar_packing`); a paced or CSV replay goes line by line."""
        return self.options.packed and self.options.events_per_second is None and not is_csv(self.path)

    def _send_log_column_wise(self) -> None:
        """Every line after the resumed one, a chunk of whole lines at a time: its packed records and dead
        letters are registered under the previous chunk's last line, and the checkpoint may move to the chunk's
        own last line once all of it is acknowledged (as the line-by-line packing does)."""
        chunk_bytes = current().replay_chunk_bytes
        chunks = self.path.stat().st_size // chunk_bytes
        packing = ChunkPacking(self._boards, self.pseudonymiser,
                               max(1, min(self.options.processes or os.cpu_count() or 1, chunks)))
        for first_number, lines, skipped, packed in packing.chunks(self.path, self.report.resumed_after_line,
                                                                   chunk_bytes):
            self._unread += skipped
            if packed is not None:
                self.report.lines += packed.lines
                for line, error in packed.rejected:
                    self._dead_letter(line, error, self._chunk.floor)
                for event_type, board, value, numbers in packed.records:
                    self._send_packed_record(self.topics.event(event_type), board.encode(), value, numbers)
                self.report.produced.update(packed.produced)
                self._send_chunk(first_number + lines - 1)
            self._unread += lines
            self._report_progress(at_least=1)
            self._save_checkpoint()

    def _report_progress(self, at_least: int) -> None:
        """Tell ``on_progress`` about the lines read since it was last told, once there are ``at_least``."""
        if self.options.on_progress is not None and self._unread >= at_least:
            self.options.on_progress(self._unread)
            self._unread = 0

    def _pace(self, started: float) -> None:
        """With ``events_per_second``, sleep until the lines sent so far are due."""
        rate = self.options.events_per_second
        if rate:
            ahead = self.report.lines / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)  # pacing a live-rate replay, not synchronisation

    # -- one line ----------------------------------------------------------------------------------------------
    def _send_event(self, line: LogLine) -> None:
        """Send the line as one event record keyed by its board, or dead-letter it."""
        try:
            event = line_to_event(line, self.pseudonymiser, self._boards)
        except InvalidEvent as error:
            self._dead_letter(line, error, line.number)
        else:
            self._send_record(line.number, self.topics.event(event.type), event.board.encode(), event.to_wire())
            self.report.produced[event.type] += 1
            if self.options.on_produced is not None:
                self.options.on_produced(line.number)

    def _add_to_chunk(self, line: LogLine) -> None:
        """--packed: batch the line's event (or dead-letter it); send the chunk when it is full or old enough."""
        self._pack_event(line)
        chunk = self._chunk
        chunk.lines += 1
        if chunk.lines >= PACKED_CHUNK_LINES or time.monotonic() - chunk.started >= PACKED_CHUNK_SECONDS:
            self._send_chunk(line.number)

    def _pack_event(self, line: LogLine) -> None:
        """The same contract as :func:`line_to_event`, without building the record (the wire is identical)."""
        try:
            record, fields, digits = check_line(line, self._boards)
        except InvalidEvent as error:
            self._dead_letter(line, error, self._chunk.floor)
            return
        wire = wire_fields(record, fields, self.pseudonymiser.pseudonym(digits), self.pseudonymiser.key_id)
        event_type = self._record_types[record]
        self._batches.add(self.topics.event(event_type), fields["board"], wire, line.number)
        self.report.produced[event_type] += 1

    def _dead_letter(self, line: LogLine, error: InvalidEvent, registered_as: int) -> None:
        """Send the rejected line (NHS numbers pseudonymised or redacted) to the dead-letter topic."""
        reason, code = str(error), str(error.reason)
        self.report.rejected.append((line.number, reason))
        self.report.rejected_by_reason[code] += 1
        value = dead_letter_record("replay", error, redacted_line(line, self.pseudonymiser), file=self.path.name,
                                   line=line.number)
        self._send_record(registered_as, self.topics.dead_letter, None, value)

    # -- sending -----------------------------------------------------------------------------------------------
    def _send_record(self, registered_as: int, topic: str, key: bytes | None, value: bytes,
                     headers: list[tuple[str, bytes]] | None = None) -> None:
        """Hand one record to the producer; the checkpoint may reach ``registered_as`` once it is acknowledged."""
        deliveries = self._deliveries
        deliveries.sending = True
        try:
            future = self._producer.send(topic, key=key, value=value, headers=headers)
        except KafkaTimeoutError:
            raise self._timed_out(deliveries.advance()) from None
        finally:
            deliveries.sending = False
        deliveries.sent(registered_as, future)
        self._chunk.last_future = future

    def _send_packed_record(self, topic: str, key: bytes, value: bytes, lines: list[int]) -> None:
        """--packed: send one batch; acknowledged only as far as the line before the chunk (see _send_chunk)."""
        self._send_record(self._chunk.floor, topic, key, value, PACKED_HEADERS)
        self.report.packed_records += 1
        if self.options.on_produced is not None:
            for number in lines:
                self.options.on_produced(number)

    def _send_chunk(self, last_line: int) -> None:
        """Send every open batch; the checkpoint may move to ``last_line`` once all the chunk is acknowledged."""
        self._batches.flush()
        chunk = self._chunk
        if chunk.last_future is not None:
            self._deliveries.sent(last_line, chunk.last_future)  # registered again, after every future of the chunk
        chunk.floor, chunk.lines, chunk.last_future, chunk.started = last_line, 0, None, time.monotonic()

    # -- acknowledgements and the checkpoint -------------------------------------------------------------------
    def _save_checkpoint(self, force: bool = False) -> None:
        """Write the acknowledged line down when it moved (at most every ``CHECKPOINT_SECONDS`` unless
        ``force``); raise :class:`DeliveryTimeout` once the outage watch says the broker timed out."""
        deliveries = self._deliveries
        if self._watch.timed_out:
            raise self._timed_out(deliveries.acknowledged_through)
        now = time.monotonic()
        if force or now - self._last_written >= CHECKPOINT_SECONDS:
            acknowledged = deliveries.advance()
            if acknowledged != self._written:
                write_checkpoint(self.checkpoint_file, self.identity, acknowledged, complete=False)
                self._written = acknowledged
            self._last_written = now

    def _wait_for_acknowledgements(self) -> None:
        """Flush the producer until the broker has acknowledged (or refused) every record sent."""
        deliveries = self._deliveries
        deliveries.sending = True
        while deliveries.outstanding:
            try:
                self._producer.flush(timeout=0.5)
            except KafkaTimeoutError:
                pass
            self._save_checkpoint(force=True)
        deliveries.sending = False

    def _mark_complete(self) -> None:
        """Every line is on the broker: the checkpoint says so (a later ``resume`` sends nothing)."""
        last_line = max(self._deliveries.acknowledged_through, self.report.resumed_after_line)
        write_checkpoint(self.checkpoint_file, self.identity, last_line, complete=True)
        self.report.acknowledged_through_line = last_line

    def _shut_down(self, failed: bool) -> None:
        """Stop the outage watch and close the producer; after a failure, first record what was delivered."""
        self._watch.stop()
        deliveries = self._deliveries
        if failed:
            try:
                deliveries.advance()
            except KafkaError:
                pass
            if deliveries.acknowledged_through != self._written:
                write_checkpoint(self.checkpoint_file, self.identity, deliveries.acknowledged_through, complete=False)
            abandon(self._producer)
        else:
            self._producer.close()
        self.report.outages = self._watch.outages
        self.report.acknowledged_through_line = max(self.report.acknowledged_through_line,
                                                    deliveries.acknowledged_through)

    def _delivery_failed(self, error: KafkaError) -> ReplayError:
        """The error to stop with when a delivery expired or the broker refused it."""
        acknowledged = self._deliveries.acknowledged_through
        if isinstance(error, KafkaTimeoutError):
            return self._timed_out(acknowledged)
        return ReplayError(f"Kafka at {self.bootstrap} refused a delivery after line {acknowledged} ({error}); "
                           f"every line up to {acknowledged} is on the broker: fix the cause and run again "
                           "with --resume")

    def _timed_out(self, acknowledged: int) -> DeliveryTimeout:
        return _timeout(self.bootstrap, self.options.delivery_timeout, acknowledged)


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
    processes: int | None = None,
) -> ReplayReport:
    """Produce every line of ``path`` (after the checkpoint with ``resume``); returns what was produced and rejected.

    The arguments after ``partitions`` are those of :class:`ReplayOptions`; this is
    ``Replayer(path, bootstrap, topics, pseudonymiser, ReplayOptions(...)).run()``. Raises
    :class:`DeliveryTimeout` when the broker acknowledges nothing for ``delivery_timeout`` seconds and
    :class:`ReplayError` when it refuses a delivery.
    """
    options = ReplayOptions(
        partitions=partitions, events_per_second=events_per_second, resume=resume, checkpoints=checkpoints,
        delivery_timeout=delivery_timeout, packed=packed, processes=processes, on_progress=on_progress,
        on_produced=on_produced, on_warning=on_warning,
    )
    return Replayer(path, bootstrap, topics, pseudonymiser, options).run()


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
