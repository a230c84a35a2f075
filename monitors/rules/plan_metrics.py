"""The other three BCF plan metrics judged against their plans, month by month, as pure functions.

Emergency admissions have their own weekly test (``drift.py``). The other three metrics behave differently,
so each is judged with the noise it has, learned from the baseline year in the stream (across every board),
with a documented national fallback when there is no whole baseline year:

* **Delayed days** (:data:`PlanMetric.DELAYED_DAYS`). One delayed patient contributes a run of days, so the
  unit of noise is the delay episode, not the day: a month's total has variance ``dispersion * mean +
  extra * mean**2``, where ``dispersion`` (about the mean squared episode length over the mean length) and
  ``extra`` (a pressure that may persist from week to week, ``persistence``) are fitted across boards on the
  baseline year's weekly totals (:func:`fit_count_noise`). Fallback: dispersion 17 (episodes of 9 days on
  average, geometric), no pressure.
* **Permanent care-home admissions 65+** (:data:`PlanMetric.CARE_HOME_ADMISSIONS_65`): rare counts, the same
  model (Poisson when the fit gives dispersion 1 and extra 0; overdispersed otherwise). Fallback: Poisson.
  While fewer than ``min_expected`` admissions are planned to date the state is "too few to judge yet".
* **Reablement at 91 days** (:data:`PlanMetric.REABLEMENT_91D`): a proportion, settled cohort by cohort
  (weekly discharge cohorts, day 91 passed, looked at monthly). The share at home is judged against the plan's
  target with binomial noise times an overdispersion, plus a persistent pressure on the share, fitted on the
  baseline year's cohorts (:func:`fit_reablement_noise`). Lower is worse. A late readmission that corrects a
  settled cohort changes the counts, and the next assessment with them.

**The test** is the year to date against the plan, looked at after each month: for counts, actual minus
planned (the plan's year total spread over the weeks in the baseline year's national weekly shape) in
standard deviations of the model; for reablement, the target minus the share in standard deviations of the
share. A metric drifts when that z reaches the threshold ``h`` and the year to date is materially off plan
(``projection_margin``: 2% over plan for counts, 1 point under target for reablement). ``h``
(:func:`sequential_threshold`) is the quantile of the largest monthly year-to-date z of an on-plan year, from
the second month's look (``first_month``) to the twelfth, that keeps the false alerts to ``false_alert_rate``
(0.15% of on-plan board-years: a seventh of the 1-in-100 budget, because the noise is estimated from one
baseline year). ``bcfwatch evaluate --metric`` measures it on simulated years the fit never saw.

The noise is fitted on **weeks** (52 complete Monday-Sunday weeks of the baseline year, residual products up
to 13 weeks apart): twelve months alone cannot tell a persistent pressure from a board's own level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache

import numpy as np
import pandas as pd

from bcfwatch.core.calendar import complete_weeks, year_days
from monitors.rules.drift import Question, Severity
from monitors.rules.spc import Assurance, ImprovementDirection, Rule, Variation, xmr_chart

Z90 = 1.6448536269514722
MONTHS = 12
WEEKS = 52  # complete Monday-Sunday weeks of a simulated year (a financial year has 51 or 52)
MIN_WEEKS = 50  # a whole baseline year's complete weeks, at least
MAX_LAG = 13  # weeks of residual products the fit matches
FALLBACK_EPISODE_DAYS = 9.0  # mean delay episode (geometric) behind the delayed days fallback dispersion
DEFAULT_BED_DAY_COST_GBP = 300.0  # per delayed bed day (the live and backtest default: BCFWATCH_BED_DAY_COST_GBP)
PERSISTENCE_GRID = tuple(round(v, 2) for v in np.arange(0.0, 0.901, 0.02))  # nearer 1 a pressure is a level


class PlanMetric(StrEnum):
    DELAYED_DAYS = "delayed_days"
    CARE_HOME_ADMISSIONS_65 = "care_home_admissions_65"
    REABLEMENT_91D = "reablement_91d"


class Judgement(StrEnum):
    JUDGED = "judged"
    TOO_FEW = "too few to judge yet"


@dataclass(frozen=True)
class MetricRules:
    # drifting board-years per on-plan board-year the threshold is set for: 0.15%, a seventh of the 1-in-100
    # budget, as the noise is estimated from one baseline year (measured: 0.1 to 1.0 per 100, docs/evaluation.md)
    false_alert_rate: float = 0.0015
    projection_margin: float = 0.02  # counts: the year to date at least this far over plan to drift
    reablement_margin_points: float = 1.0  # reablement: the share at least this many points under target
    min_expected: float = 10.0  # counts: planned episodes to date (planned / dispersion) before a verdict
    min_settled_discharges: int = 30  # reablement: settled discharges of the plan year before a verdict
    first_month: int = 2  # no verdict at the looks before this plan-year month (a month of counts is too few)
    bed_day_cost_gbp: float = DEFAULT_BED_DAY_COST_GBP
    simulations: int = 200_000


def _lags(size: int) -> np.ndarray:
    return np.abs(np.subtract.outer(np.arange(size), np.arange(size)))


@dataclass(frozen=True)
class CountNoise:
    """A weekly count's noise: variance ``dispersion`` x mean (the episode: a count's own overdispersion) plus a
    pressure of relative variance ``extra`` correlated ``persistence`` ** lag between weeks (AR(1)); and each
    complete week's share of a year's count (``week_share``, from the baseline year's national counts)."""

    dispersion: float
    extra: float
    persistence: float
    week_share: tuple[float, ...]
    source: str

    def covariance(self, expected: np.ndarray) -> np.ndarray:
        """(weeks x weeks) covariance of consecutive weeks with these expected counts."""
        expected = np.asarray(expected, dtype=float)
        return (self.dispersion * np.diag(expected)
                + self.extra * np.outer(expected, expected) * self.persistence ** _lags(len(expected)))

    def sum_variance(self, expected: np.ndarray) -> float:
        """The variance of the total of consecutive weeks with these expected counts."""
        return float(self.covariance(expected).sum()) if len(expected) else 0.0


FALLBACK_NOISE = {
    PlanMetric.DELAYED_DAYS: CountNoise(2 * FALLBACK_EPISODE_DAYS - 1, 0.0, 0.0, (1 / WEEKS,) * WEEKS,
                                        "national fallback: delay episodes of 9 days (dispersion 17)"),
    PlanMetric.CARE_HOME_ADMISSIONS_65: CountNoise(1.0, 0.0, 0.0, (1 / WEEKS,) * WEEKS,
                                                   "national fallback: Poisson"),
}


def _complete_week_days(year_start: date) -> pd.DatetimeIndex:
    days = year_days(year_start)
    return days[complete_weeks(days)]


def weekly_totals(daily: pd.DataFrame, year_start: date) -> pd.DataFrame:
    """(weeks x boards) the totals of the year's complete Monday-Sunday weeks (51 or 52) from ``year_start``;
    days missing count 0."""
    days = _complete_week_days(year_start)
    table = daily.reindex(days, fill_value=0)
    return table.groupby(np.arange(len(days)) // 7).sum()


def week_months(year_start: date) -> np.ndarray:
    """For each complete week of the year from ``year_start``, the month (0-11) its Sunday falls in: a month's look
    sees the weeks that ended within it or before."""
    sundays = _complete_week_days(year_start)[6::7]
    start = pd.Timestamp(year_start)
    return np.minimum((sundays.year - start.year) * 12 + sundays.month - start.month, MONTHS - 1)


def planned_weeks(plan_total: float, noise: CountNoise, weeks: int, days: int) -> np.ndarray:
    """The plan's year total spread over a year's ``weeks`` complete weeks (of ``days`` days in all) in the
    baseline's weekly shape (the baseline year may have one week more or fewer)."""
    share = np.resize(np.asarray(noise.week_share), weeks) if weeks > len(noise.week_share) \
        else np.asarray(noise.week_share[:weeks])
    return plan_total * share / share.sum() * (7 * weeks / days)


def _best_fit(products: np.ndarray, scale: np.ndarray, count_part: np.ndarray,
              pressure_part: dict[float, np.ndarray]) -> tuple[float, float, float]:
    """(dispersion >= 1, extra >= 0, persistence): weighted least squares of the residual products (boards x
    pairs) on ``dispersion * count_part + extra * pressure_part[persistence]`` (each boards x pairs), the
    persistence of the smallest weighted residual sum of squares. ``scale`` (boards): each board's product size."""
    weight = (1 / np.maximum(scale, 1e-9))[:, None]
    target = (products * weight).ravel()
    best = (1.0, 0.0, 0.0, math.inf)
    for persistence, pressure in pressure_part.items():
        design = np.column_stack([(count_part * weight).ravel(), (pressure * weight).ravel()])
        solution = np.linalg.lstsq(design, target, rcond=None)[0]
        dispersion, extra = max(float(solution[0]), 1.0), max(float(solution[1]), 0.0)
        sse = float(((target - design @ np.array([dispersion, extra])) ** 2).sum())
        if sse < best[3]:
            best = (dispersion, extra, persistence, sse)
    return best[0], best[1], best[2] if best[1] > 0 else 0.0


def fit_count_noise(baseline_weeks: pd.DataFrame, metric: PlanMetric) -> CountNoise:
    """The noise model from a whole baseline year's 52 weekly totals (weeks x boards). Each board's expected week
    is its own year total times the national weekly share, so its residuals are ``M x`` with ``M = I - s 1'``;
    their products up to :data:`MAX_LAG` weeks apart (every board) are matched to ``M C M'``, ``C`` the model's
    covariance (:meth:`CountNoise.covariance`), for ``dispersion`` and ``extra`` by weighted least squares at
    each persistence of :data:`PERSISTENCE_GRID`, the best kept. Matching through ``M`` accounts for what each
    board's own total absorbs. Without a whole baseline year (or with fewer than 10 boards with counts): the
    national fallback."""
    totals = baseline_weeks.to_numpy(float)
    weeks = totals.shape[0]
    year = totals.sum(axis=0) if weeks >= MIN_WEEKS else np.zeros(0)
    keep = year > 0
    if keep.sum() < 10:
        return FALLBACK_NOISE[metric]
    x, year = totals[:, keep], year[keep]
    share = x.sum(axis=1) / year.sum()
    projection = np.eye(weeks) - np.outer(share, np.ones(weeks))
    residual = projection @ x
    rows, cols = np.nonzero(np.triu(_lags(weeks) <= MAX_LAG))
    products = (residual[rows] * residual[cols]).T
    count_part = np.outer(year, (projection @ np.diag(share) @ projection.T)[rows, cols])
    pressure_part = {rho: np.outer(year ** 2, (projection @ (np.outer(share, share) * rho ** _lags(weeks))
                                               @ projection.T)[rows, cols]) for rho in PERSISTENCE_GRID}
    dispersion, extra, persistence = 1.0, 0.0, 0.0
    for _ in range(2):  # weights: each board's weekly variance under the last fit
        weekly = year / weeks
        dispersion, extra, persistence = _best_fit(products, dispersion * weekly + extra * weekly ** 2, count_part,
                                                   pressure_part)
    return CountNoise(dispersion, extra, persistence, tuple(float(v) for v in share),
                      f"baseline year, {int(keep.sum())} boards")


@dataclass(frozen=True)
class ShareNoise:
    """A cohort share's noise: binomial times ``dispersion``, plus a pressure on the share of variance ``extra``
    correlated ``persistence`` ** lag between weekly cohorts."""

    dispersion: float
    extra: float
    persistence: float
    source: str

    def share_variance(self, sizes: np.ndarray, share: float) -> float:
        """The variance of the pooled share of consecutive weekly cohorts of these sizes."""
        sizes = np.asarray(sizes, dtype=float)
        total = sizes.sum()
        if total <= 0:
            return math.inf
        pressure = float((np.outer(sizes, sizes) * self.persistence ** _lags(len(sizes))).sum())
        return (self.dispersion * share * (1 - share) * total + self.extra * pressure) / total ** 2


FALLBACK_SHARE_NOISE = ShareNoise(1.0, 0.0, 0.0, "national fallback: binomial")


def fit_reablement_noise(discharges: pd.DataFrame, at_home: pd.DataFrame) -> ShareNoise:
    """The share's noise from a whole baseline year's weekly cohorts (52 x boards each): residuals from each
    board's own share, ``M_b x`` with ``M_b = I - n 1' / N``, their products up to :data:`MAX_LAG` weeks apart
    matched to ``M_b C_b M_b'`` as for counts."""
    n, x = discharges.to_numpy(float), at_home.to_numpy(float)
    weeks = n.shape[0]
    size = n.sum(axis=0) if weeks >= MIN_WEEKS else np.zeros(0)
    keep = size > 0
    if keep.sum() < 10:
        return FALLBACK_SHARE_NOISE
    n, x, size = n[:, keep], x[:, keep], size[keep]
    share = x.sum(axis=0) / size
    rows, cols = np.nonzero(np.triu(_lags(weeks) <= MAX_LAG))
    residual = x - n * share  # M_b x, board by board
    products = (residual[rows] * residual[cols]).T  # boards x pairs

    def projected(matrix_at: np.ndarray, row_sums: np.ndarray, total: np.ndarray) -> np.ndarray:
        """(M_b A_b M_b')[rows, cols] for every board from A_b's entries there, A_b 1 and 1' A_b 1:
        A - (n v' + v n') / N + (1' A 1) n n' / N**2."""
        nr, nc = n[rows].T, n[cols].T
        return (matrix_at - (nr * row_sums[cols].T + row_sums[rows].T * nc) / size[:, None]
                + total[:, None] * nr * nc / size[:, None] ** 2)

    binomial = n * share * (1 - share)  # the diagonal of the count part, weeks x boards
    count_part = projected(np.where(rows == cols, binomial[rows].T, 0.0), binomial, binomial.sum(axis=0))
    pressure_part = {}
    for rho in PERSISTENCE_GRID:
        correlated = (rho ** _lags(weeks)) @ n  # R n, weeks x boards
        row_sums = n * correlated  # A 1 with A = D R D
        pressure_part[rho] = projected((n[rows] * n[cols] * rho ** np.abs(rows - cols)[:, None]).T, row_sums,
                                       (n * correlated).sum(axis=0))
    dispersion, extra, persistence = _best_fit(products, size * np.maximum(share * (1 - share), 0.01), count_part,
                                               pressure_part)
    return ShareNoise(dispersion, extra, persistence, f"baseline year, {int(keep.sum())} boards")


@lru_cache(maxsize=16)
def sequential_threshold(false_alert_rate: float, simulations: int, looks: int = MONTHS) -> float:
    """The ``1 - false_alert_rate`` quantile of the largest year-to-date z over ``looks`` monthly looks of an
    on-plan year (independent equal months: the z of month k is the partial sum over sqrt(k))."""
    rng = np.random.default_rng(24)
    paths = np.cumsum(rng.standard_normal((simulations, looks)), axis=1) / np.sqrt(np.arange(1, looks + 1))
    return float(np.quantile(paths.max(axis=1), 1 - false_alert_rate))


@dataclass(frozen=True)
class MetricAssessment:
    board: str
    metric: PlanMetric
    months: int  # plan-year months judged (complete, settled)
    judgement: Judgement
    actual_ytd: float  # reablement: the share at home, %
    planned_ytd: float  # reablement: the target, %
    variance_pct: float  # counts: % over plan; reablement: points against target (negative = under)
    z: float  # in the direction of concern: over plan (counts), under target (reablement)
    threshold: float
    projected_year_end: float
    projected_year_end_low: float
    projected_year_end_high: float
    planned_year_end: float
    money_at_risk_gbp: float
    drifting: bool
    noise_source: str
    dispersion: float
    settled_count: float = 0.0  # reablement: settled discharges of the plan year
    attribution: dict[str, float] = field(default_factory=dict)  # delayed days: % by nhs, social_care, both
    as_of: date | None = None  # the last day of the month looked at (reablement: of the cohort month)
    variation: Variation = Variation.COMMON_CAUSE  # the monthly SPC chart's latest point
    assurance: Assurance = Assurance.HIT_AND_MISS
    rules_fired: list[Rule] = field(default_factory=list)

    # What the alert book and the alert event read, named as on an emergency-admissions assessment.
    question = Question.PLAN_NUMBER  # the plan number (for reablement: the target) is the question
    window_weeks = 0  # the year to date decides
    expected_pattern = "the plan's year total in the baseline year's weekly shape"

    @property
    def severity(self) -> Severity | None:
        return Severity.CRITICAL if self.drifting else None

    @property
    def window_z(self) -> float:
        return self.z

    @property
    def window_variance_pct(self) -> float:
        return self.variance_pct


def assess_count(board: str, metric: PlanMetric, plan_total: float, weekly_actual: np.ndarray, months: int,
                 noise: CountNoise, rules: MetricRules, attribution: dict[str, float] | None = None,
                 year_weeks: int = WEEKS, year_days: int = 7 * WEEKS) -> MetricAssessment:
    """The year to date of a count metric at the look after plan-year month ``months`` (1-12): its complete weeks
    so far (``weekly_actual``) against the plan's year total spread over the plan year's ``year_weeks`` complete
    weeks (``year_days`` days in the year) in the baseline's weekly shape."""
    k = len(weekly_actual)
    planned_by_week = planned_weeks(plan_total, noise, year_weeks, year_days)
    planned, actual = float(planned_by_week[:k].sum()), float(np.sum(weekly_actual))
    variance = noise.sum_variance(planned_by_week[:k])
    z = (actual - planned) / math.sqrt(variance) if variance > 0 else 0.0
    threshold = sequential_threshold(rules.false_alert_rate, rules.simulations, MONTHS - rules.first_month + 1)
    ratio = actual / planned if planned > 0 else 1.0
    rest = planned_by_week[k:] * ratio
    projected = actual + ratio * (plan_total - planned)  # the days outside complete weeks too
    spread = math.sqrt(noise.sum_variance(rest) + (rest.sum() / actual) ** 2 * variance) if actual > 0 else 0.0
    judged = planned / noise.dispersion >= rules.min_expected and months >= rules.first_month  # in episodes
    drifting = judged and z >= threshold and actual >= planned * (1 + rules.projection_margin)
    excess_days = max(projected - plan_total, 0.0) if metric is PlanMetric.DELAYED_DAYS else 0.0
    return MetricAssessment(
        board, metric, months, Judgement.JUDGED if judged else Judgement.TOO_FEW, actual, planned,
        (actual / planned - 1) * 100 if planned > 0 else 0.0, z, threshold, projected, projected - Z90 * spread,
        projected + Z90 * spread, plan_total, excess_days * rules.bed_day_cost_gbp, drifting, noise.source,
        noise.dispersion, attribution=dict(attribution or {}))


def assess_reablement(board: str, target_share: float, cohort_sizes: np.ndarray, cohort_at_home: np.ndarray,
                      months: int, noise: ShareNoise, rules: MetricRules, remaining_discharges: float
                      ) -> MetricAssessment:
    """The plan year's settled weekly cohorts' share at home after 91 days against the target share (0-1) at the
    look after cohort month ``months``; lower is worse. ``remaining_discharges``: the year's discharges still
    to settle (for the year-end interval)."""
    n, x = float(np.sum(cohort_sizes)), float(np.sum(cohort_at_home))
    share = x / n if n else target_share
    variance = noise.share_variance(cohort_sizes, target_share)
    z = (target_share - share) / math.sqrt(variance) if n else 0.0
    threshold = sequential_threshold(rules.false_alert_rate, rules.simulations, MONTHS - rules.first_month + 1)
    judged = n >= rules.min_settled_discharges and months >= rules.first_month
    drifting = judged and z >= threshold and share * 100 <= target_share * 100 - rules.reablement_margin_points
    rest = max(remaining_discharges, 0.0)
    weight = rest / (n + rest) if n + rest else 0.0
    weeks_left = max(WEEKS - len(cohort_sizes), 1)
    future = noise.share_variance(np.full(weeks_left, rest / weeks_left), share) if rest else 0.0
    year_sd = weight * math.sqrt(noise.share_variance(cohort_sizes, share) + future) if n else 0.0
    return MetricAssessment(
        board, PlanMetric.REABLEMENT_91D, months, Judgement.JUDGED if judged else Judgement.TOO_FEW,
        share * 100, target_share * 100, (share - target_share) * 100, z, threshold, share * 100,
        (share - Z90 * year_sd) * 100, (share + Z90 * year_sd) * 100, target_share * 100, 0.0, drifting,
        noise.source, noise.dispersion, settled_count=n)


def monthly_spc(values: np.ndarray, baseline_points: int, target: float,
                improvement: ImprovementDirection) -> tuple[Variation, Assurance, list[Rule]]:
    """The latest point's verdict on NHSRplotthedots' XmR chart of monthly values (limits fixed on the baseline
    year's months when there are at least 12 of them and months after), against ``target``."""
    if len(values) < 2:
        return Variation.COMMON_CAUSE, Assurance.HIT_AND_MISS, []
    fix = baseline_points if 12 <= baseline_points < len(values) else None
    chart = xmr_chart(values, improvement=improvement, fix_after_n_points=fix, target=target)
    last = len(values) - 1
    return chart.variation(last), chart.assurance or Assurance.HIT_AND_MISS, chart.rules_fired(last)
