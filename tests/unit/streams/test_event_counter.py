"""The worker's per-record logic (:class:`streams.event_counter.EventCounter`) on in-memory fakes: no Faust app,
no Kafka. Every count is checked against the board rules applied one event at a time
(``streams.board_state.apply_event`` on fresh tables), every side output against its wire shape."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from bcfwatch.core.calendar import epoch_day
from bcfwatch.core.events import PACKED_HEADERS, Event, Reason, pack, parse_event
from streams.board_state import apply_event, day_key
from streams.config import WorkerConfig
from streams.event_counter import EventCounter, held_events_by_type, messages_behind_by_partition
from streams.partition_state import PartitionState, empty_tables
from streams.published import COUNTER_INDEX

BOARD = "E08000025"
PATIENT = "c" * 64
START = datetime(2015, 6, 1, 12, tzinfo=UTC)
CONFIG = WorkerConfig(bootstrap="unused:9092", topic_prefix="unit", partitions=2, lateness_days=14,
                      max_ahead_days=31, web_host="127.0.0.1", seen_seal_after=1_000)
TOPICS = CONFIG.topics
ADMISSIONS, DISCHARGES = TOPICS.event("admission"), TOPICS.event("discharge")
LATENESS, MAX_AHEAD = 14 * 86_400, 31 * 86_400
KAFKA_TIME = 1_700_000_000.0


# -- the fakes -------------------------------------------------------------------------------------------------
@dataclass
class Envelope:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Any
    timestamp: float | None
    value: bytes | None = None  # (Faust's message holds the raw value too)


@dataclass
class Record:
    """A consumed record as Faust's agent hands it over: envelope, raw value, ack."""

    message: Envelope
    value: bytes
    acks: int = 0

    def ack(self) -> bool:
        self.acks += 1
        return True


class States:
    """The partition states: plain :class:`PartitionState` objects, created empty on first use."""

    def __init__(self) -> None:
        self.owned: dict[int, PartitionState] = {}
        self.stopping = False
        self.applying = asyncio.Lock()

    async def get(self, partition: int) -> PartitionState:
        return self.owned.setdefault(partition, PartitionState(partition))


class Outbox:
    """The side outputs, decoded; ``fail`` makes the next that many sends raise (a broker outage)."""

    def __init__(self, fail: int = 0) -> None:
        self.sent: list[tuple[str, bytes | None, dict[str, Any]]] = []
        self.fail = fail

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker unavailable")
        self.sent.append((topic, key, orjson.loads(value)))

    def on(self, topic: str) -> list[dict[str, Any]]:
        return [value for sent_to, _, value in self.sent if sent_to == topic]


class Metrics:
    """What the counter tells the metrics: outcomes by (type, outcome), dead letters by reason, latencies."""

    def __init__(self) -> None:
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.dead_letters: Counter[Reason] = Counter()
        self.latest: dict[str, float] = {}
        self.kafka_times: list[float | None] = []
        self.calls: list[str] = []

    def observe_events(self, outcomes: dict[tuple[str, str], int], latest_seconds: dict[str, float],
                       kafka_timestamp_seconds: float | None) -> None:
        self.calls.append("observe_events")
        self.outcomes.update(outcomes)
        for event_type, seconds in latest_seconds.items():
            self.latest[event_type] = max(self.latest.get(event_type, 0.0), seconds)
        self.kafka_times.append(kafka_timestamp_seconds)

    def count_dead_letter(self, reason: Reason) -> None:
        self.calls.append("count_dead_letter")
        self.dead_letters[reason] += 1


class Log:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str, /, *args: Any) -> None:
        self.errors.append(message % args)


@dataclass
class Worker:
    """An :class:`EventCounter` on fakes, and a producer of records for it (offsets per topic in the order the
    records are made)."""

    states: States = field(default_factory=States)
    outbox: Outbox = field(default_factory=Outbox)
    metrics: Metrics = field(default_factory=Metrics)
    log: Log = field(default_factory=Log)
    slept: list[float] = field(default_factory=list)
    offsets: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        async def sleep(seconds: float) -> None:
            self.slept.append(seconds)

        self.counter = EventCounter(CONFIG, self.states, self.outbox, metrics=self.metrics, log=self.log,
                                    sleep=sleep)

    def record(self, topic: str, value: bytes, packed: bool = False, partition: int = 0) -> Record:
        offset = self.offsets[topic]
        self.offsets[topic] += 1
        return Record(Envelope(topic, partition, offset, BOARD.encode(), PACKED_HEADERS if packed else [],
                               KAFKA_TIME, value), value)

    def single(self, event: Event | bytes) -> Record:
        return self.record(topic_of(event), event if isinstance(event, bytes) else event.to_wire())

    def packed(self, *events: Event | dict[str, Any], topic: str = ADMISSIONS) -> Record:
        return self.record(topic, pack([e.to_wire() if isinstance(e, Event) else orjson.dumps(e) for e in events]),
                           packed=True)

    def run(self, *records: Record) -> PartitionState:
        async def scenario() -> None:
            for record in records:
                await self.counter.count_until_applied(record)

        asyncio.run(scenario())
        return self.states.owned[0]


# -- events ----------------------------------------------------------------------------------------------------
def fields(event_type: str, event_id: str, at: datetime, **more: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": event_type, "event_id": event_id, "board": BOARD, "occurred_at": at.isoformat(),
                            "patient": PATIENT, "age": 80}
    if event_type == "admission":
        base.update(admission_method="21", provider="R1")
    if event_type == "discharge":
        base.update(discharge_destination="19", into_reablement=False)
    return {**base, **more}


def admission(event_id: str, at: datetime, **more: Any) -> Event:
    return parse_event(fields("admission", event_id, at, **more))


def discharge(event_id: str, at: datetime, **more: Any) -> Event:
    return parse_event(fields("discharge", event_id, at, **more))


def topic_of(event: Event | bytes) -> str:
    return ADMISSIONS if isinstance(event, bytes) else TOPICS.event(event.type)


def one_by_one(events: list[Event]) -> tuple[Any, Counter[tuple[str, str]]]:
    """The rules applied to each event in turn on fresh tables: the tables and the outcomes by (type, outcome)."""
    tables = empty_tables()
    outcomes: Counter[tuple[str, str]] = Counter()
    for event in events:
        for applied in apply_event(tables, event, LATENESS, MAX_AHEAD):
            outcomes[(applied.event.type, applied.outcome.value)] += 1
    return tables, outcomes


def assert_same_tables(state: PartitionState, expected: Any) -> None:
    assert dict(state.tables.day_counts) == dict(expected.day_counts)
    assert dict(state.tables.stream_times) == dict(expected.stream_times)
    assert dict(state.tables.held_events) == dict(expected.held_events)
    assert dict(state.tables.reablement_patients) == dict(expected.reablement_patients)
    assert dict(state.tables.reablement_due) == dict(expected.reablement_due)


def count(state: PartitionState, name: str, at: datetime) -> int:
    row = state.tables.day_counts.get(day_key(BOARD, epoch_day(at.timestamp())))
    return row[COUNTER_INDEX[name]] if row else 0


# -- the tests -------------------------------------------------------------------------------------------------
def test_single_and_packed_records_mixed_count_as_their_events_one_by_one():
    day = timedelta(days=1)
    admissions = [admission(f"a{n}", START + n * day, admission_method="21" if n % 3 else "31") for n in range(8)]
    discharges = [discharge(f"d{n}", START + n * day, into_reablement=n == 2, age=70 + n) for n in range(4)]
    worker = Worker()
    records = [
        worker.single(admissions[0]),
        worker.packed(*admissions[1:4]),
        worker.single(discharges[0]),
        worker.packed(*discharges[1:4], topic=DISCHARGES),
        worker.single(admissions[4]),
        worker.packed(*admissions[5:8]),
    ]
    state = worker.run(*records)

    expected, outcomes = one_by_one([admissions[0], *admissions[1:4], discharges[0], *discharges[1:4],
                                     admissions[4], *admissions[5:8]])
    assert_same_tables(state, expected)
    assert sum(count(state, "emergency_admissions", START + n * day) for n in range(8)) == 5  # 21 on 5 of 8 days
    assert count(state, "reablement_discharges_65", START + 2 * day) == 1
    assert worker.metrics.outcomes == outcomes
    assert outcomes[("admission", "counted")] == 8 and outcomes[("discharge", "counted")] == 4
    # each record reports its outcomes once, not once per event
    assert worker.metrics.calls.count("observe_events") == len(records)
    assert worker.metrics.latest == {"admission": admissions[7].occurred_at.timestamp(),
                                     "discharge": discharges[3].occurred_at.timestamp()}
    assert set(worker.metrics.kafka_times) == {KAFKA_TIME}
    # every record is applied and waits for a snapshot to be acknowledged; nothing went to a side topic
    assert state.applied == {ADMISSIONS: 3, DISCHARGES: 1}
    assert state.unacked == records and state.dirty
    assert all(record.acks == 0 for record in records)
    # only the first event of each stream went to a side topic: held until the second corroborated it
    assert [(topic, value["event_id"]) for topic, _, value in worker.outbox.sent] == [
        (TOPICS.held_events, "a0"), (TOPICS.held_events, "d0")]


def test_a_bad_element_of_a_packed_record_is_dead_lettered_alone_with_its_reason():
    good = [admission("a1", START), admission("a2", START + timedelta(hours=1)), admission("a3", START)]
    bad_patient = fields("admission", "a-bad", START, patient="943 476 5919")  # an NHS number, not a pseudonym
    no_method = {key: value for key, value in fields("admission", "a-no-method", START).items()
                 if key != "admission_method"}
    worker = Worker()
    state = worker.run(worker.single(admission("a0", START)), worker.packed(good[0], bad_patient, good[1], no_method,
                                                                            good[2]))

    expected, outcomes = one_by_one([admission("a0", START), *good])
    assert_same_tables(state, expected)
    assert count(state, "emergency_admissions", START) == 4
    assert worker.metrics.outcomes == outcomes
    assert worker.metrics.dead_letters == {Reason.INVALID_VALUE: 1, Reason.MISSING_FIELD: 1}
    dead = worker.outbox.on(TOPICS.dead_letter)
    assert [list(letter) for letter in dead] == [["source", "reason", "reason_code", "topic", "partition", "offset",
                                                  "index", "packed", "raw", "dead_lettered_at"]] * 2
    assert [(d["reason_code"], d["index"], d["packed"], d["topic"], d["partition"], d["offset"]) for d in dead] == [
        ("invalid_value", 1, True, ADMISSIONS, 0, 1), ("missing_field", 3, True, ADMISSIONS, 0, 1)]
    assert all(d["source"] == "worker" for d in dead)
    assert "pseudonym" in dead[0]["reason"] and dead[1]["reason"] == "missing field admission_method"
    assert "5919" not in dead[0]["raw"] and "[redacted]" in dead[0]["raw"] and '"a-bad"' in dead[0]["raw"]
    assert orjson.loads(dead[1]["raw"]) == no_method
    assert all(key == BOARD.encode() for topic, key, _ in worker.outbox.sent)
    assert state.applied == {ADMISSIONS: 1}  # the record's offset covers all of it, bad elements included


def test_bad_single_records_and_a_packed_value_not_an_array_are_dead_lettered_whole():
    worker = Worker()
    not_json = worker.single(b"not json at all 9434765919")
    not_an_array = worker.record(ADMISSIONS, orjson.dumps(fields("admission", "x", START)), packed=True)
    array_unpacked = worker.single(pack([admission("a1", START).to_wire()]))  # no header: one event, not a list
    state = worker.run(not_json, not_an_array, array_unpacked, worker.single(admission("a1", START)))

    dead = worker.outbox.on(TOPICS.dead_letter)
    assert [list(letter) for letter in dead] == [
        ["source", "reason", "reason_code", "topic", "partition", "offset", "raw", "dead_lettered_at"],
        ["source", "reason", "reason_code", "topic", "partition", "offset", "packed", "raw", "dead_lettered_at"],
        ["source", "reason", "reason_code", "topic", "partition", "offset", "raw", "dead_lettered_at"]]
    assert [(d["reason_code"], d["offset"]) for d in dead] == [("not_json", 0), ("not_json", 1), ("not_json", 2)]
    assert "not valid JSON" in dead[0]["reason"] and dead[0]["raw"] == "not json at all [redacted]"
    assert "not a JSON array" in dead[1]["reason"] and dead[1]["packed"] is True
    assert dead[2]["reason"] == "event is not a JSON object"
    assert worker.metrics.dead_letters == {Reason.NOT_JSON: 3}
    assert worker.metrics.outcomes == {("admission", "held"): 1}  # a stream's first event waits for a second
    assert state.applied == {ADMISSIONS: 3}


def test_duplicates_are_counted_once_across_single_and_packed_records():
    first, second = admission("a1", START), admission("a2", START)
    worker = Worker()
    once = worker.single(first)
    records = [once, worker.packed(first, second, second), worker.single(second)]
    state = worker.run(*records, once)  # the first record read again: its offset is already applied

    expected, outcomes = one_by_one([first, first, second, second, second])
    assert_same_tables(state, expected)
    assert count(state, "emergency_admissions", START) == 2
    assert outcomes == {("admission", "held"): 1, ("admission", "counted"): 2, ("admission", "duplicate"): 3}
    assert worker.metrics.outcomes == outcomes
    assert once.acks == 1 and state.unacked == records  # acknowledged at once, not applied a second time
    assert state.applied == {ADMISSIONS: 2}


def test_a_late_event_is_tallied_late_and_sent_to_the_late_topic():
    late_at = START - timedelta(days=14, seconds=1)
    on_bound = START - timedelta(days=14)
    worker = Worker()
    single_late = admission("late-1", late_at)
    state = worker.run(worker.single(admission("a1", START)), worker.single(admission("a2", START)),
                       worker.single(single_late),
                       worker.packed(admission("on-bound", on_bound), admission("late-2", late_at)))

    expected, outcomes = one_by_one([admission("a1", START), admission("a2", START), single_late,
                                     admission("on-bound", on_bound), admission("late-2", late_at)])
    assert_same_tables(state, expected)
    assert count(state, "late_events", late_at) == 2 and count(state, "emergency_admissions", on_bound) == 1
    assert outcomes[("admission", "late")] == 2 and worker.metrics.outcomes == outcomes
    late = worker.outbox.on(TOPICS.late_events)
    side = {"board": BOARD, "type": "admission", "occurred_at": late_at.isoformat(),
            "stream_time": START.isoformat(), "topic": ADMISSIONS, "partition": 0}
    assert late == [{**side, "event_id": "late-1", "offset": 2, "lateness_days": 14},
                    {**side, "event_id": "late-2", "offset": 3, "index": 1, "lateness_days": 14}]
    assert list(late[1]) == ["board", "type", "event_id", "occurred_at", "stream_time", "topic", "partition",
                             "offset", "index", "lateness_days"]
    assert worker.outbox.on(TOPICS.held_events)[0]["event_id"] == "a1"  # a stream's first event, until a2


def test_far_ahead_events_are_held_reported_and_released_when_corroborated():
    day = timedelta(days=1)
    # far: 80 days ahead of the clock; far-2: 40 days ahead, and more than max_ahead before far (so not corroborating)
    far, far_2 = admission("far", START + 80 * day), admission("far-2", START + 40 * day)
    worker = Worker()
    state = worker.run(worker.packed(admission("a1", START), admission("a2", START)), worker.single(far),
                       worker.single(far_2))
    assert held_events_by_type(worker.states.owned.values()) == {"admission": 2, "discharge": 0,
                                                                 "care_home_placement": 0}
    assert count(state, "emergency_admissions", far.occurred_at) == 0
    held = worker.outbox.on(TOPICS.held_events)
    assert [h["event_id"] for h in held] == ["a1", "far", "far-2"]
    assert held[0]["stream_time"] is None and held[0]["index"] == 0  # no clock yet
    assert held[1] == {"board": BOARD, "type": "admission", "event_id": "far",
                       "occurred_at": far.occurred_at.isoformat(), "stream_time": START.isoformat(),
                       "topic": ADMISSIONS, "partition": 0, "offset": 1, "max_ahead_days": 31,
                       "reason": "no clock yet, or more than max_ahead_days ahead of the board's clock: held until "
                                 "a later event on the same stream corroborates it"}

    # a later event within max_ahead of both releases them, in arrival order: far moves the clock, far-2 is then late
    corroborating = admission("near", START + 78 * day)
    worker.run(worker.single(corroborating))
    expected, outcomes = one_by_one([admission("a1", START), admission("a2", START), far, far_2, corroborating])
    assert_same_tables(state, expected)
    assert count(state, "emergency_admissions", far.occurred_at) == 1
    assert count(state, "late_events", far_2.occurred_at) == 1
    assert held_events_by_type([state])["admission"] == 0
    assert worker.metrics.outcomes == outcomes == {("admission", "held"): 3, ("admission", "counted"): 4,
                                                   ("admission", "late"): 1}
    assert len(worker.outbox.on(TOPICS.held_events)) == 3  # the release itself goes to no topic
    assert worker.outbox.on(TOPICS.late_events) == [{
        "board": BOARD, "type": "admission", "event_id": "far-2", "occurred_at": far_2.occurred_at.isoformat(),
        "stream_time": far.occurred_at.isoformat(), "topic": ADMISSIONS, "partition": 0, "offset": 3,
        "lateness_days": 14}]  # where it was released


def test_a_failed_record_is_tried_again_after_a_back_off_until_applied():
    worker = Worker(outbox=Outbox(fail=2))
    bad = worker.single(b"not json")  # its dead letter cannot be sent twice (a broker outage), then goes
    state = worker.run(bad, worker.single(admission("a1", START)))
    assert worker.slept == [0.5, 1.0]  # the back-off doubles
    assert worker.log.errors == [f"could not apply {ADMISSIONS}[0]@0 (broker unavailable); trying again in 0.5 s",
                                 f"could not apply {ADMISSIONS}[0]@0 (broker unavailable); trying again in 1.0 s"]
    assert [d["offset"] for d in worker.outbox.on(TOPICS.dead_letter)] == [0]
    assert state.applied == {ADMISSIONS: 1} and state.unacked[0] is bad


def test_an_event_applied_again_after_a_failure_counts_once():
    worker = Worker(outbox=Outbox(fail=1))
    # a stream's first event is held, its side output fails: applied again, it is a duplicate of itself
    state = worker.run(worker.single(admission("a1", START)), worker.single(admission("a2", START)))
    assert worker.slept == [0.5]
    expected, _ = one_by_one([admission("a1", START), admission("a2", START)])
    assert_same_tables(state, expected)
    assert count(state, "emergency_admissions", START) == 2
    assert worker.metrics.outcomes == {("admission", "held"): 1, ("admission", "duplicate"): 1,
                                       ("admission", "counted"): 2}
    assert state.applied == {ADMISSIONS: 1} and len(state.unacked) == 2


def test_a_stopping_worker_applies_nothing_more():
    worker = Worker()
    worker.states.stopping = True
    record = worker.single(admission("a1", START))

    async def scenario() -> None:
        await worker.counter.count_until_applied(record)

    asyncio.run(scenario())
    assert worker.states.owned == {} and record.acks == 0 and worker.metrics.calls == []


def test_messages_behind_each_owned_partition():
    first, second = PartitionState(0), PartitionState(1)
    first.applied = {ADMISSIONS: 9, DISCHARGES: 4}
    ends = {(ADMISSIONS, 0): 15, (DISCHARGES, 0): 5, (ADMISSIONS, 1): 3, (DISCHARGES, 1): None}
    behind = messages_behind_by_partition({0: first, 1: second}, [ADMISSIONS, DISCHARGES],
                                          lambda topic, partition: ends[(topic, partition)])
    assert behind == {0: 5, 1: 3}


def test_a_failed_side_output_loses_no_report_of_the_events_after_it():
    worker = Worker(outbox=Outbox(fail=1))
    # three held events in one packed record (each the first of its stream, or far ahead of it); the first
    # report cannot be sent: the record is applied again, and the events after it are reported then
    far_ahead = admission("a9", START + timedelta(days=400))
    worker.run(worker.packed(admission("a1", START), discharge("d1", START), far_ahead))
    assert worker.slept == [0.5]
    assert [held["event_id"] for held in worker.outbox.on(TOPICS.held_events)] == ["d1", "a9"]
    # a1: held, then a duplicate of itself on the retry, then released by a9 (which it is too far behind to
    # corroborate in turn: a9 stays held)
    assert worker.metrics.outcomes == {("admission", "held"): 2, ("admission", "duplicate"): 1,
                                       ("admission", "counted"): 1, ("discharge", "held"): 1}


def test_an_applied_record_awaits_its_snapshot_without_its_value():
    """Snapshots can be half a minute apart: the records they will acknowledge are kept, their values not."""
    day = timedelta(days=1)
    worker = Worker()
    records = [worker.packed(*[admission(f"a{n}", START + n * day) for n in range(3)]),
               worker.single(admission("a3", START + 3 * day))]
    state = worker.run(*records)
    assert state.unacked == records
    assert all(record.value is None and record.message.value is None and record.acks == 0 for record in records)
    assert worker.metrics.outcomes == {("admission", "held"): 1, ("admission", "counted"): 4}


def test_ids_are_sealed_as_soon_as_due_and_still_found_as_duplicates():
    """A partition's recent ids are sealed when there are enough of them, not only at its next snapshot (which
    can be half a minute away in a bulk load); the segment waits for that snapshot, and a repeat of a sealed id is
    a duplicate."""
    day = timedelta(days=1)
    worker = Worker()
    worker.counter.seen_seal_after = 4
    first = worker.packed(*[admission(f"a{n}", START + n * day) for n in range(5)])
    state = worker.run(first)
    assert len(state.unsent_segments) == 1 and not state.tables.seen_events.recent
    assert len(state.tables.seen_events) == 5
    worker.run(worker.packed(admission("a2", START + 2 * day), admission("a5", START + 5 * day)))
    assert worker.metrics.outcomes[("admission", "duplicate")] == 1
    # a0 was held, then released by a1 and counted: a0-a5 counted once each
    assert worker.metrics.outcomes[("admission", "counted")] == 6
