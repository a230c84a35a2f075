"""Is a board drifting off its plan? Weekly SPC and a year-to-date projection, as pure functions.

For each board the plan year is cut into weeks (Monday to Sunday, only weeks
wholly inside the year and complete by the evaluation date). Each week's
emergency admissions are compared with the plan trajectory as a variance
(actual / planned - 1). Two views:

* **SPC on the weekly variance.** Limits are fixed from the baseline year
  (the same variance of actual against the baseline trajectory), so they are
  the board's own noise level; then the "Making Data Count" rules are applied
  to the plan-year weeks. Fewer admissions is better, so special cause *above*
  is concern. Assurance: the plan-year limits against a target variance of 0.
* **Year to date.** Cumulative actual against cumulative planned, projected to
  year end at the same ratio, with the money at risk (admissions above plan x
  unit cost). Its significance is the excess in Poisson standard deviations.

A board **drifts** when its projection misses the plan by more than
``projection_margin`` *and* that excess is significant (z >= ``min_z``): small
boards are noisy, big boards drift slowly, and a fixed % threshold would flag
the first and miss the second (no verdict while fewer than ``min_expected``
admissions were planned, where the normal approximation fails). It also drifts on special-cause concern in the
latest week *when* the year to date is over plan with z >= ``spc_min_z``.
Measured on 20 generated on-plan national years (151 boards each): the SPC
rules alone flag most boards at some week of a year; gated at z >= 2 they
raised 95 false alerts per 10 board-years x 151, at z >= 3.0 16 per 20, at the
defaults (3.5 / 4.0) 4 per 20 (0.13% of board-years). tests/test_drift.py
keeps that rate under 0.5%. Severity is "critical" for a projection miss and
"warning" for an SPC concern alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from monitors.plans import DEFAULT_UNIT_COST_GBP, BoardPlan
from monitors.spc import Assurance, Limits, assurance, special_causes, xmr_limits
from monitors.trajectory import baseline_days, planned_days
from streams.views import year_earlier

METRIC = "emergency_admissions"


@dataclass(frozen=True)
class DriftRules:
    projection_margin: float = 0.01  # projected year-end variance above plan that counts as a miss
    min_z: float = 4.0  # significance of the year-to-date excess for a projection miss
    spc_min_z: float = 3.5  # year-to-date significance needed for an SPC concern to count
    min_weeks: int = 4  # no verdict before this many plan-year weeks
    min_expected: float = 100.0  # no verdict while fewer admissions were planned (z is unreliable below it)
    resolve_after_weeks: int = 4  # weeks back within plan before an alert resolves
    unit_cost_gbp: float = DEFAULT_UNIT_COST_GBP


@dataclass(frozen=True)
class WeeklySeries:
    """Complete Monday-Sunday weeks: their first days, actual and planned admissions."""

    start: pd.DatetimeIndex
    actual: np.ndarray
    planned: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    @property
    def variance(self) -> np.ndarray:
        return self.actual / self.planned - 1

    def head(self, count: int) -> WeeklySeries:
        return WeeklySeries(self.start[:count], self.actual[:count], self.planned[:count])

    def week_ending(self, count: int) -> date:
        """The Sunday that ends the ``count``-th week."""
        return (self.start[count - 1] + pd.Timedelta(days=6)).date()


@dataclass(frozen=True)
class Assessment:
    board: str
    metric: str
    as_of: date | None
    weeks: int
    actual_ytd: float
    planned_ytd: float
    variance_pct: float  # year to date
    z: float
    projected_year_end: float
    planned_year_end: float
    baseline_year: float
    money_at_risk_gbp: float
    variation: str = "common cause"
    rules_fired: list[str] = field(default_factory=list)
    assurance: str = Assurance.HIT_AND_MISS.value
    projection_miss: bool = False
    spc_concern: bool = False
    series: WeeklySeries | None = None
    limits: Limits | None = None
    special_cause_high: np.ndarray | None = None
    special_cause_low: np.ndarray | None = None

    @property
    def drifting(self) -> bool:
        return self.projection_miss or self.spc_concern

    @property
    def severity(self) -> str | None:
        if not self.drifting:
            return None
        return "critical" if self.projection_miss else "warning"

    def weekly(self) -> pd.DataFrame:
        """The plan-year weeks with variance, SPC limits and special-cause flags (for charts and reports)."""
        series = self.series
        frame = pd.DataFrame({"start": series.start, "actual": series.actual, "planned": series.planned,
                              "variance": series.variance})
        if self.limits is not None:
            frame = frame.assign(mean=self.limits.mean, lower=self.limits.lower, upper=self.limits.upper,
                                 special_cause_high=self.special_cause_high,
                                 special_cause_low=self.special_cause_low)
        return frame


def weekly_series(actual: pd.Series, expected: pd.Series, as_of: date) -> WeeklySeries:
    """Complete Monday-Sunday weeks of ``expected``'s days that end by ``as_of``."""
    days = expected.index
    first_monday = (7 - days[0].day_of_week) % 7
    last_day = int(np.searchsorted(days, pd.Timestamp(as_of), side="right"))
    complete = max(0, (last_day - first_monday) // 7)
    span = slice(first_monday, first_monday + complete * 7)
    window = days[span]
    actual_days = actual.reindex(window, fill_value=0).to_numpy(dtype=float)
    return WeeklySeries(window[::7], actual_days.reshape(-1, 7).sum(axis=1),
                        expected.to_numpy()[span].reshape(-1, 7).sum(axis=1))


@dataclass(frozen=True)
class BoardWeeks:
    """A board's complete plan-year weeks (actual vs planned) and its noise limits from the baseline year."""

    plan: BoardPlan
    series: WeeklySeries
    baseline_limits: Limits | None
    planned_year_end: float


def board_weeks(plan: BoardPlan, actual_daily: pd.Series, plan_year_start: date, as_of: date) -> BoardWeeks:
    """Compute the weekly series once; :func:`assess_week` then looks at any prefix of it."""
    actual_daily = actual_daily.copy()
    actual_daily.index = pd.DatetimeIndex(actual_daily.index)
    baseline_start = year_earlier(plan_year_start)
    planned = planned_days(plan, plan_year_start)
    baseline = weekly_series(actual_daily, baseline_days(plan, baseline_start), plan_year_start - timedelta(1))
    limits = xmr_limits(baseline.variance) if len(baseline) >= 12 else None
    return BoardWeeks(plan, weekly_series(actual_daily, planned, as_of), limits, float(planned.sum()))


def assess_week(board: BoardWeeks, count: int, rules: DriftRules = DriftRules()) -> Assessment:
    """The assessment after the first ``count`` complete plan-year weeks."""
    series = board.series.head(count)
    as_of = series.week_ending(count) if count else None
    actual_ytd = float(series.actual.sum())
    planned_ytd = float(series.planned.sum())
    variance = actual_ytd / planned_ytd - 1 if planned_ytd else 0.0
    z = (actual_ytd - planned_ytd) / math.sqrt(planned_ytd) if planned_ytd else 0.0
    projected = board.planned_year_end * (1 + variance)
    result = dict(board=board.plan.board, metric=METRIC, as_of=as_of, weeks=count, actual_ytd=actual_ytd,
                  planned_ytd=planned_ytd, variance_pct=variance * 100, z=z, projected_year_end=projected,
                  planned_year_end=board.planned_year_end, baseline_year=float(board.plan.baseline_emergency),
                  money_at_risk_gbp=max(0.0, projected - board.planned_year_end) * rules.unit_cost_gbp,
                  series=series)
    if count < max(rules.min_weeks, 2) or planned_ytd < rules.min_expected:
        return Assessment(**result)
    weekly_variance = series.variance
    spc = special_causes(weekly_variance, board.baseline_limits)
    latest = count - 1
    return Assessment(
        **result, variation=spc.variation(latest).value, rules_fired=spc.rules_fired(latest),
        assurance=assurance(xmr_limits(weekly_variance), 0.0).value,
        projection_miss=variance > rules.projection_margin and z >= rules.min_z,
        spc_concern=bool(spc.high[latest]) and z >= rules.spc_min_z,
        limits=spc.limits, special_cause_high=spc.high, special_cause_low=spc.low,
    )


def assess(plan: BoardPlan, actual_daily: pd.Series, plan_year_start: date, as_of: date,
           rules: DriftRules = DriftRules()) -> Assessment:
    """Assess one board's emergency admissions up to ``as_of`` (daily actuals indexed by date)."""
    board = board_weeks(plan, actual_daily, plan_year_start, as_of)
    return assess_week(board, len(board.series), rules)
