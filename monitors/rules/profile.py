"""The expected daily pattern of emergency admissions, learned from the baseline year's own counts.

A plan gives quarterly baselines; within a quarter the plan year's expected
admissions follow the *observed* pattern of the baseline year:

* **Day type**: Monday ... Sunday, and England's bank holidays (the ``holidays``
  package, subdivision ENG) as an eighth type when they fall on a weekday
  (a holiday on a weekend, and its substitute day's weekend twin, stay weekend
  days; substitute weekdays such as 28 December 2015 count as holidays). Bank
  holidays and Easter move between years, so the pattern is aligned by day type,
  never by calendar date.
* **Season**: two annual harmonics of the day of the year (a smooth winter peak
  and its asymmetry), the same for every board.

The national pattern is a Poisson log-linear fit to every board's baseline-year
days summed. Each board's own day-type effects are then estimated against it
and shrunk towards it by empirical Bayes: the weight is the between-board
variance of the effect over that variance plus the board's sampling variance,
so a big board whose weekends really differ keeps its own shape and a small
board (or a country where every board has the same shape) uses the national one.

When there are no baseline-year counts (a monitor started inside the plan
year), :func:`default_pattern` is the documented national fallback
(``bcfwatch/core/national.py``): weekdays 1, weekends 0.82 (DESIGN.md: 14-22%
lower), weekday bank holidays 0.73 (25-30% below an ordinary weekday), a cosine
winter peak of +/-5% centred on mid-January; the assessment then says
``expected_pattern = "national default"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bcfwatch.core.calendar import DAY_TYPES, DAYS_PER_YEAR, day_types
from bcfwatch.core.national import DAY_TYPE_FACTORS, SEASONAL_AMPLITUDE, annual_phase, seasonality

_DEFAULT_DAY_FACTORS = np.array(DAY_TYPE_FACTORS)  # the national default, per day type
HARMONICS = 2

PATTERN_BOARD = "baseline year (board's own shape)"
PATTERN_NATIONAL = "baseline year (national shape)"
PATTERN_DEFAULT = "national default"


def season_features(days: pd.DatetimeIndex) -> np.ndarray:
    """(days x 2*HARMONICS) cosines and sines of the day of the year (aligned by season, not date)."""
    phase = annual_phase(days, 1)  # 0 on 1 January
    return np.column_stack([f(k * phase) for k in range(1, HARMONICS + 1) for f in (np.cos, np.sin)])


def default_pattern(days: pd.DatetimeIndex) -> np.ndarray:
    """The national fallback pattern (relative daily volume), used only without baseline-year counts."""
    return _DEFAULT_DAY_FACTORS[day_types(days)] * seasonality(days)


def _design(days: pd.DatetimeIndex) -> np.ndarray:
    return np.column_stack([np.eye(len(DAY_TYPES))[day_types(days)], season_features(days)])


def _poisson_fit(design: np.ndarray, counts: np.ndarray, iterations: int = 25) -> np.ndarray:
    """Poisson log-linear regression by iteratively reweighted least squares."""
    mean = np.maximum(counts, 0.5)
    eta = np.log(mean)
    beta = np.zeros(design.shape[1])
    for _ in range(iterations):
        working = eta + (counts - mean) / mean
        weighted = design * mean[:, None]
        new = np.linalg.lstsq(design.T @ weighted, weighted.T @ working, rcond=None)[0]
        eta = np.clip(design @ new, -50, 50)
        mean = np.exp(eta)
        if np.max(np.abs(new - beta)) < 1e-10:
            beta = new
            break
        beta = new
    return beta


@dataclass(frozen=True)
class Pattern:
    """Relative daily volume for any board and day: national day-type and season, board day-type effects."""

    source: str  # PATTERN_NATIONAL or PATTERN_DEFAULT (board-level detail in ``board_weight``)
    day_effects: np.ndarray = field(default_factory=lambda: np.log(_DEFAULT_DAY_FACTORS))  # log, per day type
    season: np.ndarray | None = None  # coefficients of season_features; None = the default cosine
    board_effects: dict[str, np.ndarray] = field(default_factory=dict)  # log adjustments per day type
    board_weight: dict[str, float] = field(default_factory=dict)  # largest weight on the board's own day effects

    def relative(self, board: str, days: pd.DatetimeIndex) -> np.ndarray:
        if self.season is None:
            return default_pattern(days)
        types = day_types(days)
        effects = self.day_effects + self.board_effects.get(board, 0.0)
        return np.exp(effects[types] + season_features(days) @ self.season)

    def seasonal_modes(self, days: pd.DatetimeIndex) -> np.ndarray:
        """(2 x days) how each day's log volume moves if the winter swing is 1 (relative) stronger, and if its
        peak comes one day later: the two ways a year's season differs from the baseline year's."""
        if self.season is None:
            seasonal = seasonality(days)
            curve = np.log(seasonal)
            slope = -SEASONAL_AMPLITUDE * np.sin(annual_phase(days)) * 2 * np.pi / DAYS_PER_YEAR / seasonal
        else:
            features = season_features(days)
            curve = features @ self.season
            phase = annual_phase(days, 1)
            derivative = np.column_stack([f(k * phase) * k for k in range(1, HARMONICS + 1)
                                          for f in (lambda x: -np.sin(x), np.cos)])
            slope = derivative @ self.season * 2 * np.pi / DAYS_PER_YEAR
        return np.vstack([curve - curve.mean(), -slope])

    def describe(self, board: str) -> str:
        """How this board's expected pattern was obtained (an alert field)."""
        if self.season is None:
            return PATTERN_DEFAULT
        return PATTERN_BOARD if self.board_weight.get(board, 0.0) >= 0.5 else PATTERN_NATIONAL

    def day_factors(self, board: str) -> dict[str, float]:
        """Day-type factors relative to an ordinary Wednesday (for documentation and reports)."""
        effects = self.day_effects + self.board_effects.get(board, 0.0)
        return {name: float(np.exp(e - effects[2])) for name, e in zip(DAY_TYPES, effects, strict=True)}


def fit_pattern(baseline: pd.DataFrame) -> Pattern:
    """Learn the pattern from the baseline year's daily counts (days x boards, every day of the year)."""
    days = pd.DatetimeIndex(baseline.index)
    counts = baseline.to_numpy(dtype=float)
    design = _design(days)
    beta = _poisson_fit(design, counts.sum(axis=1))
    day_effects, season = beta[:len(DAY_TYPES)], beta[len(DAY_TYPES):]
    national = np.exp(design @ beta)
    share = national / national.sum()
    types = day_types(days)
    onehot = np.eye(len(DAY_TYPES))[types]  # days x types
    observed = counts.T @ onehot  # boards x types
    expected = (counts.sum(axis=0)[:, None] * share[None, :]) @ onehot
    present = expected.sum(axis=1) > 0
    log_ratio = np.log((observed + 0.5) / (expected + 0.5))
    log_ratio -= np.average(log_ratio, axis=1, weights=np.maximum(expected, 1e-9).sum(axis=0), keepdims=True) \
        if present.any() else 0.0
    inverse = 1 / np.maximum(expected, 0.5)
    # sampling variance of a log ratio ~ dispersion / expected; the dispersion of the days themselves
    # (Pearson, median board) also holds local pressure, which only makes the board weights more cautious
    daily_expected = counts.sum(axis=0)[None, :] * share[:, None]  # days x boards
    pearson = ((counts - daily_expected) ** 2 / np.maximum(daily_expected, 0.5)).mean(axis=0)
    scale = max(float(np.median(pearson[present])), 1.0) if present.any() else 1.0
    between = _between_variance(log_ratio[present], inverse[present], scale)
    weight = between[None, :] / (between[None, :] + scale * inverse)
    effects = weight * log_ratio
    codes = [str(c) for c in baseline.columns]
    return Pattern(
        PATTERN_NATIONAL, day_effects, season,
        {code: effects[i] for i, code in enumerate(codes) if present[i]},
        {code: float(weight[i].max()) for i, code in enumerate(codes) if present[i]},
    )


def _between_variance(log_ratio: np.ndarray, inverse_expected: np.ndarray, scale: float) -> np.ndarray:
    """Method of moments: between-board variance of each day-type effect, beyond sampling (scale / expected)."""
    if log_ratio.shape[0] < 3:
        return np.zeros(log_ratio.shape[1])
    return np.maximum((log_ratio ** 2 - scale * inverse_expected).mean(axis=0), 0.0)
