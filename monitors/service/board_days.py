"""Follow the live counts the workers publish to ``PREFIX.board_days`` (``streams/partition_state.py``).

The topic is compacted and keyed by ``board|YYYY-MM-DD`` (value ``{"counts": [...COUNTERS]}``) and
``board|clock|type`` (value ``{"stream_time": seconds}``). The workers publish what each snapshot
changed just before writing the snapshot, so the monitor reads only what changed since its last round
instead of every worker's whole state.

Every message is checked against the topic's schema (``monitors/alerting/topic_schemas.py``): one that fails is
sent to the dead-letter topic with its reason (when a :class:`DeadLetters` is given; otherwise logged) and
skipped, and the messages around it are still applied.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
from kafka import TopicPartition
from kafka.partitioner.default import murmur2

from bcfwatch.core.boards import load_boards
from bcfwatch.core.messages import DeadLetters, InvalidMessage
from bcfwatch.infra.kafka import consumer_lag, poll_to_end, reader, topic_partitions
from monitors.alerting.metric_timeline import COUNTERS as METRIC_COUNTERS
from monitors.alerting.metric_timeline import Tables, tables_from_counts
from streams.daily_table import from_state
from streams.published import COUNTER_INDEX, COUNTERS, BoardClock, parse_board_day

EMERGENCY = COUNTER_INDEX["emergency_admissions"]
log = logging.getLogger(__name__)


class DayCountGrid:
    """Every board's day counts as one days x boards x COUNTERS array, written cell by cell as counts arrive.

    Its tables are the ones the offline path pivots from the export grid (``daily_emergency_admissions`` and
    ``tables_from_counts`` of ``from_state(day_counts)``: every board, every day from the first to the last with
    any count, zeros filled), cut from the array instead of pivoted from every board-day. The monitor asks for
    them every round a week or a month settles somewhere.
    """

    GROWTH_DAYS = 64  # room added on either side when a day falls outside the array

    def __init__(self, boards: list[str]) -> None:
        self.boards = boards
        self._column = {board: i for i, board in enumerate(boards)}
        self._origin = 0  # the day ordinal of the array's first row
        self._values = np.zeros((0, len(boards), len(COUNTERS)), dtype=np.int64)
        self._days: tuple[int, int] | None = None  # first and last day ordinal with any count

    def set(self, board: str, day: date, counts: list[int]) -> None:
        ordinal = day.toordinal()
        first, last = self._days or (ordinal, ordinal)
        self._days = (min(first, ordinal), max(last, ordinal))
        if not self._origin <= ordinal < self._origin + len(self._values):
            self._grow(ordinal)
        self._values[ordinal - self._origin, self._column[board]] = counts

    def _grow(self, ordinal: int) -> None:
        start = min(ordinal, self._origin if len(self._values) else ordinal) - self.GROWTH_DAYS
        end = max(ordinal + 1, self._origin + len(self._values)) + self.GROWTH_DAYS
        values = np.zeros((end - start, len(self.boards), len(COUNTERS)), dtype=np.int64)
        if len(self._values):
            values[self._origin - start:self._origin - start + len(self._values)] = self._values
        self._origin, self._values = start, values

    def _array(self) -> np.ndarray:
        """The days from the first to the last with any count (a view: copy what is kept)."""
        assert self._days is not None
        first, last = self._days
        return self._values[first - self._origin:last - self._origin + 1]

    def _axes(self) -> tuple[pd.DatetimeIndex, pd.Index]:
        """The tables' index (every day from the first to the last with any count) and columns (the boards)."""
        assert self._days is not None
        first, last = self._days
        days = pd.DatetimeIndex(pd.date_range(date.fromordinal(first), date.fromordinal(last), unit="us"),
                                freq=None, name="date")
        return days, pd.Index(self.boards, name="board")

    def emergency_admissions(self) -> pd.DataFrame:
        """Days x boards emergency admissions (an empty frame before any count)."""
        if self._days is None:
            return pd.DataFrame()
        days, boards = self._axes()
        return pd.DataFrame(self._array()[:, :, EMERGENCY].copy(), index=days, columns=boards)

    def tables(self) -> Tables:
        """Every counter the other plan metrics need, days x boards (``tables_from_counts``'s)."""
        if self._days is None:
            return tables_from_counts(from_state({}))
        grid, (days, boards) = self._array(), self._axes()
        return {name: pd.DataFrame(grid[:, :, [COUNTER_INDEX[column] for column in columns]].sum(axis=2),
                                   index=days, columns=boards)
                for name, columns in METRIC_COUNTERS.items()}


class BoardDays:
    """The latest day counts and stream times on the topic, kept up to date by :meth:`refresh`."""

    def __init__(self, bootstrap: str, topic: str, dead_letters: DeadLetters | None = None) -> None:
        self.topic = topic
        self.dead_letters = dead_letters
        self.rejected = 0  # messages that failed the schema
        self.lag: int | None = None  # messages behind the topic's end at the start of the last refresh
        self.consumer = reader(bootstrap, "bcfwatch-board-days")
        self.partitions: list[TopicPartition] = []
        self.day_counts: dict[str, list[int]] = {}  # board|YYYY-MM-DD -> COUNTERS
        self.stream_times: dict[str, float] = {}  # board|type -> stream time, in seconds since the epoch
        self.grid = DayCountGrid(sorted(load_boards().codes))
        self._partition_of: dict[str, int] = {}  # board -> the partition its counts and clocks come on

    def refresh(self, timeout: float = 60.0, stop: Callable[[], bool] | None = None) -> set[str]:
        """Read to the topic's current end; return the boards whose counts or clocks changed.
        ``stop``: checked between batches; when it says so, return what was read so far."""
        if not self.partitions:
            self.partitions = topic_partitions(self.consumer, self.topic)
            if not self.partitions:
                return set()  # no worker has published yet
            self.consumer.assign(self.partitions)
            self.consumer.seek_to_beginning(*self.partitions)
        end = self.consumer.end_offsets(self.partitions)
        self.lag = consumer_lag(self.consumer, end)
        changed: set[str] = set()
        for record in poll_to_end(self.consumer, end, self.topic, timeout, poll_ms=100, stop=stop):
            try:
                parsed = parse_board_day(record.key, record.value)
            except InvalidMessage as error:
                self._reject(error, record)
            else:
                board = self._apply(parsed)
                changed.add(board)
                self._partition_of[board] = record.partition
        if self.dead_letters is not None:
            self.dead_letters.producer.flush()
        self.lag = consumer_lag(self.consumer, end)
        return changed

    def _reject(self, error: InvalidMessage, record) -> None:
        self.rejected += 1
        if self.dead_letters is not None:
            self.dead_letters.send(error, record)
        else:
            log.warning("skipping %s[%d]@%d: %s", record.topic, record.partition, record.offset, error)

    def _apply(self, parsed) -> str:
        if isinstance(parsed, BoardClock):
            self.stream_times[parsed.key] = parsed.stream_time_seconds
        else:
            counts = list(parsed.counts)
            self.day_counts[parsed.key] = counts
            self.grid.set(parsed.board, parsed.day, counts)
        return parsed.board

    def partition_of(self, board: str) -> int:
        """The partition a board's counts come on: the worker publishes them on its events' partition, which the
        replay's producer chose by the board's key (Kafka's default partitioner: murmur2), so a board not read
        yet is placed where its first message will come."""
        if board in self._partition_of:
            return self._partition_of[board]
        if not self.partitions:
            return 0  # nothing published yet: every board is equally unread
        return (murmur2(board.encode()) & 0x7FFFFFFF) % len(self.partitions)

    def daily_emergency_admissions(self) -> pd.DataFrame:
        """Days x boards emergency admissions, as ``daily_emergency_admissions(from_state(day_counts))``
        gives it, without rebuilding the whole grid each round."""
        return self.grid.emergency_admissions()

    def tables(self) -> Tables:
        """The other plan metrics' tables, as ``tables_from_counts(from_state(day_counts))`` gives them."""
        return self.grid.tables()

    def close(self) -> None:
        self.consumer.close()
