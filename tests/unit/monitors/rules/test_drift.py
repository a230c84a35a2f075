"""Drift detection and the alert lifecycle: worked cases, a generated drifting year, false-alert rate.

The rule itself (a calibrated two-window scan with noise from the baseline year) is in monitors/rules/drift.py;
its rates over many simulated years are measured by `bcfwatch evaluate` (docs/evaluation.md), not here.
"""

from dataclasses import replace
from datetime import date, timedelta
from itertools import pairwise

import numpy as np
import orjson
import pandas as pd
import pytest

from bcfwatch.core.plans import load_plan
from monitors.alerting.alerts import AlertBook, AlertState
from monitors.alerting.timeline import alert_timeline
from monitors.alerting.topic_schemas import parse_alert
from monitors.rules.baseline import baseline_model
from monitors.rules.drift import (
    DriftRules,
    Question,
    Severity,
    assess,
    assess_questions,
    board_weeks,
    boundary_scale,
    complete_weeks_by,
    first_drifting_week,
    weekly_series,
)
from monitors.rules.spc import Assurance, Variation
from monitors.rules.trajectory import baseline_days, planned_days
from producers.generate import Drift, GeneratorSpec, emergency_daily_counts
from producers.sample_plan import sample_plan_path

PLAN_YEAR = date(2015, 4, 1)
YEAR_END = date(2016, 3, 31)
DRIFTING = {"E10000016": "+3%", "E08000025": "+5%", "E10000014": "creep+8%"}  # Kent, Birmingham, Hampshire
IMPROVING = {"E10000030": "-5%"}  # Surrey: better than plan, never a concern
DETECTION_BOUND_WEEKS = {"E10000016": 40, "E08000025": 20, "E10000014": 45}
FALSE_ALERT_BOUND = 0.03  # of board-years, over 3 years only (the benchmark measures the real rate: <= 1%)


@pytest.fixture(scope="module")
def plans():
    return load_plan(sample_plan_path())


def test_trajectory_is_baseline_shape_times_planned_reduction(plans):
    plan = plans["E09000012"]
    baseline = baseline_days(plan, date(2014, 4, 1))
    assert baseline.sum() == pytest.approx(plan.baseline_emergency, rel=1e-9)
    for quarter, months in enumerate([(4, 5, 6), (7, 8, 9), (10, 11, 12), (1, 2, 3)]):
        assert baseline[baseline.index.month.isin(months)].sum() == pytest.approx(
            plan.baseline_emergency_by_quarter[quarter])
    planned = planned_days(plan, PLAN_YEAR)
    assert len(planned) == 366  # 2015-16 has 29 February
    weekday = planned[planned.index.day_of_week < 5].mean()
    weekend = planned[planned.index.day_of_week >= 5].mean()
    assert weekend / weekday == pytest.approx(0.82, rel=0.02)
    assert planned.sum() == pytest.approx(plan.planned_emergency, rel=1e-9)  # the plan number, fixed


def test_a_board_over_its_plan_number_at_its_usual_rate_is_alerted_on_the_number_not_the_rate(plans):
    """A plan cut from a baseline 10% below the year the board counted (another extract, or an unlucky year):
    the board runs exactly at its counted rate less the planned cut, so it will miss its plan number by 11%
    (the primary alert), while its underlying rate has not moved beyond what a plan baseline's own noise
    allows at this size (no second finding)."""
    counted = replace(plans["E06000001"], baseline_emergency_by_quarter=(500, 490, 510, 500))  # ~2,000 a year
    plan = replace(counted, baseline_emergency_by_quarter=tuple(round(q * 0.9) for q in
                                                                counted.baseline_emergency_by_quarter))
    actual = pd.concat([baseline_days(counted, date(2014, 4, 1)), planned_days(counted, PLAN_YEAR)])
    board = board_weeks(plan, actual, PLAN_YEAR, YEAR_END)
    assert board.planned_year_end == pytest.approx(plan.planned_emergency)
    number, rate = assess_questions(board, len(board.series))
    assert number.question is Question.PLAN_NUMBER and rate.question is Question.UNDERLYING_RATE
    assert number.variance_pct == pytest.approx(rate.variance_pct) == pytest.approx(100 / 0.9 - 100, abs=0.5)
    assert number.projection_miss and number.severity is Severity.CRITICAL
    assert not rate.drifting and rate.z < number.z
    assert first_drifting_week(board, question=Question.UNDERLYING_RATE) is None


def test_weekly_series_counts_only_complete_weeks():
    days = pd.date_range("2015-04-01", "2015-04-30")  # Wednesday 1st: first Monday is the 6th
    expected = pd.Series(1.0, index=days)
    series = weekly_series(pd.Series(2.0, index=days), expected, date(2015, 4, 26))
    assert list(series.start) == [pd.Timestamp("2015-04-06"), pd.Timestamp("2015-04-13"), pd.Timestamp("2015-04-20")]
    assert series.actual.tolist() == [14, 14, 14] and series.planned.tolist() == [7, 7, 7]


def test_assessment_worked_by_hand(plans):
    plan = plans["E08000025"]
    planned = planned_days(plan, PLAN_YEAR)
    actual = pd.concat([baseline_days(plan, date(2014, 4, 1)), planned * 1.15])  # 15% over plan all year
    result = assess(plan, actual, PLAN_YEAR, date(2015, 6, 28))
    # 12 complete weeks (6 April to 28 June); year-to-date actual is exactly 1.15 x planned
    assert result.weeks == 12
    assert result.variance_pct == pytest.approx(15.0, abs=0.01)
    # z is the excess in standard deviations of the noise model, which has more than Poisson variance
    assert 0 < result.z < 0.15 * result.planned_ytd / np.sqrt(result.planned_ytd)
    assert result.projected_year_end == pytest.approx(planned.sum() * 1.15, rel=1e-3)
    assert result.projected_year_end_low < result.projected_year_end < result.projected_year_end_high
    assert result.money_at_risk_gbp == pytest.approx(result.planned_year_end * 0.15 * 1550, rel=1e-3)
    assert result.projection_miss and result.severity is Severity.CRITICAL and result.window_weeks == 12
    assert result.z >= result.threshold > 2.5
    assert result.assurance in (Assurance.CONSISTENTLY_MISSED, Assurance.HIT_AND_MISS)
    # one board alone: its own baseline-year shape is learned; the noise (which needs the other boards to
    # pool with) is the national default, and the assessment says so
    assert result.expected_pattern.startswith("baseline year") and result.noise_source == "national default"


def test_without_a_baseline_year_the_national_default_is_used_and_said(plans):
    plan = plans["E08000025"]
    actual = planned_days(plan, PLAN_YEAR) * 1.10
    result = assess(plan, actual, PLAN_YEAR, date(2015, 9, 27))
    assert result.expected_pattern == "national default" and result.noise_source == "national default"
    assert result.drifting


def test_improving_boards_never_raise_a_concern(plans):
    plan = plans["E08000025"]
    actual = pd.concat([baseline_days(plan, date(2014, 4, 1)), planned_days(plan, PLAN_YEAR) * 0.85])
    for as_of in (date(2015, 5, 3), date(2015, 9, 27), YEAR_END):
        result = assess(plan, actual, PLAN_YEAR, as_of)
        assert not result.drifting and result.z < 0 and result.money_at_risk_gbp == 0


def test_on_plan_exactly_is_not_drifting(plans):
    plan = plans["E08000025"]
    actual = pd.concat([baseline_days(plan, date(2014, 4, 1)), planned_days(plan, PLAN_YEAR)])
    result = assess(plan, actual, PLAN_YEAR, YEAR_END)
    # the learned shape reproduces the plan's to well under one admission a year
    assert not result.drifting and result.money_at_risk_gbp == pytest.approx(0, abs=1550)


def _first_raised(events):
    first = {}
    for event in events:
        if event.state is AlertState.RAISED:
            first.setdefault(event.board, event.as_of)
    return first


def test_the_three_drifting_boards_alert_within_bound_and_the_rest_within_the_false_alert_budget(plans):
    """The on-plan boards may raise false alerts within the rule's budget (not none: whether one does depends on
    the draw; with the same pins, a second machine's run raised one on-plan board at z 3.42 against a threshold of
    3.40, where the first raised none), the improving board never."""
    spec = GeneratorSpec(date(2014, 4, 1), YEAR_END, scale=1.0, seed=1,
                         drifts=[Drift.parse(f"{board}:{change}")
                                 for board, change in {**DRIFTING, **IMPROVING}.items()])
    daily = emergency_daily_counts(spec)
    events = alert_timeline(plans, daily, PLAN_YEAR, YEAR_END)
    first = _first_raised(events)
    assert set(DRIFTING) <= set(first) and not set(IMPROVING) & set(first)
    on_plan = len(plans) - len(DRIFTING) - len(IMPROVING)
    assert len(set(first) - set(DRIFTING)) <= FALSE_ALERT_BOUND * on_plan
    # the benchmark's fast path finds the same first weeks as the alert book
    model = baseline_model(plans, daily, PLAN_YEAR)
    for board in first:
        weeks = board_weeks(plans[board], daily[board], PLAN_YEAR, YEAR_END, model)
        assert weeks.series.week_ending(first_drifting_week(weeks)[0]) == first[board]
    for board in DRIFTING:
        weeks = (first[board] - PLAN_YEAR).days / 7
        assert weeks <= DETECTION_BOUND_WEEKS[board], f"{board} detected after {weeks:.0f} weeks"
    raised = [e for e in events if e.state is AlertState.RAISED]
    assert all(e.money_at_risk_gbp > 0 and e.projected_year_end > e.planned_year_end for e in raised)
    assert all(e.expected_pattern.startswith("baseline year") and e.noise_source == "baseline year"
               and e.window_z >= e.threshold_z and isinstance(e.spc_variation, Variation) for e in raised)
    assert all(isinstance(e.severity, Severity) and isinstance(e.assurance, Assurance) for e in events)


def test_false_alert_rate_over_3_on_plan_years(plans):
    """A cheap check with a wide bound; `bcfwatch evaluate` measures the rate over many years."""
    false_alerts = 0
    for seed in range(100, 103):
        daily = emergency_daily_counts(GeneratorSpec(date(2014, 4, 1), YEAR_END, scale=1.0, seed=seed))
        model = baseline_model(plans, daily, PLAN_YEAR)
        false_alerts += sum(first_drifting_week(board_weeks(plan, daily[code], PLAN_YEAR, YEAR_END, model))
                            is not None for code, plan in plans.items())
    rate = false_alerts / (3 * len(plans))
    print(f"false-alert rate: {false_alerts} boards in {3 * len(plans)} on-plan board-years = {rate:.3%}")
    assert rate <= FALSE_ALERT_BOUND


class _Week:
    """A minimal assessment for lifecycle tests."""

    def __init__(self, week: int, drifting: bool, severity: Severity = Severity.WARNING):
        self.board, self.metric, self.question = "E09000012", "emergency_admissions", Question.PLAN_NUMBER
        self.as_of = date(2015, 4, 5) + timedelta(weeks=week)
        self.drifting, self.severity = drifting, severity if drifting else None
        self.actual_ytd = self.planned_ytd = self.variance_pct = self.z = 0.0
        self.projected_year_end = self.planned_year_end = self.money_at_risk_gbp = 0.0
        self.projected_year_end_low = self.projected_year_end_high = self.window_z = self.window_variance_pct = 0.0
        self.threshold, self.dispersion, self.window_weeks = 3.0, 1.0, 0
        self.expected_pattern = self.noise_source = "baseline year"
        self.rules_fired, self.variation, self.assurance = [], Variation.COMMON_CAUSE, Assurance.HIT_AND_MISS


@pytest.mark.parametrize(
    ("weeks", "states"),
    [
        ("DDDD", ["raised"]),  # no duplicate raised while open
        ("DDdD", ["raised"]),  # a single week back within plan does not resolve
        ("DdddddD", ["raised", "resolved", "raised"]),  # resolved after 4 weeks within plan
        ("DC", ["raised", "updated"]),  # severity change
        ("ddd", []),
    ],
)
def test_alert_lifecycle(weeks, states):
    book = AlertBook(DriftRules(resolve_after_weeks=4))
    events = []
    for i, code in enumerate(weeks):
        events += book.evaluate(_Week(i, code in "DC", Severity.CRITICAL if code == "C" else Severity.WARNING))
    assert [e.state for e in events] == [AlertState(state) for state in states]
    assert len({e.event_id for e in events}) == len(events)


def test_alert_book_rebuilt_from_its_events_continues_the_same_way():
    book = AlertBook()
    events = book.evaluate(_Week(0, True)) + book.evaluate(_Week(1, True, Severity.CRITICAL))
    restored = AlertBook()
    restored.restore(parse_alert(event.to_wire()) for event in events)  # as read back from the alerts topic
    assert restored.evaluate(_Week(1, True, Severity.CRITICAL)) == []  # same week: already evaluated
    assert restored.evaluate(_Week(2, True, Severity.CRITICAL)) == []  # still open, same severity: nothing new
    assert [e.state for e in restored.evaluate(_Week(3, True, Severity.WARNING))] == [AlertState.UPDATED]


def test_an_alert_is_typed_until_serialised_and_reads_back_the_same():
    book = AlertBook()
    raised, = book.evaluate(_Week(0, True, Severity.CRITICAL))
    assert raised.state is AlertState.RAISED and raised.severity is Severity.CRITICAL
    wire = orjson.loads(raised.to_wire())
    assert list(wire)[:9] == ["event_id", "alert_id", "sequence", "state", "severity", "board", "metric", "question",
                              "as_of"]
    assert wire["question"] == "plan_number"
    assert wire["state"] == "raised" and wire["severity"] == "critical" and wire["as_of"] == "2015-04-05"
    assert wire["spc_variation"] == "common cause" and wire["assurance"] == "hit and miss"
    assert parse_alert(raised.to_wire()) == raised  # one Alert type, produced or parsed
    assert parse_alert(raised.to_wire()).to_wire() == raised.to_wire()


def test_trajectories_of_the_other_metrics_and_periods(plans):
    from monitors.rules.trajectory import planned_by_period, planned_metric_days, reablement_target

    plan = plans["E10000016"]
    delayed = planned_metric_days(plan, "delayed_days", PLAN_YEAR)
    homes = planned_metric_days(plan, "care_home_admissions_65", PLAN_YEAR)
    assert delayed.sum() == pytest.approx(plan.planned_delayed_days)
    assert homes.sum() == pytest.approx(plan.planned_care_home_admissions_65)
    monthly = planned_by_period(planned_days(plan, PLAN_YEAR), "month")
    assert len(monthly) == 12 and monthly.sum() == pytest.approx(planned_days(plan, PLAN_YEAR).sum())
    weekly = planned_by_period(delayed, "week")
    assert weekly.iloc[1] == pytest.approx(7 * plan.planned_delayed_days / 366)
    assert 0.7 < reablement_target(plan) < 0.95


def test_boundary_shape_spends_the_budget_late_for_the_year_to_date():
    rules = DriftRules()
    year = 52
    scales = [boundary_scale(0, week, year, rules) for week in range(4, year + 1)]
    assert scales[-1] == 1.0  # the year end: the threshold itself
    assert all(earlier > later for earlier, later in pairwise(scales))
    assert scales[0] == pytest.approx((52 / 4) ** rules.year_to_date_shape)
    assert boundary_scale(30, 43, year, rules) == boundary_scale(1, 14, year, rules) == rules.recent_window_factor
    flat = DriftRules(year_to_date_shape=0.0, recent_window_factor=1.0)
    assert {boundary_scale(0, 9, year, flat), boundary_scale(5, 18, year, flat)} == {1.0}


def test_complete_weeks_are_monday_to_sunday_from_the_first_monday():
    days = pd.date_range(PLAN_YEAR, YEAR_END)  # 2015-04-01 is a Wednesday: the first Monday is 6 April
    assert complete_weeks_by(days, date(2015, 4, 11)) == (5, 0)
    assert complete_weeks_by(days, date(2015, 4, 12)) == (5, 1)  # the first Sunday
    assert complete_weeks_by(days, date(2015, 4, 18)) == (5, 1)
    assert complete_weeks_by(days, date(2015, 4, 19)) == (5, 2)
    assert complete_weeks_by(days, date(2016, 6, 1)) == (5, 51)  # 361 days from 6 April: no week past the year
    assert complete_weeks_by(days, date(2015, 3, 1)) == (5, 0)
