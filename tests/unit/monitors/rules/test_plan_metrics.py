"""The rules for delayed days, care-home admissions and reablement: the noise fits recover what made the data,
the year-to-date test's arithmetic, its direction, its too-few state and its threshold."""

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from monitors.rules.plan_metrics import (
    FALLBACK_NOISE,
    WEEKS,
    CountNoise,
    Judgement,
    MetricRules,
    PlanMetric,
    ShareNoise,
    assess_count,
    assess_reablement,
    fit_count_noise,
    fit_reablement_noise,
    planned_weeks,
    sequential_threshold,
    week_months,
    weekly_totals,
)

RULES = MetricRules(simulations=20_000)


def boards(rng, count: int = 151) -> np.ndarray:
    return rng.uniform(200, 3000, count)  # weekly expected counts


def ar1(rng, shape, sd, rho):
    out = np.empty(shape)
    out[0] = rng.normal(0, sd, shape[1])
    for week in range(1, shape[0]):
        out[week] = rho * out[week - 1] + rng.normal(0, sd * math.sqrt(1 - rho ** 2), shape[1])
    return out


def test_count_fit_recovers_episode_dispersion_and_persistent_pressure():
    rng = np.random.default_rng(5)
    weekly = np.outer(np.ones(WEEKS), boards(rng))
    level = weekly * np.exp(ar1(rng, weekly.shape, 0.06, 0.9))
    episodes = rng.poisson(level / 9)
    days = np.where(episodes > 0, episodes + rng.negative_binomial(np.maximum(episodes, 1), 1 / 9), 0)
    noise = fit_count_noise(pd.DataFrame(days.astype(float)), PlanMetric.DELAYED_DAYS)
    assert noise.dispersion == pytest.approx(17, rel=0.2)  # E[L^2] / E[L] of geometric episodes of 9 days
    assert noise.extra == pytest.approx(0.06 ** 2, rel=0.5) and noise.persistence > 0.7
    assert sum(noise.week_share) == pytest.approx(1.0)


def test_without_a_baseline_year_the_national_fallback_is_used():
    assert fit_count_noise(pd.DataFrame(np.zeros((10, 5))), PlanMetric.DELAYED_DAYS) is \
        FALLBACK_NOISE[PlanMetric.DELAYED_DAYS]
    assert "fallback" in FALLBACK_NOISE[PlanMetric.CARE_HOME_ADMISSIONS_65].source


def test_reablement_fit_sees_binomial_cohorts_as_binomial():
    rng = np.random.default_rng(2)
    sizes = rng.poisson(np.outer(np.ones(WEEKS), rng.uniform(20, 200, 151))).astype(float)
    at_home = rng.binomial(sizes.astype(int), 0.82).astype(float)
    noise = fit_reablement_noise(pd.DataFrame(sizes), pd.DataFrame(at_home))
    assert noise.dispersion == pytest.approx(1.0, abs=0.15) and noise.extra < 1e-4


def test_count_year_to_date_arithmetic_and_direction():
    noise = CountNoise(2.0, 0.0, 0.0, (1 / WEEKS,) * WEEKS, "test")
    on_plan = assess_count("B", PlanMetric.CARE_HOME_ADMISSIONS_65, 520.0, np.full(13, 10.0), 3, noise, RULES)
    assert on_plan.planned_ytd == pytest.approx(130) and on_plan.z == pytest.approx(0) and not on_plan.drifting
    assert on_plan.projected_year_end == pytest.approx(520)
    over = assess_count("B", PlanMetric.CARE_HOME_ADMISSIONS_65, 520.0, np.full(13, 16.0), 3, noise, RULES)
    assert over.z == pytest.approx(78 / math.sqrt(2 * 130)) and over.drifting
    assert over.projected_year_end == pytest.approx(520 * 1.6)
    assert over.projected_year_end_low < over.projected_year_end < over.projected_year_end_high
    under = assess_count("B", PlanMetric.CARE_HOME_ADMISSIONS_65, 520.0, np.full(13, 6.0), 3, noise, RULES)
    assert under.z < 0 and not under.drifting  # one-sided: fewer admissions than planned is never a concern


def test_rare_counts_are_too_few_to_judge_until_enough_are_planned():
    noise = FALLBACK_NOISE[PlanMetric.CARE_HOME_ADMISSIONS_65]
    early = assess_count("B", PlanMetric.CARE_HOME_ADMISSIONS_65, 26.0, np.full(4, 5.0), 1, noise, RULES)
    assert early.judgement is Judgement.TOO_FEW and not early.drifting  # 2 planned, 20 seen: still not judged
    later = assess_count("B", PlanMetric.CARE_HOME_ADMISSIONS_65, 26.0, np.full(26, 3.0), 6, noise, RULES)
    assert later.judgement is Judgement.JUDGED and later.drifting


def test_delayed_days_price_the_excess_bed_days():
    noise = FALLBACK_NOISE[PlanMetric.DELAYED_DAYS]
    over = assess_count("B", PlanMetric.DELAYED_DAYS, 5200.0, np.full(26, 150.0), 6, noise, RULES)
    assert over.money_at_risk_gbp == pytest.approx((over.projected_year_end - 5200) * RULES.bed_day_cost_gbp)


def test_reablement_lower_is_worse():
    noise = ShareNoise(1.0, 0.0, 0.0, "test")
    below = assess_reablement("B", 0.82, np.full(20, 50.0), np.full(20, 36.0), 5, noise, RULES, 1600.0)
    assert below.actual_ytd == pytest.approx(72.0) and below.variance_pct == pytest.approx(-10.0)
    assert below.z == pytest.approx(0.10 / math.sqrt(0.82 * 0.18 / 1000)) and below.drifting
    above = assess_reablement("B", 0.82, np.full(20, 50.0), np.full(20, 46.0), 5, noise, RULES, 1600.0)
    assert above.z < 0 and not above.drifting
    few = assess_reablement("B", 0.82, np.full(2, 10.0), np.full(2, 2.0), 2, noise, RULES, 1600.0)
    assert few.judgement is Judgement.TOO_FEW and not few.drifting


def test_the_threshold_holds_the_false_alert_rate_for_independent_months():
    h = sequential_threshold(0.01, 50_000, 11)
    rng = np.random.default_rng(9)
    paths = np.cumsum(rng.standard_normal((50_000, 11)), axis=1) / np.sqrt(np.arange(1, 12))
    assert (paths.max(axis=1) >= h).mean() == pytest.approx(0.01, abs=0.002)
    assert sequential_threshold(0.0025, 50_000, 11) > h > 2.33  # more looks than one need a higher bar


def test_weeks_and_their_months():
    daily = pd.DataFrame({"B": 1.0}, index=pd.date_range("2015-04-01", "2016-03-31"))
    weeks = weekly_totals(daily, date(2015, 4, 1))
    assert len(weeks) == 51 and (weeks["B"] == 7).all()  # 6 April 2015 to 27 March 2016
    months = week_months(date(2015, 4, 1))
    assert len(months) == 51 and months[2] == 0 and months[3] == 1 and months[-1] == 11  # Sundays 26 April, 3 May
    noise = CountNoise(1.0, 0.0, 0.0, (1 / WEEKS,) * WEEKS, "test")
    assert planned_weeks(366.0, noise, 51, 366).sum() == pytest.approx(357)  # the 357 days of complete weeks
