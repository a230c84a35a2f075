"""Is a board drifting off its plan? A calibrated sequential test on weekly admissions, as pure functions.

For each board the plan year is cut into weeks (Monday to Sunday, only weeks
wholly inside the year and complete by the evaluation date). Each week's
emergency admissions are compared with the plan trajectory, whose daily shape
is the one *observed in the baseline year* and whose noise is *estimated from
the baseline year* (``monitors/rules/baseline.py``; docs/drift.md has the model).

**Two questions** (:class:`Question`), each its own test and alert: will the board miss its plan number
(the primary alert: the plan year's own noise), and has its underlying rate moved from what the plan
assumed (a labelled second finding: the plan baseline's noise too). docs/drift.md.

**The rule (a one-sided two-window scan).** After week ``n`` (from week
``min_weeks``), for the year to date and for the latest 13 weeks (``windows``),
the excess of actual over planned admissions is estimated by generalised least
squares from every week seen (:func:`gls_weights`: the most powerful test of
that drift under the fitted noise model: count overdispersion, week noise,
local pressure with its autocorrelation, quarter levels, the board's own and
the nation's winter swing, and for the second question the plan baseline's
noise) and taken in its standard deviations. The board **drifts** when one of
these z reaches its boundary *and* that window is at least
``projection_margin`` (1%) over plan. The boundaries are one threshold ``h``
times a fixed shape (:func:`boundary_scale`): for the year to date after week
``n`` of ``N``, ``h * (N / n) ** year_to_date_shape`` (0.1 for the plan
number: nearly flat, so a large drift is raised within weeks, ``h`` at the
year end; 0.5, O'Brien-Fleming's, for the underlying rate, read at the year
end); for the latest 13 weeks ``h * recent_window_factor`` (1.1; 1.3).
``h`` is calibrated by simulating plan years from the fitted noise model
(:func:`threshold_table`) so that a board exactly on its plan raises an alert
in at most ``false_alert_rate`` of board-years (0.5%, half the 1-in-100
budget: the model is estimated, not known). Boards under plan never raise: the
test is one-sided. Severity is "critical" when the year to date itself is off
plan (the plan will be missed) and "warning" when only a recent window is (a
step up). ``bcfwatch evaluate`` measures all of it (docs/evaluation.md).

SPC ("Making Data Count") is kept as information, not as a trigger: the weekly
variance is charted against XmR limits fixed from the baseline year, with
its rules and assurance in every alert. Across 151 boards a week-by-week SPC
trigger raises far more false alerts than a board-year budget allows
(measured before this rule: most boards flag some week of every year).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from bcfwatch.core.calendar import week_ending
from bcfwatch.core.plans import DEFAULT_UNIT_COST_GBP, BoardPlan
from monitors.rules.baseline import BaselineModel, baseline_model, complete_weeks, quarter_of_weeks, weekly_sums
from monitors.rules.noise import Noise, quarter_sum_variance, weekly_covariance
from monitors.rules.spc import Assurance, Limits, Rule, Variation, assurance, special_causes, xmr_chart, xmr_limits
from monitors.rules.trajectory import year_days

METRIC = "emergency_admissions"
PROJECTION_Z = 1.645  # 90% projection interval
CALIBRATION_SEED = 2015
CALIBRATION_SIZES = (3.0, 15.0, 60.0, 250.0, 1000.0, 4000.0)  # expected admissions a week (interpolated in log)


class Question(StrEnum):
    """Which question a finding answers; every alert names it (its ``question`` field), and nothing switches it.

    ``plan_number`` (the primary alert): is this board expected to miss its plan number? The plan number is
    fixed, so only the plan year's own noise counts. ``underlying_rate`` (a labelled second finding, the
    analyst's diagnostic): has the board's underlying rate moved from what the plan assumed? The plan's
    baseline is itself a counted, noisy year, so that noise counts too: a board can be expected to miss its
    number because its baseline year was unusually low (an unlucky baseline) without its rate having moved.
    """

    PLAN_NUMBER = "plan_number"
    UNDERLYING_RATE = "underlying_rate"


class Severity(StrEnum):
    """How bad a drift is: the year to date itself is off plan (critical), or only a recent window (warning)."""

    CRITICAL = "critical"
    WARNING = "warning"


@dataclass(frozen=True)
class DriftRules:
    projection_margin: float = 0.01  # a window must be at least this far over plan to count as drifting
    false_alert_rate: float = 0.005  # drifting alerts per on-plan board-year the thresholds are set for
    windows: tuple[int, ...] = (13,)  # recent windows (weeks) scanned besides the year to date
    min_weeks: int = 4  # no verdict before this many plan-year weeks
    year_to_date_shape: float = 0.1  # the year-to-date boundary after week n of N: h * (N / n) ** shape
    recent_window_factor: float = 1.1  # the recent windows' boundary: h * factor
    # the underlying-rate finding is a diagnostic read at the year end more than the week it comes: its
    # boundary spends its budget late (O'Brien-Fleming's shape)
    underlying_year_to_date_shape: float = 0.5
    underlying_recent_window_factor: float = 1.3
    simulations: int = 10_000  # simulated on-plan years per calibration point
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
        return week_ending(self.start[count - 1].date())


@dataclass(frozen=True)
class Detector:
    """A board's plan-year test: weekly expectations, the residual covariance and the calibrated threshold."""

    expected: np.ndarray  # planned admissions in each complete week of the plan year
    covariance: np.ndarray  # of the weekly residuals (actual - planned) under the noise model
    threshold: float
    expected_pattern: str
    noise_source: str
    question: Question
    windows: tuple[int, ...] = (13,)  # the recent windows the test scans (DriftRules.windows)
    _prefix: np.ndarray = field(repr=False, init=False)  # set by __post_init__
    _weights: dict[int, np.ndarray] = field(repr=False, init=False)

    def __post_init__(self) -> None:
        prefix = np.zeros((len(self.expected) + 1,) * 2)
        prefix[1:, 1:] = self.covariance.cumsum(axis=0).cumsum(axis=1)
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_weights", gls_weights(self.covariance, self.expected, self.windows))

    def z(self, residual: np.ndarray, start: int, end: int) -> float:
        """The window's z after ``end`` weeks: its excess as the best (generalised least squares) estimate
        from every week seen so far, in its standard deviations (:func:`gls_weights`)."""
        weights = self._weights[0 if start == 0 else end - start][end, :end]
        return float(weights @ residual[:end])

    def boundary(self, start: int, end: int, rules: DriftRules) -> float:
        """The z the window of weeks ``start`` .. ``end - 1`` must reach (the threshold times its shape)."""
        return self.threshold * boundary_scale(start, end, len(self.expected), rules, self.question)

    def window_variance(self, start: int, end: int) -> float:
        """Variance of the summed residuals of weeks ``start`` .. ``end - 1``."""
        p = self._prefix
        return float(p[end, end] - p[start, end] - p[end, start] + p[start, start])

    @property
    def dispersion(self) -> float:
        """A week's variance over its Poisson variance (1 = Poisson), averaged over the year."""
        return float(np.mean(np.diag(self.covariance) / self.expected))


@dataclass(frozen=True)
class Assessment:
    board: str
    metric: str
    as_of: date | None
    weeks: int
    question: Question
    actual_ytd: float
    planned_ytd: float
    variance_pct: float  # year to date
    z: float  # year to date, in standard deviations of the fitted noise model
    projected_year_end: float
    planned_year_end: float
    baseline_year: float
    money_at_risk_gbp: float
    projected_year_end_low: float = 0.0  # 90% projection interval
    projected_year_end_high: float = 0.0
    threshold: float = math.inf  # the z the deciding window had to reach (the year to date's before a verdict)
    ytd_sd_pct: float = 0.0  # the model's standard deviation of the year-to-date variance (percentage points)
    window_weeks: int = 0  # the window that decided the verdict (the year to date or the latest n weeks)
    window_z: float = 0.0
    window_variance_pct: float = 0.0
    expected_pattern: str = ""
    noise_source: str = ""
    dispersion: float = 1.0
    variation: Variation = Variation.COMMON_CAUSE
    rules_fired: list[Rule] = field(default_factory=list)
    assurance: Assurance = Assurance.HIT_AND_MISS
    projection_miss: bool = False  # the year to date is significantly and materially over plan
    recent_drift: bool = False  # a recent window is (a step up), the year to date not (yet)
    series: WeeklySeries = field(kw_only=True)  # always given (assess_questions)
    limits: Limits | None = None
    special_cause_high: np.ndarray | None = None
    special_cause_low: np.ndarray | None = None

    @property
    def drifting(self) -> bool:
        return self.projection_miss or self.recent_drift

    @property
    def severity(self) -> Severity | None:
        if not self.drifting:
            return None
        return Severity.CRITICAL if self.projection_miss else Severity.WARNING

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


def gls_weights(covariance: np.ndarray, expected: np.ndarray, windows: tuple[int, ...]) -> dict[int, np.ndarray]:
    """The weights of the most powerful test of a drift after each week: {0: year to date, L: the latest L
    weeks} -> ((weeks + 1) x weeks), row ``n`` the weights of the first ``n`` weeks' residuals.

    A drift over a window is a relative excess ``d`` = the planned weeks of the window (0 elsewhere). Given
    the residuals ``r`` of the weeks seen and their covariance ``S`` under the noise model, the z of the
    generalised least squares estimate of that excess is ``d' S^-1 r / sqrt(d' S^-1 d)``: standard normal
    with no drift, and the most powerful for this drift (Neyman-Pearson). Where the covariance says a
    pattern of weeks is likely noise (a winter that came early, a quarter's level, persistent local
    pressure), it counts for less; with independent weeks it is the plain window sum."""
    weeks = len(expected)
    lengths = (0, *windows)
    result = {length: np.zeros((weeks + 1, weeks)) for length in lengths}
    for end in range(1, weeks + 1):
        seen = covariance[:end, :end]
        directions = np.zeros((end, len(lengths)))
        for column, length in enumerate(lengths):
            start = 0 if length == 0 or length >= end else end - length
            directions[start:end, column] = expected[start:end]
        solved = np.linalg.solve(seen, directions)
        scale = np.sqrt(np.maximum(np.einsum("ij,ij->j", directions, solved), 1e-300))
        for column, length in enumerate(lengths):
            result[length][end, :end] = solved[:, column] / scale[column]
    return result


def complete_weeks_by(days: pd.Index, as_of: date) -> tuple[int, int]:
    """(the index of the first Monday of ``days``, how many complete Monday-Sunday weeks from it end by
    ``as_of``): the weeks a board's series has once its counts are settled to ``as_of``."""
    first_monday = (7 - days[0].day_of_week) % 7
    last_day = int(np.searchsorted(days, pd.Timestamp(as_of), side="right"))
    return first_monday, max(0, (last_day - first_monday) // 7)


def weekly_series(actual: pd.Series, expected: pd.Series, as_of: date) -> WeeklySeries:
    """Complete Monday-Sunday weeks of ``expected``'s days that end by ``as_of``."""
    days = expected.index
    first_monday, complete = complete_weeks_by(days, as_of)
    span = slice(first_monday, first_monday + complete * 7)
    window = days[span]
    actual_days = actual.reindex(window, fill_value=0).to_numpy(dtype=float)
    return WeeklySeries(window[::7], actual_days.reshape(-1, 7).sum(axis=1),
                        expected.to_numpy()[span].reshape(-1, 7).sum(axis=1))


def boundary_scale(start: int, end: int, year_weeks: int, rules: DriftRules,
                   question: Question = Question.PLAN_NUMBER) -> float:
    """The boundary of the window of weeks ``start`` .. ``end - 1`` as a multiple of the threshold ``h``: the
    year to date's falls as the year fills (``(N / n) ** year_to_date_shape``), a recent window's is fixed."""
    underlying = question is Question.UNDERLYING_RATE
    if start == 0:
        shape = rules.underlying_year_to_date_shape if underlying else rules.year_to_date_shape
        return float((year_weeks / max(end, 1)) ** shape)
    return rules.underlying_recent_window_factor if underlying else rules.recent_window_factor


def _windows(weeks: int, rules: DriftRules) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of every window judged at weeks min_weeks..weeks (0-based start, exclusive end)."""
    starts, ends = [], []
    for end in range(max(rules.min_weeks, 1), weeks + 1):
        for length in (end, *[w for w in rules.windows if w < end]):
            starts.append(end - length)
            ends.append(end)
    return np.array(starts, dtype=int), np.array(ends, dtype=int)


def _null_maxima(noise: Noise, weekly_expected: float, quarter_of_week: np.ndarray, question: Question,
                 rules: DriftRules, seasonal_modes: np.ndarray | None = None) -> np.ndarray:
    """The largest window z of each simulated on-plan year, for a board of this weekly size."""
    weeks = len(quarter_of_week)
    expected = np.full(weeks, weekly_expected)
    baseline_variance = None
    if question is Question.UNDERLYING_RATE:  # the plan's baseline quarters carry the same noise model's variance
        baseline_variance = quarter_sum_variance(noise, "", expected, quarter_of_week,
                                                 None if seasonal_modes is None else seasonal_modes[0])
    shared, count = weekly_covariance(noise, "", expected, quarter_of_week, baseline_variance, seasonal_modes)
    values, vectors = np.linalg.eigh(shared)
    root = vectors * np.sqrt(np.clip(values, 0, None))
    rng = np.random.default_rng(CALIBRATION_SEED)
    gaussian = rng.standard_normal((rules.simulations, weeks)) @ root.T
    scale = noise.kappa
    counts = scale * rng.poisson(expected / scale, size=(rules.simulations, weeks)) - expected
    residual = gaussian + counts
    starts, ends = _windows(weeks, rules)
    weights = gls_weights(shared + np.diag(count), expected, rules.windows)
    z_by_length = {length: residual @ matrix.T for length, matrix in weights.items()}  # simulations x (weeks + 1)
    z = np.column_stack([z_by_length[0 if a == 0 else b - a][:, b] for a, b in zip(starts, ends, strict=True)])
    shape = np.array([boundary_scale(int(a), int(b), weeks, rules, question)
                      for a, b in zip(starts, ends, strict=True)])
    return (z / shape).max(axis=1)


def _rounded(noise: Noise) -> tuple[float, ...]:
    """The noise parameters on a fine grid (so that nearly equal fits share one calibration)."""
    def grid(value: float, step: float) -> float:
        return round(round(value / step) * step, 6)

    return (grid(noise.kappa, 0.05), grid(math.sqrt(noise.local), 0.0025) ** 2, grid(noise.rho, 0.05),
            grid(math.sqrt(noise.quarter), 0.0025) ** 2, grid(math.sqrt(noise.season_board), 0.02) ** 2,
            grid(math.sqrt(noise.white), 0.0025) ** 2)


@lru_cache(maxsize=64)
def _calibrated(parameters: tuple[float, ...], quarters: tuple[int, ...],
                modes: tuple[tuple[float, ...], ...], rules: DriftRules) -> dict[Question, np.ndarray]:
    kappa, local, rho, quarter, season_board, white = parameters
    noise = Noise(kappa, local, rho, quarter, season_board=season_board, white=white)
    weeks = np.array(quarters)
    seasonal = np.array(modes)
    return {question: np.array([np.quantile(_null_maxima(noise, size, weeks, question, rules, seasonal),
                                            1 - rules.false_alert_rate) for size in CALIBRATION_SIZES])
            for question in Question}


def seasonal_modes(model: BaselineModel) -> np.ndarray:
    """(2 x plan-year weeks) the season's two ways of differing from the baseline year, averaged by week."""
    days = year_days(model.plan_year_start)
    return weekly_sums(model.pattern.seasonal_modes(days), complete_weeks(days)) / 7


def threshold_table(model: BaselineModel, rules: DriftRules) -> dict[Question, np.ndarray]:
    """Calibrated thresholds by weekly size (CALIBRATION_SIZES), for each question:
    the (1 - false_alert_rate) quantile of the largest window z of on-plan years simulated from the
    fitted noise model (its parameters rounded to a fine grid)."""
    days = year_days(model.plan_year_start)
    quarters = tuple(int(q) for q in quarter_of_weeks(days, complete_weeks(days)))
    modes = tuple(tuple(round(float(v), 4) for v in row) for row in seasonal_modes(model))
    return _calibrated(_rounded(model.noise), quarters, modes, rules)


def detector(model: BaselineModel, plan: BoardPlan, rules: DriftRules,
             question: Question = Question.PLAN_NUMBER) -> Detector:
    """The board's test of one question for the plan year (computed once per model).

    Both tests judge the same weeks against the same plan trajectory (which sums to the plan number). The plan
    number question counts only the plan year's own noise; the underlying-rate question also counts the noise
    of the plan's baseline quarters, whatever extract they were cut from (a counted year carries it)."""
    def compute() -> Detector:
        days = year_days(model.plan_year_start)
        span = complete_weeks(days)
        quarters = quarter_of_weeks(days, span)
        expected = weekly_sums(model.planned_days(plan).to_numpy(), span)
        baseline_variance = model.baseline_quarter_variance(plan) if question is Question.UNDERLYING_RATE else None
        shared, count = weekly_covariance(model.noise, plan.board, expected, quarters, baseline_variance,
                                          seasonal_modes(model))
        table = threshold_table(model, rules)[question]
        size = float(np.clip(expected.mean(), CALIBRATION_SIZES[0], CALIBRATION_SIZES[-1]))
        threshold = float(np.interp(np.log(size), np.log(CALIBRATION_SIZES), table))
        return Detector(expected, shared + np.diag(count), threshold, model.pattern.describe(plan.board),
                        model.noise.source, question, rules.windows)

    return model.cached(("detector", plan, rules, question), compute)


@dataclass(frozen=True)
class BoardWeeks:
    """A board's complete plan-year weeks (actual vs planned), its tests, and its SPC limits from the baseline."""

    plan: BoardPlan
    series: WeeklySeries
    baseline_limits: Limits | None
    planned_year_end: float  # the plan number (the plan file's planned emergency admissions)
    detectors: dict[Question, Detector]
    baseline_variance: np.ndarray | None = None  # weekly variance of the baseline year (the SPC fitting period)

    @property
    def detector(self) -> Detector:
        """The primary test: is the board expected to miss its plan number?"""
        return self.detectors[Question.PLAN_NUMBER]


def board_weeks(plan: BoardPlan, actual_daily: pd.Series, plan_year_start: date, as_of: date,
                model: BaselineModel | None = None, rules: DriftRules | None = None) -> BoardWeeks:
    """Compute the weekly series once; :func:`assess_week` then looks at any prefix of it.

    ``model`` is the baseline model of all boards (``monitors/rules/baseline.py``); without one, it is fitted
    from this board's series alone (its own pattern, the national default noise).
    """
    rules = rules or DriftRules()
    actual_daily = actual_daily.copy()
    actual_daily.index = pd.DatetimeIndex(actual_daily.index)
    if model is None:
        model = baseline_model({plan.board: plan}, actual_daily.to_frame(plan.board), plan_year_start)
    planned = model.planned_days(plan)
    baseline = weekly_series(actual_daily, model.expected_days(plan, model.baseline_start),
                             plan_year_start - pd.Timedelta(days=1))
    fitted = len(baseline) >= 12 and baseline.planned.min() > 0
    limits = xmr_limits(baseline.variance) if fitted else None
    return BoardWeeks(plan, weekly_series(actual_daily, planned, as_of), limits, float(plan.planned_emergency),
                      {question: detector(model, plan, rules, question) for question in Question},
                      np.asarray(baseline.variance, dtype=float) if fitted else None)


def assess_week(board: BoardWeeks, count: int, rules: DriftRules = DriftRules(),
                question: Question = Question.PLAN_NUMBER) -> Assessment:
    """The assessment of one question after the first ``count`` complete plan-year weeks."""
    return assess_questions(board, count, rules, (question,))[0]


def assess_questions(board: BoardWeeks, count: int, rules: DriftRules = DriftRules(),
                     questions: tuple[Question, ...] = tuple(Question)) -> list[Assessment]:
    """The assessments of ``questions`` after the first ``count`` complete plan-year weeks (the figures and
    the SPC chart are shared; the test, its z and its verdict are each question's own)."""
    series = board.series.head(count)
    as_of = series.week_ending(count) if count else None
    actual_ytd = float(series.actual.sum())
    planned_ytd = float(series.planned.sum())
    variance = actual_ytd / planned_ytd - 1 if planned_ytd else 0.0
    judged = count >= max(rules.min_weeks, 2) and planned_ytd > 0
    spc = _spc(board, series, count) if judged else {}
    assessments = []
    for question in questions:
        test = board.detectors[question]
        z = test.z(series.actual - series.planned, 0, count) if count else 0.0
        ytd_sd_pct = 100 * math.sqrt(max(test.window_variance(0, count), 0.0)) / planned_ytd if planned_ytd else 0.0
        projection = _projection(board, test, count, planned_ytd, variance, rules)
        result: dict[str, Any] = dict(
            board=board.plan.board, metric=METRIC, as_of=as_of, weeks=count, question=question,
            actual_ytd=actual_ytd, planned_ytd=planned_ytd, variance_pct=variance * 100, z=z, ytd_sd_pct=ytd_sd_pct,
            planned_year_end=board.planned_year_end, baseline_year=float(board.plan.baseline_emergency),
            threshold=test.boundary(0, max(count, 1), rules), expected_pattern=test.expected_pattern,
            noise_source=test.noise_source, dispersion=test.dispersion, series=series, **projection)
        if judged:
            result |= scan(board.series, test, count, rules) | spc
        assessments.append(Assessment(**result))
    return assessments


def _projection(board: BoardWeeks, test: Detector, count: int, planned_ytd: float, variance: float,
                rules: DriftRules) -> dict[str, float]:
    """The year end if the year to date's rate holds, its 90% interval (the unseen weeks' own noise and the
    uncertainty of the rate), and the money at risk: the projected excess over the plan number, priced."""
    projected = board.planned_year_end * (1 + variance)
    remaining = board.planned_year_end - planned_ytd
    ytd_variance = test.window_variance(0, count) if count else 0.0
    spread = math.sqrt(max(test.window_variance(count, len(test.expected)), 0.0) * (1 + variance) ** 2
                       + (remaining / planned_ytd) ** 2 * ytd_variance) if planned_ytd else 0.0
    return dict(projected_year_end=projected,
                money_at_risk_gbp=max(0.0, projected - board.planned_year_end) * rules.unit_cost_gbp,
                projected_year_end_low=projected - PROJECTION_Z * spread,
                projected_year_end_high=projected + PROJECTION_Z * spread)


def _spc(board: BoardWeeks, series: WeeklySeries, count: int) -> dict[str, Any]:
    """The SPC fields of the week: information in every assessment, never a trigger."""
    weekly_variance = np.asarray(series.variance, dtype=float)
    if board.baseline_variance is not None:
        # As NHSRplotthedots with fix_after_n_points: limits from the baseline year's weeks, every rule run over
        # the baseline and the plan year together; the plan year is the tail of the chart.
        history = len(board.baseline_variance)
        chart = xmr_chart(np.concatenate([board.baseline_variance, weekly_variance]), improvement="decrease",
                          fix_after_n_points=history, target=0.0)
        latest = history + count - 1
        assured = chart.assurance
        assert assured is not None  # the chart has a target and an improvement direction
        return dict(variation=chart.variation(latest), rules_fired=chart.rules_fired(latest), assurance=assured,
                    limits=chart.limits_at(latest), special_cause_high=chart.high[history:],
                    special_cause_low=chart.low[history:])
    spc = special_causes(weekly_variance, None)
    latest = count - 1
    return dict(variation=spc.variation(latest), rules_fired=spc.rules_fired(latest),
                assurance=assurance(xmr_limits(weekly_variance), 0.0), limits=spc.limits,
                special_cause_high=spc.high, special_cause_low=spc.low)


def scan(series: WeeklySeries, test: Detector, count: int, rules: DriftRules) -> dict[str, Any]:
    """The year to date and the latest windows after ``count`` weeks: the verdict and the window that decided
    it (``projection_miss``, ``recent_drift``, ``window_weeks``, ``window_z``, ``window_variance_pct``)."""
    best: tuple[bool, float, float, int, float, float] | None = None  # the most telling window:
    # (drifting, z over its boundary, z, length, relative excess, boundary)
    projection_miss = recent = False
    residual = series.actual[:count] - series.planned[:count]
    for length in (count, *[w for w in rules.windows if w < count]):
        start = count - length
        actual = float(series.actual[start:count].sum())
        planned = float(series.planned[start:count].sum())
        window_z = test.z(residual, start, count)
        excess = actual / planned - 1
        needed = test.boundary(start, count, rules)
        drifting = window_z >= needed and excess >= rules.projection_margin
        if drifting:
            projection_miss |= length == count
            recent |= length != count
        candidate = (drifting, window_z / needed, window_z, length, excess, needed)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    assert best is not None  # the year to date is always a window
    _, _, window_z, length, excess, needed = best
    return dict(projection_miss=projection_miss, recent_drift=recent and not projection_miss,
                window_weeks=length, window_z=window_z, window_variance_pct=excess * 100, threshold=needed)


def first_drifting_week(board: BoardWeeks, rules: DriftRules = DriftRules(),
                        question: Question = Question.PLAN_NUMBER) -> tuple[int, Severity] | None:
    """The first week (1-based count) the board drifts on ``question`` and its severity: the week the alert
    book raises. The verdict alone, without the SPC charts (the benchmark's fast path; the same :func:`scan`)."""
    for count in range(max(rules.min_weeks, 2), len(board.series) + 1):
        if board.series.planned[:count].sum() <= 0:
            continue
        verdict = scan(board.series, board.detectors[question], count, rules)
        if verdict["projection_miss"] or verdict["recent_drift"]:
            return count, Severity.CRITICAL if verdict["projection_miss"] else Severity.WARNING
    return None


def assess(plan: BoardPlan, actual_daily: pd.Series, plan_year_start: date, as_of: date,
           rules: DriftRules = DriftRules(), model: BaselineModel | None = None) -> Assessment:
    """Assess one board's emergency admissions up to ``as_of`` (daily actuals indexed by date)."""
    board = board_weeks(plan, actual_daily, plan_year_start, as_of, model, rules)
    return assess_week(board, len(board.series), rules)
