"""What the worker publishes for other services, and the one way to read it: the schemas of
``PREFIX.board_days`` (compacted live counts and clocks) and of the state topic (partition snapshots).

Monitors and ``counts export`` read the counts through this module and :mod:`streams.state_reader`, never
through worker internals. What fails a schema goes to ``PREFIX.dead_letter``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from bcfwatch.core.messages import (
    InvalidMessage,
    SchemaReason,
    board_field,
    integer_field,
    iso_date_field,
    json_object,
    number_field,
    require_fields,
    string_field,
)
from bcfwatch.core.topics import EVENT_TYPES

# The counters published per board and day, in this order (``board_days`` values and snapshots' day_counts).
# What each counts is the worker's rules (:mod:`streams.board_state`).
COUNTERS = (
    "emergency_admissions",
    "other_admissions",
    "delayed_days_nhs",
    "delayed_days_social_care",
    "delayed_days_both",
    "care_home_admissions_65",
    "reablement_discharges_65",
    "at_home_91d",
    "late_events",
)
COUNTER_INDEX = {name: i for i, name in enumerate(COUNTERS)}


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
    stream_time_seconds: float  # the wire field ``stream_time``: seconds since the epoch

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
        board = board_field(parts[0], "board_days key")
        event_type = string_field(parts[2], "board_days key: event type", choices=frozenset(EVENT_TYPES))
        document = json_object(value, "board_days clock")
        require_fields(document, "board_days clock", {"stream_time"})
        return BoardClock(board, event_type, number_field(document["stream_time"], "board_days clock: stream_time"))
    if len(parts) != 2:
        raise InvalidMessage(SchemaReason.INVALID_KEY,
                             f"board_days: key {text[:60]!r} is neither board|YYYY-MM-DD nor board|clock|type")
    board = board_field(parts[0], "board_days key")
    day = iso_date_field(parts[1], "board_days key: day")
    document = json_object(value, "board_days counts")
    require_fields(document, "board_days counts", {"counts"})
    counts = document["counts"]
    if not isinstance(counts, list) or len(counts) != len(COUNTERS):
        raise InvalidMessage(SchemaReason.WRONG_TYPE, f"board_days counts: expected a list of {len(COUNTERS)} integers")
    if not all(type(count) is int for count in counts):
        for name, count in zip(COUNTERS, counts, strict=True):
            integer_field(count, f"board_days counts: {name}")  # says which
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
SNAPSHOT_LOOK_BACK = 32  # how many earlier snapshots of a partition readers try when the latest fails its schema


def parse_snapshot(value: bytes | None, partition: int | None = None) -> PartitionSnapshot:
    """One state-topic message; raises :class:`InvalidMessage`. ``partition``: the one it was read from."""
    document = json_object(value, "snapshot")
    require_fields(document, "snapshot", {"partition", "applied", *SNAPSHOT_TABLES},
                   frozenset({"held_events", "seen_segments"}))
    integer_field(document.get("seen_segments", 0), "snapshot: seen_segments", 0)
    number = integer_field(document["partition"], "snapshot: partition", 0)
    if partition is not None and number != partition:
        raise InvalidMessage(SchemaReason.INVALID_VALUE, f"snapshot: of partition {number}, read from {partition}")
    for table in (*SNAPSHOT_TABLES, "applied", "held_events"):
        if not isinstance(document.get(table, {}), dict):
            raise InvalidMessage(SchemaReason.WRONG_TYPE, f"snapshot: {table} is not an object")
    applied = {string_field(topic, "snapshot: applied topic"): integer_field(offset, f"snapshot: applied[{topic}]", -1)
               for topic, offset in document["applied"].items()}
    for key, counts in document["day_counts"].items():
        board, _, day = key.partition("|")
        board_field(board, "snapshot day_counts key")
        iso_date_field(day, "snapshot day_counts key: day")
        if not isinstance(counts, list) or len(counts) != len(COUNTERS):
            raise InvalidMessage(SchemaReason.WRONG_TYPE,
                                 f"snapshot day_counts[{key[:40]}]: not {len(COUNTERS)} counters")
        if not all(type(count) is int for count in counts):
            raise InvalidMessage(SchemaReason.WRONG_TYPE, f"snapshot day_counts[{key[:40]}]: counters not integers")
    for key, seconds in document["stream_times"].items():
        number_field(seconds, f"snapshot stream_times[{key[:40]}]")
    return PartitionSnapshot(number, applied, document)
