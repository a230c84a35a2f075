"""Evaluate every board week by week and collect the alert events, in order.

The live monitor and the offline backtest both end here, so for the same
daily counts they produce the same alert timeline.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from monitors.alerts import AlertBook
from monitors.drift import DriftRules, assess_week, board_weeks
from monitors.plans import BoardPlan


def daily_emergency_admissions(counts: pd.DataFrame) -> pd.DataFrame:
    """Days x boards emergency admissions from the export grid (board, date, counters...)."""
    table = counts.pivot_table(index="date", columns="board", values="emergency_admissions", aggfunc="sum",
                               fill_value=0)
    table.index = pd.DatetimeIndex(table.index)
    return table


def alert_timeline(plans: dict[str, BoardPlan], daily: pd.DataFrame, plan_year_start: date, as_of: date,
                   rules: DriftRules | None = None, book: AlertBook | None = None) -> list[dict]:
    """All alert events up to ``as_of``, week by week (weeks in time order, boards in code order)."""
    rules = rules or DriftRules()
    book = book or AlertBook(rules)
    weekly = {code: board_weeks(plan, daily[code] if code in daily else pd.Series(dtype=float),
                                plan_year_start, as_of) for code, plan in sorted(plans.items())}
    total_weeks = max((len(b.series) for b in weekly.values()), default=0)
    events: list[dict] = []
    for count in range(1, total_weeks + 1):
        for board in weekly.values():
            if count <= len(board.series):
                events.extend(book.evaluate(assess_week(board, count, rules)))
    return events
