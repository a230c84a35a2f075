"""The expected pattern and the noise model, learned from a baseline year (monitors/rules/profile.py, noise.py,
baseline.py), on small simulations whose truth is known."""

import calendar as gregorian
import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from bcfwatch.core.calendar import (
    BANK_HOLIDAY,
    civil_epoch_days,
    complete_weeks,
    day_text,
    day_texts,
    day_types,
    days_in_month,
    england_bank_holidays,
    epoch_day,
    epoch_days,
    epoch_microseconds,
    financial_year_starting,
    next_financial_year_start,
    week_ending,
    week_numbers,
    year_days,
)
from bcfwatch.core.national import BANK_HOLIDAY_FACTOR, SEASONAL_AMPLITUDE, WEEKEND_FACTOR, seasonality
from bcfwatch.core.plans import load_plan
from monitors.analysis.evaluate import NoiseSetting, simulate_daily
from monitors.rules.baseline import baseline_model
from monitors.rules.drift import DriftRules, Question, assess, detector
from monitors.rules.noise import fit_noise
from monitors.rules.profile import PATTERN_DEFAULT, default_pattern, fit_pattern
from producers.sample_plan import sample_plan_path

PLAN_YEAR = date(2015, 4, 1)
WEEKDAY = (1.10, 1.02, 1.0, 0.98, 1.0, 0.78, 0.76)


def test_bank_holidays_of_england_by_day_type():
    days = pd.date_range("2015-12-24", "2016-01-04")
    types = dict(zip(days.date, day_types(days), strict=True))
    assert types[date(2015, 12, 25)] == BANK_HOLIDAY  # Friday
    assert types[date(2015, 12, 26)] == 5  # Boxing Day on a Saturday stays a Saturday...
    assert types[date(2015, 12, 28)] == BANK_HOLIDAY  # ...and its substitute Monday is the holiday
    assert types[date(2016, 1, 1)] == BANK_HOLIDAY and types[date(2016, 1, 4)] == 0
    easter = pd.date_range("2016-03-21", "2016-04-03")
    assert [d.isoformat() for d in easter[england_bank_holidays(easter)].date] == ["2016-03-25", "2016-03-28"]


def test_calendar_weeks_years_and_epoch_days():
    assert week_ending(date(2015, 6, 1)) == date(2015, 6, 7) == week_ending(date(2015, 6, 7))  # Monday, Sunday
    days = pd.date_range("2015-04-01", "2015-04-30")  # a Wednesday to a Thursday
    assert week_numbers(days).tolist() == [0] * 5 + [1] * 7 + [2] * 7 + [3] * 7 + [4] * 4
    span = complete_weeks(days)
    assert (days[span.start].day_of_week, days[span.stop - 1].day_of_week, span.stop - span.start) == (0, 6, 21)
    assert financial_year_starting(2015) == date(2015, 4, 1) == next_financial_year_start(date(2015, 3, 31))
    assert len(year_days(date(2015, 4, 1))) == 366 and len(year_days(date(2014, 4, 1), 2)) == 731
    rng = np.random.default_rng(3)
    ordinals = rng.integers(date(1900, 1, 1).toordinal(), date(2100, 12, 31).toordinal(), 5000)
    dates = [date.fromordinal(int(n)) for n in ordinals]
    year, month, day = (np.array([getattr(d, part) for d in dates]) for part in ("year", "month", "day"))
    expected = ordinals - date(1970, 1, 1).toordinal()
    assert civil_epoch_days(year, month, day).tolist() == expected.tolist()
    assert days_in_month(year, month).tolist() == [gregorian.monthrange(y, m)[1]
                                                  for y, m in zip(year, month, strict=True)]
    seconds = expected * 86_400.0 + rng.uniform(0, 86_400, len(expected))
    assert epoch_days(seconds).tolist() == [epoch_day(s) for s in seconds] == expected.tolist()
    assert list(day_texts(expected[:50])) == [day_text(int(n)) for n in expected[:50]] == \
        [d.isoformat() for d in dates[:50]]
    moment = datetime(2015, 6, 1, 9, 30, 0, 123456, tzinfo=UTC)
    assert epoch_microseconds(moment) == (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_default_pattern_is_the_national_default_shape():
    days = pd.date_range("2015-12-21", "2015-12-27")  # Monday to Sunday; Christmas on the Friday
    assert default_pattern(days) / seasonality(days) == pytest.approx(
        [1, 1, 1, 1, BANK_HOLIDAY_FACTOR, WEEKEND_FACTOR, WEEKEND_FACTOR])
    assert default_pattern(pd.DatetimeIndex(["2016-01-15"]))[0] == pytest.approx(1 + SEASONAL_AMPLITUDE)


def _baseline(boards: int, volume: float, seed: int, setting: NoiseSetting) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan_days = pd.date_range(PLAN_YEAR, "2016-03-31")
    daily = simulate_daily(setting, date(2014, 4, 1), np.ones((boards, len(plan_days))), rng,
                           np.full(boards, volume))
    daily.columns = [f"B{i:03d}" for i in range(boards)]
    return daily


def test_pattern_learns_weekday_and_bank_holiday_shape():
    setting = NoiseSetting("test", weekday=WEEKDAY, bank_holiday=0.72, local_sd=0.01, daily_shape=1e6)
    daily = _baseline(40, 40_000, 1, setting)
    pattern = fit_pattern(daily.loc[:"2015-03-31"])
    factors = pattern.day_factors("B000")
    for name, truth in zip(("Mon", "Sat", "Sun"), (WEEKDAY[0], WEEKDAY[5], WEEKDAY[6]), strict=True):
        assert factors[name] == pytest.approx(truth / WEEKDAY[2], abs=0.015)
    assert factors["bank holiday"] == pytest.approx(0.72 * np.mean(WEEKDAY[:5]) / WEEKDAY[2], abs=0.04)
    # every board has the national shape: little weight on any board's own (noisy) day effects
    assert np.mean(list(pattern.board_weight.values())) < 0.5
    assert pattern.describe("B000") == "baseline year (national shape)"


def test_a_board_whose_weekends_really_differ_keeps_its_own_shape():
    setting = NoiseSetting("test", weekday=WEEKDAY, local_sd=0.01, daily_shape=1e6)
    daily = _baseline(30, 60_000, 2, setting)
    weekend = daily.index.day_of_week >= 5
    rng = np.random.default_rng(3)
    for i in range(10):  # a third of the boards: weekends a further 3-12% lower
        daily.loc[weekend, f"B{i:03d}"] = rng.binomial(daily.loc[weekend, f"B{i:03d}"], 0.88 + 0.01 * i)
    pattern = fit_pattern(daily.loc[:"2015-03-31"])
    assert pattern.describe("B000") == "baseline year (board's own shape)"
    assert pattern.day_factors("B000")["Sat"] < pattern.day_factors("B029")["Sat"] - 0.05


def test_noise_fit_recovers_local_pressure_and_overdispersion():
    setting = NoiseSetting("test", local_sd=0.03, local_rho=0.6, winter_board_sd=0.0, daily_shape=1e6)
    daily = _baseline(151, 40_000, 4, setting)
    plans = {code: _plan(code, daily) for code in daily.columns}
    noise = baseline_model(plans, daily, PLAN_YEAR).noise
    assert noise.kappa == pytest.approx(1.0, abs=0.2)
    assert np.sqrt(noise.local + noise.quarter) == pytest.approx(0.03, abs=0.008)
    assert 0.3 <= noise.rho <= 0.9
    # pure Poisson counts of boards of many sizes, each anchored to its own annual total as the model does
    counts = np.random.default_rng(5).poisson(np.geomspace(100, 3000, 100)[:, None], (100, 52))
    anchored = np.repeat(counts.mean(axis=1, keepdims=True), 52, axis=1)
    poisson = fit_noise(counts, anchored, np.repeat(np.arange(4), 13), [str(i) for i in range(100)])
    assert poisson.kappa == pytest.approx(1.0, abs=0.1)
    assert np.sqrt(poisson.local + poisson.quarter + poisson.white) < 0.01


def _plan(code: str, daily: pd.DataFrame):
    template = next(iter(load_plan(sample_plan_path()).values()))
    baseline = daily.loc[:"2015-03-31", code]
    quarters = baseline.groupby(((baseline.index.month - 4) % 12) // 3).sum()
    return replace(template, board=code, baseline_emergency_by_quarter=tuple(int(v) for v in quarters))


def test_a_plan_cut_from_another_extract_is_judged_on_the_same_questions_as_one_built_from_the_counts():
    """No heuristic switches the framing: quarters 1% off the counted baseline give the same tests."""
    setting = NoiseSetting("test", local_sd=0.02)
    daily = _baseline(20, 30_000, 6, setting)
    from_counts = _plan("B000", daily)
    elsewhere = replace(from_counts, baseline_emergency_by_quarter=tuple(
        int(v * 1.01) for v in from_counts.baseline_emergency_by_quarter))
    spreads = {}
    for plan in (from_counts, elsewhere):
        model = baseline_model({"B000": plan}, daily, PLAN_YEAR)
        for question in Question:
            test = detector(model, plan, DriftRules(simulations=2000), question)
            assert test.question is question
            spreads[plan, question] = (math.sqrt(test.window_variance(0, len(test.expected))) / test.expected.sum(),
                                       test.threshold)
    for question in Question:
        (sd_counts, h_counts), (sd_elsewhere, h_elsewhere) = (spreads[from_counts, question],
                                                              spreads[elsewhere, question])
        assert sd_elsewhere == pytest.approx(sd_counts, rel=0.01) and h_elsewhere == pytest.approx(h_counts, rel=0.01)
    # the underlying-rate test also counts the plan baseline's own noise; the plan number's does not
    assert spreads[from_counts, Question.UNDERLYING_RATE][0] > 1.2 * spreads[from_counts, Question.PLAN_NUMBER][0]


def test_easter_moves_the_expectation_by_day_type_not_by_date():
    setting = NoiseSetting("test", weekday=WEEKDAY, bank_holiday=0.6, local_sd=0.005, daily_shape=1e6)
    daily = _baseline(30, 60_000, 7, setting)
    plans = {code: _plan(code, daily) for code in daily.columns}
    model = baseline_model(plans, daily, PLAN_YEAR)
    planned = model.planned_days(plans["B000"])
    # Good Friday 2016 is 25 March (plan-year Q4); in the baseline year it fell on 18 April 2014 (Q1)
    good_friday, friday_before = planned[pd.Timestamp("2016-03-25")], planned[pd.Timestamp("2016-03-18")]
    assert good_friday / friday_before == pytest.approx(0.6 * np.mean(WEEKDAY[:5]) / WEEKDAY[4], abs=0.06)
    assert planned[pd.Timestamp("2015-04-03")] < 0.8 * planned[pd.Timestamp("2015-04-10")]  # Good Friday 2015


def test_default_pattern_when_no_baseline_year():
    plans = load_plan(sample_plan_path())
    model = baseline_model(plans, pd.DataFrame(), PLAN_YEAR)
    assert model.pattern.describe("E08000025") == PATTERN_DEFAULT
    days = model.planned_days(plans["E08000025"])
    assert days[pd.Timestamp("2015-12-25")] < days[pd.Timestamp("2015-12-24")]  # a bank holiday, a Thursday
    result = assess(plans["E08000025"], pd.Series(dtype=float), PLAN_YEAR, date(2015, 6, 28), DriftRules())
    assert result.expected_pattern == PATTERN_DEFAULT and not result.drifting
