"""Evaluate every board week by week and collect the alert events, in order.

The live monitor and the offline backtest both end here, so for the same
daily counts they produce the same alert timeline: the expected pattern and
the noise of every board come from the baseline-year rows of the same daily
table (``monitors/rules/baseline.py``, cached by their content), fitted by the same
code. Live, that needs every board's baseline year settled before the first
plan-year week is judged (two weeks of lateness after the year ends, long
before the first plan-year week settles in any ordinary replay).
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from bcfwatch.core.calendar import SECONDS_PER_DAY
from bcfwatch.core.plans import BoardPlan
from monitors.alerting.alerts import Alert, AlertBook
from monitors.rules.baseline import BaselineModel, baseline_model
from monitors.rules.drift import METRIC, DriftRules, Question, assess_questions, board_weeks


def last_settled_admission_days(stream_times: dict[str, float], lateness_days: int) -> dict[str, date]:
    """Per board, the last day whose admission counts are final: no on-time admission can still arrive for
    it (the day before admission stream time - lateness). ``stream_times``: ``board|type`` -> stream time in
    seconds since the epoch. (Not the worker's reablement settling: ``streams.board_state``.)"""
    settled = {}
    for key, stream_time_seconds in stream_times.items():
        board, _, event_type = key.partition("|")
        if event_type == "admission":
            settled[board] = (pd.Timestamp(stream_time_seconds - lateness_days * SECONDS_PER_DAY, unit="s")
                              - pd.Timedelta(days=1)).date()
    return settled


def daily_emergency_admissions(counts: pd.DataFrame) -> pd.DataFrame:
    """Days x boards emergency admissions from the export grid (board, date, counters...)."""
    table = counts.pivot_table(index="date", columns="board", values="emergency_admissions", aggfunc="sum",
                               fill_value=0)
    table.index = pd.DatetimeIndex(table.index)
    return table


def alert_timeline(plans: dict[str, BoardPlan], daily: pd.DataFrame, plan_year_start: date,
                   as_of: date | dict[str, date], rules: DriftRules | None = None,
                   book: AlertBook | None = None, latest: dict | None = None) -> list[Alert]:
    """All alert events for weeks complete by ``as_of`` (one date, or one per board), week by week
    (weeks in time order, boards in code order). Boards missing from ``as_of`` are not evaluated.
    ``latest``, if given, receives each board's assessment of its last complete week."""
    rules = rules or DriftRules()
    book = book or AlertBook(rules)
    through = as_of if isinstance(as_of, dict) else dict.fromkeys(plans, as_of)
    if not any(day >= plan_year_start + timedelta(days=6) for code, day in through.items() if code in plans):
        return []  # no plan-year week can be complete yet (and no model is needed)
    model = baseline_model(plans, daily, plan_year_start)
    weekly = {code: board_weeks(plan, daily[code] if code in daily else pd.Series(dtype=float),
                                plan_year_start, through[code], model, rules)
              for code, plan in sorted(plans.items()) if code in through}
    total_weeks = max((len(b.series) for b in weekly.values()), default=0)
    events: list[Alert] = []
    for count in range(1, total_weeks + 1):
        for board in weekly.values():
            if count <= len(board.series):
                last = count == len(board.series)
                week_end = board.series.week_ending(count)
                questions = tuple(question for question in Question
                                  if not book.judged(board.plan.board, METRIC, week_end, question))
                if last and latest is not None:
                    questions = tuple(Question)  # the exporter shows the latest assessment
                elif not questions:
                    continue  # judged in an earlier round: the book would add nothing
                for assessment in assess_questions(board, count, rules, questions):
                    events.extend(book.evaluate(assessment))
                    if latest is not None and last and assessment.question is Question.PLAN_NUMBER:
                        latest[board.plan.board] = assessment
    return events


def expectation_model(plans: dict[str, BoardPlan], daily: pd.DataFrame, plan_year_start: date) -> BaselineModel:
    """The baseline model the timeline judges with (for reports and the exporter's planned windows)."""
    return baseline_model(plans, daily, plan_year_start)
