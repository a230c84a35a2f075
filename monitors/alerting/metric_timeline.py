"""The alert events of delayed days, care-home admissions 65+ and reablement at 91 days, look by look.

The live monitor and the offline backtest both end here, as for emergency admissions (``timeline.py``), so for
the same daily counts and the same settled days they produce the same events. Each metric is settled by the
clocks of the events it is counted from (``METRIC_CLOCKS``): delayed days by the board's discharges, care-home
admissions by its placements, reablement by all three (an outcome can be corrected by a late readmission or
placement until their clocks pass day 91), and a reablement cohort day ``d`` only once ``d + 92`` is settled.
A month is looked at once it is settled to its last day; the look sees the complete weeks that ended within it
or before (reablement: the weekly cohorts). The noise of each metric is fitted on the baseline year of the same
table (cached by content), with the national fallback before a whole baseline year is there.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from bcfwatch.core.calendar import SECONDS_PER_DAY, year_days, year_earlier
from bcfwatch.core.plans import BoardPlan
from bcfwatch.core.settings import current
from monitors.alerting.alerts import Alert, AlertBook
from monitors.rules.drift import Question
from monitors.rules.plan_metrics import (
    MONTHS,
    CountNoise,
    MetricAssessment,
    MetricRules,
    PlanMetric,
    ShareNoise,
    assess_count,
    assess_reablement,
    fit_count_noise,
    fit_reablement_noise,
    monthly_spc,
    week_months,
    weekly_totals,
)
from monitors.rules.spc import ImprovementDirection

DELAYED_COLUMNS = ("delayed_days_nhs", "delayed_days_social_care", "delayed_days_both")
COUNTERS: dict[str, tuple[str, ...]] = {
    "delayed_days": DELAYED_COLUMNS, **{column: (column,) for column in DELAYED_COLUMNS},
    "care_home_admissions_65": ("care_home_admissions_65",),
    "reablement_discharges_65": ("reablement_discharges_65",), "at_home_91d": ("at_home_91d",),
}
METRIC_CLOCKS = {PlanMetric.DELAYED_DAYS: ("discharge",),
                 PlanMetric.CARE_HOME_ADMISSIONS_65: ("care_home_placement",),
                 PlanMetric.REABLEMENT_91D: ("discharge", "admission", "care_home_placement")}
REABLEMENT_SETTLE_DAYS = 92  # a discharge on day d is settled once day d + 92 is


Tables = dict[str, pd.DataFrame]  # COUNTERS name -> days x boards


def tables_from_counts(counts: pd.DataFrame) -> Tables:
    """Every counter the plan metrics need, days x boards, from the export grid (board, date, counters...)."""
    tables = {}
    for name, columns in COUNTERS.items():
        frame = counts.assign(value=counts[list(columns)].sum(axis=1))
        table = frame.pivot_table(index="date", columns="board", values="value", aggfunc="sum", fill_value=0)
        table.index = pd.DatetimeIndex(table.index)
        tables[name] = table
    return tables


def metric_settled_days(stream_times: dict[str, float], lateness_days: int) -> dict[PlanMetric, dict[str, date]]:
    """Per metric and board, the last day whose counts are final: the day before the earliest of the metric's
    clocks less the lateness (reablement: 92 days earlier still). A board lacking one of the clocks is not
    settled for that metric."""
    clocks: dict[str, dict[str, float]] = {}
    for key, seconds in stream_times.items():
        board, _, kind = key.partition("|")
        clocks.setdefault(board, {})[kind] = seconds
    settled: dict[PlanMetric, dict[str, date]] = {metric: {} for metric in PlanMetric}
    for board, kinds in clocks.items():
        for metric, needed in METRIC_CLOCKS.items():
            if all(kind in kinds for kind in needed):
                seconds = min(kinds[kind] for kind in needed) - lateness_days * SECONDS_PER_DAY
                day = (pd.Timestamp(seconds, unit="s") - pd.Timedelta(days=1)).date()
                if metric is PlanMetric.REABLEMENT_91D:
                    day -= timedelta(days=REABLEMENT_SETTLE_DAYS)
                settled[metric][board] = day
    return settled


_NOISE: OrderedDict[tuple, CountNoise | ShareNoise] = OrderedDict()


def _cached(key_parts: tuple, compute: Callable[[], CountNoise | ShareNoise]) -> CountNoise | ShareNoise:
    digest = hashlib.blake2b(digest_size=16)
    for part in key_parts:
        digest.update(part.tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    key = (digest.hexdigest(),)
    if key not in _NOISE:
        _NOISE[key] = compute()
        while len(_NOISE) > 16:
            _NOISE.popitem(last=False)
    return _NOISE[key]


def _baseline(table: pd.DataFrame, codes: list[str], plan_year_start: date) -> pd.DataFrame | None:
    """The baseline year's weekly totals of every plan board, or None without the whole baseline year."""
    days = year_days(year_earlier(plan_year_start))
    if table.empty or table.index.min() > days[0] or table.index.max() < days[-1]:
        return None
    return weekly_totals(table.reindex(columns=codes, fill_value=0), days[0].date())


def metric_noise(metric: PlanMetric, tables: Tables, codes: list[str], plan_year_start: date
                 ) -> CountNoise | ShareNoise:
    """The metric's noise model from the baseline year of ``tables`` (the national fallback without one)."""
    if metric is PlanMetric.REABLEMENT_91D:
        sizes = _baseline(tables["reablement_discharges_65"], codes, plan_year_start)
        homes = _baseline(tables["at_home_91d"], codes, plan_year_start)
        if sizes is None or homes is None:
            return fit_reablement_noise(pd.DataFrame(), pd.DataFrame())
        return _cached((metric.value, sizes.to_numpy(), homes.to_numpy()),
                       lambda: fit_reablement_noise(sizes, homes))
    weeks = _baseline(tables[metric.value], codes, plan_year_start)
    if weeks is None:
        return fit_count_noise(pd.DataFrame(), metric)
    return _cached((metric.value, weeks.to_numpy()), lambda: fit_count_noise(weeks, metric))


def _monthly(table: pd.DataFrame, codes: list[str], plan_year_start: date) -> np.ndarray:
    """(24 x boards) monthly totals from the baseline year's first month to the plan year's last."""
    start = pd.Timestamp(year_earlier(plan_year_start))
    months = pd.date_range(start, periods=2 * MONTHS, freq="MS")
    days = pd.date_range(start, months[-1] + pd.offsets.MonthEnd(0))
    frame = table.reindex(index=days, columns=codes, fill_value=0).astype(float)
    return frame.groupby(np.searchsorted(months, frame.index, side="right") - 1).sum().to_numpy()


def _month_end(plan_year_start: date, month: int) -> date:
    return (pd.Timestamp(plan_year_start) + pd.DateOffset(months=month) - pd.Timedelta(days=1)).date()


@dataclass(frozen=True)
class BoardLooks:
    """What one board's looks at one metric need: its plan-year weekly values (reablement: cohort sizes and
    those at home) and its monthly values from the baseline year on (for the SPC chart)."""

    plan: BoardPlan
    metric: PlanMetric
    weeks: np.ndarray
    homes: np.ndarray | None
    week_month: np.ndarray
    monthly: np.ndarray  # 24 months (reablement: at home)
    monthly_sizes: np.ndarray | None  # reablement: discharges


def _board_looks(plans: dict[str, BoardPlan], codes: list[str], metric: PlanMetric, tables: Tables,
                 plan_year_start: date) -> dict[str, BoardLooks]:
    """Every board's :class:`BoardLooks`, the tables cut into weeks and months once for all boards."""
    months = week_months(plan_year_start)

    def weekly(name: str) -> np.ndarray:
        return weekly_totals(tables[name].reindex(columns=codes, fill_value=0), plan_year_start).to_numpy(float)

    if metric is PlanMetric.REABLEMENT_91D:
        sizes, homes = weekly("reablement_discharges_65"), weekly("at_home_91d")
        monthly_homes = _monthly(tables["at_home_91d"], codes, plan_year_start)
        monthly_sizes = _monthly(tables["reablement_discharges_65"], codes, plan_year_start)
        return {code: BoardLooks(plans[code], metric, sizes[:, i], homes[:, i], months, monthly_homes[:, i],
                                 monthly_sizes[:, i]) for i, code in enumerate(codes)}
    values, monthly = weekly(metric.value), _monthly(tables[metric.value], codes, plan_year_start)
    return {code: BoardLooks(plans[code], metric, values[:, i], None, months, monthly[:, i], None)
            for i, code in enumerate(codes)}


def delayed_attribution(tables: Tables, code: str, plan_year_start: date, through: date) -> dict[str, float]:
    """The plan year's delayed days to ``through`` by attribution, % (nhs, social_care, both)."""
    parts = {column.removeprefix("delayed_days_"): float(tables[column][code][
        pd.Timestamp(plan_year_start):pd.Timestamp(through)].sum()) if code in tables[column] else 0.0
        for column in DELAYED_COLUMNS}
    total = sum(parts.values())
    return {name: round(100 * value / total, 1) for name, value in parts.items()} if total else {}


@dataclass(frozen=True)
class PlanYear:
    """The plan year's calendar, worked out once: its days, each month's last day, the 24 months' lengths."""

    start: date
    days: int
    month_ends: tuple[date, ...]  # plan-year months 1-12
    month_days: np.ndarray  # the baseline year's and the plan year's months

    @classmethod
    def of(cls, start: date) -> PlanYear:
        starts = pd.date_range(year_earlier(start), periods=2 * MONTHS, freq="MS")
        return cls(start, len(year_days(start)), _month_ends(start),
                   np.array([s.days_in_month for s in starts], dtype=float))


def look(board: BoardLooks, month: int, noise: CountNoise | ShareNoise, year: PlanYear, rules: MetricRules,
         tables: Tables | None = None) -> MetricAssessment:
    """The board's assessment at the look after plan-year month ``month`` (1-12). With ``tables`` the details an
    alert event carries are worked out too: the monthly SPC verdict and (delayed days) the attribution."""
    seen = board.week_month < month
    plan = board.plan
    monthly = board.monthly[:MONTHS + month]
    if board.metric is PlanMetric.REABLEMENT_91D:
        assert isinstance(noise, ShareNoise) and board.homes is not None and board.monthly_sizes is not None
        sizes = board.monthly_sizes[:MONTHS + month]
        baseline_size = float(sizes[:MONTHS].sum()) or float(board.weeks.sum())
        assessment = assess_reablement(plan.board, plan.reablement_target, board.weeks[seen], board.homes[seen],
                                       month, noise, rules, max(baseline_size - board.weeks[seen].sum(), 0.0))
        kept = sizes > 0
        shares = (monthly / np.maximum(sizes, 1) * 100)[kept]
        target, improvement, baseline_points = plan.reablement_target * 100, ImprovementDirection.INCREASE, \
            int(kept[:MONTHS].sum())
    else:
        assert isinstance(noise, CountNoise)
        total = float(plan.planned_delayed_days if board.metric is PlanMetric.DELAYED_DAYS
                      else plan.planned_care_home_admissions_65)
        attribution = (delayed_attribution(tables, plan.board, year.start, year.month_ends[month - 1])
                       if tables is not None and board.metric is PlanMetric.DELAYED_DAYS else None)
        assessment = assess_count(plan.board, board.metric, total, board.weeks[seen], month, noise, rules,
                                  attribution, year_weeks=len(board.weeks), year_days=year.days)
        shares = monthly / year.month_days[:MONTHS + month]  # per day
        target, improvement, baseline_points = total / year.days, ImprovementDirection.DECREASE, MONTHS
    assessment = replace(assessment, as_of=year.month_ends[month - 1])
    if tables is None:
        return assessment
    variation, assurance, fired = monthly_spc(shares, baseline_points, target, improvement)
    return replace(assessment, variation=variation, assurance=assurance, rules_fired=fired)


def months_settled(plan_year_start: date, through: date) -> int:
    """How many plan-year months are settled to their last day by ``through`` (0-12)."""
    return bisect.bisect_right(_month_ends(plan_year_start), through)


@lru_cache(maxsize=8)
def _month_ends(plan_year_start: date) -> tuple[date, ...]:
    return tuple(_month_end(plan_year_start, month) for month in range(1, MONTHS + 1))


def plan_metric_timeline(plans: dict[str, BoardPlan], tables: Tables, plan_year_start: date,
                         settled: dict[PlanMetric, dict[str, date]], rules: MetricRules | None = None,
                         book: AlertBook | None = None, latest: dict | None = None) -> list[Alert]:
    """Every alert event of the three metrics for the months settled by ``settled`` (per metric and board), look
    by look (months in order, boards in code order). ``latest`` receives each board's last assessment per
    metric: ``latest[(board, metric)]``."""
    rules = rules or MetricRules(bed_day_cost_gbp=current().bed_day_cost_gbp)  # live and backtest alike
    book = book or AlertBook()
    year = PlanYear.of(plan_year_start)
    codes = sorted(plans)
    events: list[Alert] = []
    for metric in PlanMetric:
        through = settled.get(metric, {})
        due = {code: months_settled(plan_year_start, through[code]) for code in codes if code in through}
        if not any(due.values()):
            continue
        noise = metric_noise(metric, tables, codes, plan_year_start)
        boards = _board_looks(plans, [code for code, months in due.items() if months], metric, tables,
                              plan_year_start)
        for month in range(1, MONTHS + 1):
            for code, board in boards.items():
                last = latest is not None and month == due[code]
                if month > due[code] or (book.judged(code, metric.value, year.month_ends[month - 1]) and not last):
                    continue
                assessment = look(board, month, noise, year, rules)
                if assessment.drifting or (code, metric.value, Question.PLAN_NUMBER) in book.open or last:
                    assessment = look(board, month, noise, year, rules, tables)  # with what an event carries
                events.extend(book.evaluate(assessment))
                if last and latest is not None:
                    latest[(code, metric.value)] = assessment
    return events
