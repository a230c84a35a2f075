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
from streams.published import COUNTER_INDEX, BoardClock, parse_board_day

EMERGENCY = COUNTER_INDEX["emergency_admissions"]
log = logging.getLogger(__name__)


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
        self._boards = sorted(load_boards().codes)
        self._column = {board: i for i, board in enumerate(self._boards)}
        self._emergency: dict[tuple[int, int], int] = {}  # (board column, day ordinal) -> emergency admissions
        self._days: tuple[int, int] | None = None  # first and last day ordinal with any count
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
            day = parsed.day.toordinal()
            self._emergency[(self._column[parsed.board], day)] = counts[EMERGENCY]
            first, last = self._days or (day, day)
            self._days = (min(first, day), max(last, day))
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
        gives it (every plan board, every day from the first to the last with any count), without
        rebuilding the whole grid each round."""
        if self._days is None:
            return pd.DataFrame()
        first, last = self._days
        cells = np.array(list(self._emergency), dtype=np.int64).reshape(-1, 2)
        table = np.zeros((last - first + 1, len(self._boards)), dtype=np.int64)
        table[cells[:, 1] - first, cells[:, 0]] = np.fromiter(self._emergency.values(), dtype=np.int64,
                                                              count=len(cells))
        days = pd.DatetimeIndex(pd.date_range(date.fromordinal(first), date.fromordinal(last), unit="us"),
                                freq=None, name="date")
        return pd.DataFrame(table, index=days, columns=pd.Index(self._boards, name="board"))

    def close(self) -> None:
        self.consumer.close()
