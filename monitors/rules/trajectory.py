"""Plan trajectories: the expected emergency admissions of each board, day by day.

A board's plan gives its baseline (previous-year) emergency admissions by
financial quarter. Within a quarter the baseline is spread over the days by a
daily pattern; in the plan year each day is the baseline day x (1 - planned
reduction). Weeks and months are sums of days.

:func:`quarter_anchored` is the one rule: each quarter's baseline becomes a rate
per unit of the pattern over the *baseline* year's days of that quarter, and
that rate times the pattern of each day of the target year gives the
expectation, so a quarter that gains Easter, or a weekend, is expected to be
correspondingly lower. The drift monitor uses the pattern observed in the
baseline year (``monitors/rules/profile.py``, via ``monitors/rules/baseline.py``);
:func:`baseline_days` / :func:`planned_days` below keep the generator's national
shape (:func:`daily_profile`: weekends ~18% lower, a winter peak of ~5%), which
the sample plan and the generator are built on.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from bcfwatch.core.calendar import WEEKLY, financial_quarter, year_days, year_earlier
from bcfwatch.core.national import daily_profile
from bcfwatch.core.plans import BoardPlan


@lru_cache(maxsize=64)
def _year_shape(year_start: date) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """The year's days, their daily profile and their financial quarter (the same for every board)."""
    days = year_days(year_start)
    return days, daily_profile(days), financial_quarter(days)


def quarter_anchored(quarter_totals: np.ndarray, baseline_days: pd.DatetimeIndex, baseline_pattern: np.ndarray,
                     days: pd.DatetimeIndex, pattern: np.ndarray) -> np.ndarray:
    """Expected admissions on ``days``: each financial quarter's total over ``baseline_days``, spread by the
    pattern (relative daily volume) of the baseline days, carried to ``days`` by their own pattern."""
    per_quarter = np.bincount(financial_quarter(baseline_days), weights=baseline_pattern, minlength=4)
    rate = np.asarray(quarter_totals, dtype=float) / np.where(per_quarter > 0, per_quarter, np.inf)
    return rate[financial_quarter(days)] * pattern


# Trajectories depend only on the plan (frozen) and dates, and the monitor asks for them every round:
# computed once each. Callers must not modify the returned Series.
@lru_cache(maxsize=4096)
def baseline_days(plan: BoardPlan, year_start: date, baseline_year_start: date | None = None) -> pd.Series:
    """Expected emergency admissions per day of the year starting ``year_start`` at the baseline rate.

    Each quarter's baseline becomes a rate per unit of the daily shape over the
    baseline year's days; that rate times the shape of each day of ``year_start``'s
    year gives the expectation, so a year with more weekends or a 29 February is
    expected to have correspondingly fewer or more admissions.
    """
    baseline, baseline_profile, _ = _year_shape(baseline_year_start or year_start)
    days, profile, _ = _year_shape(year_start)
    return pd.Series(quarter_anchored(np.asarray(plan.baseline_emergency_by_quarter), baseline, baseline_profile,
                                      days, profile), index=days, name=plan.board)


@lru_cache(maxsize=4096)
def planned_days(plan: BoardPlan, plan_year_start: date) -> pd.Series:
    """The plan trajectory in the national shape: expected emergency admissions per day of the plan year,
    summing to the plan number (the drift monitor's is ``BaselineModel.planned_days``, in the observed shape)."""
    expected = baseline_days(plan, plan_year_start, year_earlier(plan_year_start))
    return expected * (plan.planned_emergency / float(expected.sum()))


def planned_metric_days(plan: BoardPlan, metric: str, plan_year_start: date) -> pd.Series:
    """The plan trajectory of delayed days or permanent care-home admissions 65+: the year's plan spread
    evenly over its days (both are reported monthly, with no weekly shape to follow)."""
    yearly = {"delayed_days": plan.planned_delayed_days,
              "care_home_admissions_65": plan.planned_care_home_admissions_65}[metric]
    days = year_days(plan_year_start)
    return pd.Series(yearly / len(days), index=days, name=plan.board)


def planned_by_period(daily: pd.Series, period: str) -> pd.Series:
    """Sum a daily trajectory by ``week`` (Monday-Sunday) or ``month``."""
    rule = {"week": WEEKLY, "month": "MS"}[period]
    return daily.resample(rule).sum()


def reablement_target(plan: BoardPlan) -> float:
    """The share of people 65+ discharged into reablement planned to be at home 91 days later."""
    return plan.reablement_target
