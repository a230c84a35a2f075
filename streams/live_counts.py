"""The live per-board per-day counts, read from the workers' committed state: what `bcfwatch counts export`
writes and what the demo compares with the offline backtest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from streams.config import WorkerConfig
from streams.daily_table import from_state, write_csv
from streams.state_reader import day_counts, latest_snapshots, wait_until_caught_up


@dataclass(frozen=True)
class ExportedCounts:
    table: pd.DataFrame  # board, date and the counters, every plan board and day (streams/daily_table.py)
    path: Path

    @property
    def board_days(self) -> int:
        return len(self.table)

    @property
    def boards(self) -> int:
        return int(self.table["board"].nunique()) if len(self.table) else 0


def live_counts(config: WorkerConfig, wait: bool = True, timeout: float = 1800.0,
                on_progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """The committed counts; with ``wait``, once the workers have processed every event on the topics
    (``on_progress(events_to_go)`` while waiting; TimeoutError after ``timeout`` seconds)."""
    snapshots = wait_until_caught_up(config, timeout, on_progress) if wait else latest_snapshots(config)
    return from_state(day_counts(snapshots))


def export_counts(config: WorkerConfig, out: Path, wait: bool = True, timeout: float = 1800.0,
                  on_progress: Callable[[int], None] | None = None) -> ExportedCounts:
    """:func:`live_counts` written to ``out`` as CSV (one row per board per day)."""
    table = live_counts(config, wait, timeout, on_progress)
    write_csv(table, out)
    return ExportedCounts(table, out)
