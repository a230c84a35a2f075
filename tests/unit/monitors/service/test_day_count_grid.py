"""The monitor's day-count grid gives the tables the offline path pivots from the same counts."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from bcfwatch.core.boards import load_boards
from monitors.alerting.metric_timeline import tables_from_counts
from monitors.alerting.timeline import daily_emergency_admissions
from monitors.service.board_days import DayCountGrid
from streams.daily_table import from_state
from streams.published import COUNTERS

BOARDS = sorted(load_boards().codes)

day_counts = st.lists(
    st.tuples(st.sampled_from(BOARDS[:6] + BOARDS[-2:]), st.integers(0, 400),
              st.lists(st.integers(0, 50), min_size=len(COUNTERS), max_size=len(COUNTERS))),
    min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(day_counts)
def test_the_grid_gives_the_offline_tables(published):
    """Counts arrive in any order, a board-day again with new counts (the later wins, as on the topic)."""
    grid, state, handed_out = DayCountGrid(BOARDS), {}, []
    for board, offset, counts in published:
        day = date(2015, 3, 1) + timedelta(days=offset)
        grid.set(board, day, counts)
        state[f"{board}|{day.isoformat()}"] = counts
        if offset % 3 == 0:  # asked between arrivals too: what was handed out must not change after
            handed_out.append((grid.emergency_admissions(), daily_emergency_admissions(from_state(state))))
    for table, offline in handed_out:
        pd.testing.assert_frame_equal(table, offline)
    counts = from_state(state)
    pd.testing.assert_frame_equal(grid.emergency_admissions(), daily_emergency_admissions(counts))
    offline = tables_from_counts(counts)
    live = grid.tables()
    assert live.keys() == offline.keys()
    for name, table in offline.items():
        pd.testing.assert_frame_equal(live[name], table, obj=name)


def test_an_empty_grid_has_empty_tables():
    grid = DayCountGrid(BOARDS)
    assert grid.emergency_admissions().empty
    assert all(table.empty for table in grid.tables().values())
