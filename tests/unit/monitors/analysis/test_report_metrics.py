"""The report's view of each metric, on hand-made series: projections, statuses, settled reablement cohorts,
and the emergency-admissions status read from the alerts."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from bcfwatch.core.calendar import year_days
from bcfwatch.core.plans import BoardPlan
from monitors.alerting.alerts import AlertState
from monitors.analysis.report.metrics import (
    TOO_FEW,
    Metric,
    Status,
    _emergency_status,
    _ratio_projection,
    count_view,
    reablement_view,
)

PLAN_YEAR, BASELINE = date(2015, 4, 1), date(2014, 4, 1)


def plan(delayed: int = 3650, care_homes: int = 365, reablement: float = 0.8) -> BoardPlan:
    return BoardPlan("E08000025", "Birmingham", "approved", 1e6, (1000, 1000, 1000, 1000), 0.0307, delayed, delayed,
                     care_homes, care_homes, reablement, 800_000, 150_000)


def daily(per_day_baseline: float, per_day_plan: float, seed: int = 1) -> pd.Series:
    """Poisson days at one rate in the baseline year and another in the plan year."""
    rng = np.random.default_rng(seed)
    days = year_days(BASELINE, 2)
    rate = np.where(days < pd.Timestamp(PLAN_YEAR), per_day_baseline, per_day_plan)
    return pd.Series(rng.poisson(rate).astype(float), index=days)


def test_ratio_projection_carries_the_ratio_and_widens_with_noise():
    projected, low, high = _ratio_projection(120, 100, 400, 0.0, months_done=3, months_left=9)
    assert projected == pytest.approx(120 + 300 * 1.2) and low == high == projected
    _, low, high = _ratio_projection(120, 100, 400, 0.1, months_done=3, months_left=9)
    assert low < projected < high and high - projected == pytest.approx(projected - low)
    sd = 360 * 0.1 * np.sqrt(1 / 3 + 1 / 9)
    assert high - projected == pytest.approx(1.6448536 * sd, rel=1e-6)
    assert _ratio_projection(400, 400, 400, 0.1, months_done=12, months_left=0) == (400, 400, 400)


@pytest.mark.parametrize(("plan_rate", "expected"), [(10.0, {Status.ON_TRACK, Status.WITHIN_NOISE}),
                                                     (14.0, {Status.PROJECTED_MISS})])
def test_delayed_days_status_follows_the_projection(plan_rate, expected):
    view = count_view(Metric.DELAYED_DAYS, plan(delayed=3660), daily(10.0, plan_rate), PLAN_YEAR,
                      date(2015, 12, 31), BASELINE, [], attribution={"nhs": 60.0, "social_care": 30.0, "both": 10.0})
    assert view.status in expected
    assert view.cumulative.plan[-1] == pytest.approx(3660)  # the trajectory ends on the plan's year total
    assert view.spc.target == pytest.approx(3660 / 366)  # the plan year 2015-16 has 366 days
    assert len(view.spc.values) == 12 + 9  # complete months: the baseline year and April-December
    assert "NHS 60%, social care 30%, both 10%" in view.reason


def test_rare_counts_are_too_few_to_judge_before_enough_are_expected():
    early = count_view(Metric.CARE_HOME_ADMISSIONS_65, plan(care_homes=40), daily(0.1, 0.3), PLAN_YEAR,
                       date(2015, 6, 30), BASELINE, [])
    assert early.status is Status.TOO_FEW and f"fewer than {TOO_FEW}" in early.reason
    later = count_view(Metric.CARE_HOME_ADMISSIONS_65, plan(care_homes=40), daily(0.1, 0.3), PLAN_YEAR,
                       date(2016, 3, 31), BASELINE, [])
    assert later.status is Status.PROJECTED_MISS


def test_reablement_judges_settled_cohorts_only():
    days = year_days(BASELINE, 2)
    discharges = pd.Series(10.0, index=days)
    at_home = pd.Series(np.where(days < pd.Timestamp(PLAN_YEAR), 8.0, 6.0), index=days)  # 80% then 60%
    as_of = date(2016, 3, 31)
    view = reablement_view(plan(reablement=0.8), discharges, at_home, PLAN_YEAR, as_of, 14, [])
    last_settled = as_of - timedelta(days=91 + 14)
    assert date.fromisoformat(view.spc.periods[-1]) + pd.offsets.MonthEnd(0) <= pd.Timestamp(last_settled)
    assert view.projected == pytest.approx(60.0) and view.variance_pct == pytest.approx(-20.0)
    assert view.status is Status.PROJECTED_MISS and view.spc.target == 80.0
    on_target = reablement_view(plan(reablement=0.5), discharges, at_home, PLAN_YEAR, as_of, 14, [])
    assert on_target.status is Status.ON_TRACK
    unsettled = reablement_view(plan(), discharges, at_home, PLAN_YEAR, date(2015, 6, 1), 14, [])
    assert unsettled.status is Status.TOO_FEW and unsettled.cumulative is None


class _Alert:
    def __init__(self, state):
        self.state = state


def test_emergency_status_is_the_latest_plan_number_alert_state():
    class _Assessment:
        weeks, variance_pct = 10, 2.0

    assert _emergency_status(_Assessment(), _Alert(AlertState.UPDATED)) is Status.ALERTED
    assert _emergency_status(_Assessment(), _Alert(AlertState.RESOLVED)) is Status.RESOLVED
    assert _emergency_status(_Assessment(), None) is Status.WITHIN_NOISE
