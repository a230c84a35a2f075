"""`bcfwatch report`: one self-contained HTML file a board lead can use, or one board's page as a PNG.

It opens on what needs attention (alerted boards by severity and money at risk, each with its reason), then one
sortable, filterable, searchable table of every board and metric, the national roll-up, a funnel plot whose
points link to their boards, and a section per board with, for each metric, its SPC chart, its year to date
against the plan trajectory with the year-end projection fan, and its alerts. Charts are drawn in the page
from embedded data, so the national report stays small; it prints one board per page. docs/report.md.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from bcfwatch.core.calendar import year_earlier
from bcfwatch.core.plans import DEFAULT_UNIT_COST_GBP, BoardPlan
from monitors.analysis.backtest import BacktestResult
from monitors.analysis.report.boards import (
    DEFAULT_LATENESS_DAYS,
    BoardReport,
    BoardYear,
    board_reports,
    board_years,
    has_settled_week,
)
from monitors.analysis.report.page import national_rollup, render_page
from monitors.analysis.report.png import board_png

TITLE = "Better Care Fund: every board against its plan"

__all__ = ["BoardReport", "BoardYear", "board_reports", "board_years", "has_settled_week", "render_report",
           "write_report"]


def render_report(result: BacktestResult, plans: dict[str, BoardPlan], plan_year_start: date, title: str = TITLE,
                  board: str | None = None, unit_cost: float = DEFAULT_UNIT_COST_GBP,
                  years: dict[str, BoardYear] | None = None, lateness_days: int = DEFAULT_LATENESS_DAYS) -> str:
    """The HTML page: national, or one ``board``'s (``years``: :func:`board_years` of the same result, when the
    caller has it already)."""
    years = years if years is not None else board_years(result, plans, plan_year_start)
    if board is not None:
        years = {board: years[board]}
    reports = board_reports(result, plans, plan_year_start, years, lateness_days)
    rollup = None if board else national_rollup(result, reports, plans, plan_year_start, unit_cost)
    return render_page(title if board is None else f"{reports[0].name} ({board}): {title}", reports,
                       year_earlier(plan_year_start), rollup)


def write_report(result: BacktestResult, plans: dict[str, BoardPlan], plan_year_start: date, out: Path,
                 board: str | None = None, years: dict[str, BoardYear] | None = None,
                 lateness_days: int = DEFAULT_LATENESS_DAYS) -> Path:
    """Write the report to ``out``: HTML, or with ``board`` a ``.png`` of that board's charts."""
    out.parent.mkdir(parents=True, exist_ok=True)
    years = years if years is not None else board_years(result, plans, plan_year_start)
    if out.suffix.lower() == ".png":
        if board is None:
            raise ValueError("a PNG holds one board's page: give --board CODE")
        out.write_bytes(board_png(board_reports(result, plans, plan_year_start, {board: years[board]},
                                                lateness_days)[0]))
        return out
    out.write_text(render_report(result, plans, plan_year_start, board=board, years=years,
                                 lateness_days=lateness_days), encoding="utf-8")
    return out
