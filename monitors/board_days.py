"""Follow the live counts the workers publish to ``PREFIX.board_days`` (``streams/partition_state.py``).

The topic is compacted and keyed by ``board|YYYY-MM-DD`` (value ``{"counts": [...COUNTERS]}``) and
``board|clock|type`` (value ``{"stream_time": seconds}``). The workers publish what each snapshot
changed just before writing the snapshot, so the monitor reads only what changed since its last round
instead of every worker's whole state.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import orjson
import pandas as pd
from kafka import KafkaConsumer, TopicPartition

from bcfwatch.boards import load_boards
from streams.board_state import COUNTER_INDEX

EMERGENCY = COUNTER_INDEX["emergency_admissions"]


class BoardDays:
    """The latest day counts and stream times on the topic, kept up to date by :meth:`refresh`."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                      client_id="bcfwatch-board-days")
        self.partitions: list[TopicPartition] = []
        self.day_counts: dict[str, list[int]] = {}  # board|YYYY-MM-DD -> COUNTERS
        self.stream_times: dict[str, float] = {}  # board|type -> epoch seconds
        self._boards = sorted(load_boards().codes)
        self._column = {board: i for i, board in enumerate(self._boards)}
        self._emergency: dict[tuple[int, int], int] = {}  # (board column, day ordinal) -> emergency admissions
        self._days: tuple[int, int] | None = None  # first and last day ordinal with any count

    def refresh(self, timeout: float = 60.0) -> set[str]:
        """Read to the topic's current end; return the boards whose counts or clocks changed."""
        if not self.partitions:
            found = self.consumer.partitions_for_topic(self.topic)
            if not found:
                return set()  # no worker has published yet
            self.partitions = [TopicPartition(self.topic, p) for p in sorted(found)]
            self.consumer.assign(self.partitions)
            self.consumer.seek_to_beginning(*self.partitions)
        end = self.consumer.end_offsets(self.partitions)
        changed: set[str] = set()
        deadline = time.monotonic() + timeout
        while any(self.consumer.position(tp) < end[tp] for tp in self.partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic} to its end within {timeout:.0f} s")
            for records in self.consumer.poll(timeout_ms=100).values():
                for record in records:
                    changed.add(self._apply(record.key.decode(), orjson.loads(record.value)))
        return changed

    def _apply(self, key: str, value: dict) -> str:
        board, _, rest = key.partition("|")
        if rest.startswith("clock|"):
            self.stream_times[f"{board}|{rest[len('clock|'):]}"] = value["stream_time"]
        else:
            self.day_counts[key] = value["counts"]
            day = date.fromisoformat(rest).toordinal()
            self._emergency[(self._column[board], day)] = value["counts"][EMERGENCY]
            first, last = self._days or (day, day)
            self._days = (min(first, day), max(last, day))
        return board

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
