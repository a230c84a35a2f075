"""The per-board per-day counts table, in the shape `bcfwatch counts export` writes.

Both the live export (from the worker's committed state) and the pandas oracle
end here, so the two are compared on exactly the same grid: every plan board,
every day from the first to the last day that any event touched, zeros filled.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bcfwatch.core.boards import load_boards
from streams.published import COUNTERS

EXPORT_COLUMNS = ("board", "date", *COUNTERS)


def complete_grid(counts: pd.DataFrame) -> pd.DataFrame:
    """``counts`` has board, date (YYYY-MM-DD) and the COUNTERS; return the full sorted grid."""
    boards = load_boards().codes
    if counts.empty:
        return pd.DataFrame(columns=list(EXPORT_COLUMNS))
    grouped = counts.groupby(["board", "date"], sort=False)[list(COUNTERS)].sum()
    days = pd.date_range(min(grouped.index.get_level_values("date")),
                         max(grouped.index.get_level_values("date")), freq="D").strftime("%Y-%m-%d")
    index = pd.MultiIndex.from_product([boards, days], names=["board", "date"])
    grid = grouped.reindex(index, fill_value=0).astype("int64").reset_index()
    return grid[list(EXPORT_COLUMNS)]


def from_state(day_counts: dict[str, list[int]]) -> pd.DataFrame:
    """The grid from the worker's ``board|YYYY-MM-DD -> counters`` state."""
    rows = [(*key.split("|", 1), *values) for key, values in day_counts.items()]
    return complete_grid(pd.DataFrame(rows, columns=list(EXPORT_COLUMNS)))


def write_csv(table: pd.DataFrame, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
