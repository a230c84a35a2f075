"""Rolling views of a board's daily counts: day, 28 days, month, quarter and year to date.

Each window ends on the board's latest day with data ("as of") and comes with the
same period a year earlier. Financial years run April to March; quarters are
April-June, July-September, October-December, January-March.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from bcfwatch.core.calendar import financial_quarter_start, financial_year_start, year_earlier
from streams.published import COUNTERS


def windows(as_of: date) -> dict[str, tuple[date, date]]:
    """Inclusive date ranges of each rolling view ending on ``as_of``."""
    return {
        "day": (as_of, as_of),
        "rolling_28_days": (as_of - timedelta(days=27), as_of),
        "month_to_date": (as_of.replace(day=1), as_of),
        "quarter_to_date": (financial_quarter_start(as_of), as_of),
        "financial_year_to_date": (financial_year_start(as_of), as_of),
    }


def _total(days: dict[str, list[int]], start: date, end: date) -> dict[str, int]:
    totals = [0] * len(COUNTERS)
    first, last = start.isoformat(), end.isoformat()
    for day, values in days.items():
        if first <= day <= last:
            for i, value in enumerate(values):
                totals[i] += value
    return dict(zip(COUNTERS, totals, strict=True))


def board_metrics(board: str, days: dict[str, list[int]]) -> dict[str, Any]:
    """Every window's totals and the same window a year earlier, for one board."""
    as_of = date.fromisoformat(max(days))
    result: dict[str, Any] = {"board": board, "as_of": as_of.isoformat(), "windows": {}}
    for name, (start, end) in windows(as_of).items():
        prior_start, prior_end = year_earlier(start), year_earlier(end)
        result["windows"][name] = {
            "from": start.isoformat(), "to": end.isoformat(), "actual": _total(days, start, end),
            "prior_year": {"from": prior_start.isoformat(), "to": prior_end.isoformat(),
                           **_total(days, prior_start, prior_end)},
        }
    return result
