"""One schema per topic a bcfwatch service reads: typed records, one parse function each, one error type.

Every consumer (the worker's state loader, the monitor and its start-up restore, the notifier and its
ledger, ``counts export``) parses what it reads here and never trusts a message further than its schema:

========================  ==========================================  ==============================
topic                     parse                                       what fails goes to
========================  ==========================================  ==============================
``PREFIX.board_days``     :func:`parse_board_day` -> BoardDayCount |   ``PREFIX.dead_letter``
                          BoardClock
``bcfwatch-PREFIX-state`` :func:`parse_snapshot` -> PartitionSnapshot  ``PREFIX.dead_letter``
``PREFIX.alerts``         :func:`parse_alert` -> Alert                 ``PREFIX.delivery_dead_letter``
``PREFIX.deliveries``     :func:`parse_delivery` -> DeliveryRecord     ``PREFIX.delivery_dead_letter``
========================  ==========================================  ==============================

(The event topics have their own contract in ``streams/records.py``; what fails it goes to
``PREFIX.dead_letter`` too.) A failure raises :class:`InvalidMessage` with a machine-readable
``reason_code`` and a sentence; :func:`dead_letter_record` turns it into the dead-letter message, which
carries the source topic, partition and offset (a reader drops repeats by them: a service that re-reads a
topic from its start, as the monitor does, dead-letters the same bad message again) and the raw message
with anything that looks like an NHS number redacted. Invalid alerts are never delivered.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from functools import cache
from typing import Any

import orjson

from bcfwatch.boards import load_boards
from bcfwatch.settings import EVENT_TYPES
from monitors.spc import Assurance, Variation
from producers.pseudonym import redact
from streams.board_state import COUNTERS

log = logging.getLogger(__name__)
RAW_LIMIT = 4_096  # characters of a bad message kept in its dead-letter record


class SchemaReason(StrEnum):
    NOT_JSON = "not_json"
    INVALID_KEY = "invalid_key"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_BOARD = "unknown_board"


class InvalidMessage(ValueError):
    """A message that breaks its topic's schema; ``reason_code`` says how, ``str()`` says where."""

    def __init__(self, reason_code: SchemaReason, detail: str) -> None:
        super().__init__(redact(detail))  # a bad field may quote what looks like an NHS number
        self.reason_code = reason_code


# -- small checks ----------------------------------------------------------------------------------------
def _json_object(value: bytes | None, what: str) -> dict[str, Any]:
    if value is None:
        raise InvalidMessage(SchemaReason.MISSING_FIELD, f"{what}: the message has no value")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise InvalidMessage(SchemaReason.NOT_JSON, f"{what}: not JSON ({error})") from None
    if not isinstance(decoded, dict):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"{what}: expected a JSON object, got {type(decoded).__name__}")
    return decoded


def _fields(document: dict[str, Any], what: str, required: set[str], optional: frozenset[str] = frozenset()) -> None:
    missing = sorted(required - document.keys())
    if missing:
        raise InvalidMessage(SchemaReason.MISSING_FIELD, f"{what}: missing {', '.join(missing)}")
    unknown = sorted(document.keys() - required - optional)
    if unknown:
        raise InvalidMessage(SchemaReason.UNKNOWN_FIELD, f"{what}: unknown field(s) {', '.join(unknown[:5])}")


def _integer(value: Any, what: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"{what}: expected an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: {value} is below {minimum}")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"{what}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: not a finite number")
    return float(value)


def _string(value: Any, what: str, pattern: re.Pattern[str] | None = None,
            choices: frozenset[str] | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"{what}: expected a string, got {type(value).__name__}")
    if pattern is not None and not pattern.fullmatch(value):
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: {value[:40]!r} is not of the expected form")
    if choices is not None and value not in choices:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: {value[:40]!r} is not one of {sorted(choices)}")
    return value


def _iso_date(value: Any, what: str) -> date:
    text = _string(value, what, ISO_DATE)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"{what}: {text!r} is not a calendar date") from None


def _board(value: Any, what: str) -> str:
    code = _string(value, what)
    if code not in _plan_boards():
        raise InvalidMessage(SchemaReason.UNKNOWN_BOARD, f"{what}: {code[:40]!r} is not a BCF plan board")
    return code


@cache
def _plan_boards() -> frozenset[str]:
    return frozenset(load_boards().codes)


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


# -- PREFIX.board_days -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BoardDayCount:
    """``board|YYYY-MM-DD`` -> ``{"counts": [COUNTERS...]}``: one board's counters for one day."""

    board: str
    day: date
    counts: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.board}|{self.day.isoformat()}"


@dataclass(frozen=True)
class BoardClock:
    """``board|clock|type`` -> ``{"stream_time": seconds}``: a board's event-time clock for one event type."""

    board: str
    event_type: str
    stream_time: float

    @property
    def key(self) -> str:
        return f"{self.board}|{self.event_type}"


def parse_board_day(key: bytes | None, value: bytes | None) -> BoardDayCount | BoardClock:
    """One ``PREFIX.board_days`` message; raises :class:`InvalidMessage`."""
    if key is None:
        raise InvalidMessage(SchemaReason.INVALID_KEY, "board_days: the message has no key")
    try:
        text = key.decode()
    except UnicodeDecodeError:
        raise InvalidMessage(SchemaReason.INVALID_KEY, "board_days: the key is not UTF-8") from None
    parts = text.split("|")
    if len(parts) == 3 and parts[1] == "clock":
        board = _board(parts[0], "board_days key")
        event_type = _string(parts[2], "board_days key: event type", choices=frozenset(EVENT_TYPES))
        document = _json_object(value, "board_days clock")
        _fields(document, "board_days clock", {"stream_time"})
        return BoardClock(board, event_type, _number(document["stream_time"], "board_days clock: stream_time"))
    if len(parts) != 2:
        raise InvalidMessage(SchemaReason.INVALID_KEY,
                             f"board_days: key {text[:60]!r} is neither board|YYYY-MM-DD nor board|clock|type")
    board = _board(parts[0], "board_days key")
    day = _iso_date(parts[1], "board_days key: day")
    document = _json_object(value, "board_days counts")
    _fields(document, "board_days counts", {"counts"})
    counts = document["counts"]
    if not isinstance(counts, list) or len(counts) != len(COUNTERS):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"board_days counts: expected a list of {len(COUNTERS)} integers")
    if not all(type(count) is int for count in counts):
        for name, count in zip(COUNTERS, counts, strict=True):
            _integer(count, f"board_days counts: {name}")  # says which
    return BoardDayCount(board, day, tuple(counts))


# -- bcfwatch-PREFIX-state ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PartitionSnapshot:
    """A worker's durable state of one partition (``streams/partition_state.py``), checked at the top level
    and in full for what other services read (offsets, day counts, clocks)."""

    partition: int
    applied: dict[str, int]
    document: dict[str, Any]  # the whole decoded snapshot (tables included)

    @property
    def day_counts(self) -> dict[str, list[int]]:
        return self.document["day_counts"]


SNAPSHOT_TABLES = ("day_counts", "stream_times", "seen_events", "reablement_patients", "reablement_due")


def parse_snapshot(value: bytes | None, partition: int | None = None) -> PartitionSnapshot:
    """One state-topic message; raises :class:`InvalidMessage`. ``partition``: the one it was read from."""
    document = _json_object(value, "snapshot")
    _fields(document, "snapshot", {"partition", "applied", *SNAPSHOT_TABLES}, frozenset({"held_events"}))
    number = _integer(document["partition"], "snapshot: partition", 0)
    if partition is not None and number != partition:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"snapshot: of partition {number}, read from {partition}")
    for table in (*SNAPSHOT_TABLES, "applied", "held_events"):
        if not isinstance(document.get(table, {}), dict):
            raise InvalidMessage(SchemaReason.WRONG_TYPE, f"snapshot: {table} is not an object")
    applied = {_string(topic, "snapshot: applied topic"): _integer(offset, f"snapshot: applied[{topic}]", -1)
               for topic, offset in document["applied"].items()}
    for key, counts in document["day_counts"].items():
        board, _, day = key.partition("|")
        _board(board, "snapshot day_counts key")
        _iso_date(day, "snapshot day_counts key: day")
        if not isinstance(counts, list) or len(counts) != len(COUNTERS):
            raise InvalidMessage(SchemaReason.WRONG_TYPE,
                                 f"snapshot day_counts[{key[:40]}]: not {len(COUNTERS)} counters")
        if not all(type(count) is int for count in counts):
            raise InvalidMessage(SchemaReason.WRONG_TYPE, f"snapshot day_counts[{key[:40]}]: counters not integers")
    for key, seconds in document["stream_times"].items():
        _number(seconds, f"snapshot stream_times[{key[:40]}]")
    return PartitionSnapshot(number, applied, document)


# -- PREFIX.alerts ---------------------------------------------------------------------------------------
ALERT_STATES = frozenset({"raised", "updated", "resolved"})
SEVERITIES = frozenset({"critical", "warning"})
METRICS = frozenset({"emergency_admissions"})
ALERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
RULE = re.compile(r"[A-Za-z0-9 _:,.()+'-]{1,80}")  # includes "baseline year (board's own shape)"
ALERT_NUMBERS = ("actual", "planned", "variance_pct", "z", "projected_year_end", "planned_year_end",
                 "money_at_risk_gbp")
ALERT_REQUIRED = {"event_id", "alert_id", "sequence", "state", "severity", "board", "metric", "as_of", "spc_rules",
                  "spc_variation", "assurance", *ALERT_NUMBERS}
# What an assessment adds (``monitors/drift.py``, Assessment.alert_fields): optional, checked when present.
ALERT_OPTIONAL_NUMBERS = ("projected_year_end_low", "projected_year_end_high", "window_z", "window_variance_pct",
                          "threshold_z", "dispersion")
ALERT_OPTIONAL_TEXT = ("expected_pattern", "noise_source")
ALERT_OPTIONAL = frozenset({*ALERT_OPTIONAL_NUMBERS, *ALERT_OPTIONAL_TEXT, "window_weeks"})


@dataclass(frozen=True)
class Alert:
    """One alert event (``monitors/alerts.py``). ``payload`` is the checked document, delivered as is."""

    event_id: str
    alert_id: str
    sequence: int
    state: str
    severity: str
    board: str
    metric: str
    as_of: date
    payload: dict[str, Any]


def parse_alert(value: bytes | None) -> Alert:
    """One ``PREFIX.alerts`` message; raises :class:`InvalidMessage`."""
    document = _json_object(value, "alert")
    _fields(document, "alert", ALERT_REQUIRED, ALERT_OPTIONAL)
    alert_id = _string(document["alert_id"], "alert: alert_id", ALERT_ID)
    sequence = _integer(document["sequence"], "alert: sequence", 1)
    event_id = _string(document["event_id"], "alert: event_id")
    if event_id != f"{alert_id}-{sequence}":
        raise InvalidMessage(SchemaReason.INVALID_VALUE, "alert: event_id is not alert_id-sequence")
    state = _string(document["state"], "alert: state", choices=ALERT_STATES)
    severity = _string(document["severity"], "alert: severity", choices=SEVERITIES)
    board = _board(document["board"], "alert: board")
    metric = _string(document["metric"], "alert: metric", choices=METRICS)
    as_of = _iso_date(document["as_of"], "alert: as_of")
    for name in ALERT_NUMBERS:
        _number(document[name], f"alert: {name}")
    rules = document["spc_rules"]
    if not isinstance(rules, list):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, "alert: spc_rules is not a list")
    for rule in rules:
        _string(rule, "alert: spc_rules item", RULE)
    _string(document["spc_variation"], "alert: spc_variation", choices=frozenset(Variation))
    _string(document["assurance"], "alert: assurance", choices=frozenset(Assurance))
    for name in ALERT_OPTIONAL_NUMBERS:
        if name in document:
            _number(document[name], f"alert: {name}")
    for name in ALERT_OPTIONAL_TEXT:
        if name in document:
            _string(document[name], f"alert: {name}", RULE)
    if "window_weeks" in document:
        _integer(document["window_weeks"], "alert: window_weeks", 0)
    return Alert(event_id, alert_id, sequence, state, severity, board, metric, as_of, document)


# -- PREFIX.deliveries -----------------------------------------------------------------------------------
DELIVERY_OUTCOMES = frozenset({"delivered", "dead_lettered"})


@dataclass(frozen=True)
class DeliveryRecord:
    """One line of the notifier's ledger: ``subscriber:event_id`` and what became of it."""

    key: str
    outcome: str
    attempts: int
    at: str


def parse_delivery(value: bytes | None) -> DeliveryRecord:
    """One ``PREFIX.deliveries`` message; raises :class:`InvalidMessage`."""
    document = _json_object(value, "delivery")
    _fields(document, "delivery", {"key", "outcome", "attempts", "at"})
    key = _string(document["key"], "delivery: key")
    if ":" not in key:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, "delivery: key is not subscriber:event_id")
    return DeliveryRecord(key, _string(document["outcome"], "delivery: outcome", choices=DELIVERY_OUTCOMES),
                          _integer(document["attempts"], "delivery: attempts", 0),
                          _string(document["at"], "delivery: at"))


# -- dead letters ----------------------------------------------------------------------------------------
def _shown(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return redact(raw[:RAW_LIMIT].decode("utf-8", "replace"))


def dead_letter_record(source: str, error: InvalidMessage, topic: str, partition: int, offset: int,
                       key: bytes | None, value: bytes | None) -> bytes:
    """The dead-letter message for a message that failed its schema (NHS-number-like digits redacted)."""
    return orjson.dumps({
        "source": source, "reason": str(error), "reason_code": str(error.reason_code), "topic": topic,
        "partition": partition, "offset": offset, "key": _shown(key), "raw": _shown(value),
        "dead_lettered_at": datetime.now(UTC).isoformat(),
    })


class DeadLetters:
    """Sends what fails a schema to a dead-letter topic (kafka-python producer), and counts it."""

    def __init__(self, producer: Any, topic: str, source: str) -> None:
        self.producer = producer
        self.topic = topic
        self.source = source
        self.sent = 0

    def send(self, error: InvalidMessage, record: Any) -> None:
        """``record``: the consumer record that failed (topic, partition, offset, key, value)."""
        log.warning("%s: dead-lettering %s[%d]@%d to %s: %s", self.source, record.topic, record.partition,
                    record.offset, self.topic, error)
        key = None if record.key is None else _shown(record.key).encode()
        self.producer.send(self.topic, key=key, value=dead_letter_record(
            self.source, error, record.topic, record.partition, record.offset, record.key, record.value))
        self.sent += 1
