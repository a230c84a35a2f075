"""How noisy a board's weekly emergency admissions are, estimated from the baseline year's residuals.

Weekly admissions ``y`` against their expectation ``m`` (the baseline year's
observed pattern, anchored to the board's own annual total) are modelled as

    y = m * (1 + b * s_w + a_w + q_Q + u_w) + count noise,   Var(count noise) = kappa * m

* ``kappa``: overdispersion of the counts themselves (1 = Poisson; quasi-Poisson above 1);
* ``b * s_w``: the board's **own winter swing**, ``b`` times the season's shape ``s_w`` (variance
  ``season_board``): stronger in winter is weaker in summer, so it moves parts of a year, not its total;
* ``a_w``: **local pressure** (outbreaks, bed pressure), variance ``local`` and
  autocorrelation ``rho`` from one week to the next (AR(1));
* ``q_Q``: a quarter's level, variance ``quarter``, the same for every week of a financial quarter;
* ``u_w``: week noise with no memory (overdispersed days), variance ``white``.

All of it is estimated from pooled relative residuals ``e = y/m - 1`` of
every board's complete baseline-year weeks. Each board's swing ``b`` is its
residuals' projection on ``s_w``, taken out first; ``season_board`` is the
spread of those projections less their sampling noise. ``kappa`` and the
rest's lag-0 total come from how the residual variance falls with size
across boards, then ``local``, ``rho``, ``quarter`` and ``white`` from the
autocovariances at lags 0-13 within and across quarters (a grid over ``rho``,
non-negative least squares for the rest), each component's share of those
products computed exactly through what anchoring and the swing's projection
take out. A board's own variance factor (observed / pooled prediction) is
shrunk towards 1 by empirical Bayes, so a board keeps its own dispersion
only as far as the boards really differ.

:func:`weekly_covariance` turns the fit into the covariance of a plan year's
weekly residuals against the plan: the terms above (the swing through the
plan year's season shape, beside the stated prior on how the nation's season
differs), and, for the underlying-rate question only, the noise of the plan's
baseline quarters as a shared offset for each quarter's weeks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NOISE_BASELINE = "baseline year"
NOISE_DEFAULT = "national default"
MAX_LAG = 13
# A year's winter swing differs from the baseline year's (DESIGN.md: "a winter swing that differs by year";
# monthly swings of 3-7%): one baseline year cannot show by how much, so this is a stated prior, the
# difference between two years: the swing 33% stronger or weaker (uniform 3-7% around 5%, two years), its
# peak 14 days earlier or later (10 days a year).
SEASON_AMPLITUDE_SD = 0.33
SEASON_PEAK_SD_DAYS = 14.0
RHO_GRID = np.linspace(0.0, 0.95, 39)


@dataclass(frozen=True)
class Noise:
    kappa: float  # count overdispersion (variance / mean)
    local: float  # variance of the week-to-week local pressure (relative, squared)
    rho: float  # its autocorrelation from one week to the next
    quarter: float  # variance of a quarter's level against the national seasonal shape (relative, squared)
    source: str = NOISE_BASELINE
    board_factor: dict[str, float] = field(default_factory=dict)  # shrunk own variance / pooled prediction
    season_board: float = 0.0  # variance of a board's own winter swing strength (1 = the national swing)
    white: float = 0.0  # variance of relative week-level noise with no memory (e.g. overdispersed days)

    def factor(self, board: str) -> float:
        return self.board_factor.get(board, 1.0)

    def relative_sd(self, weekly_expected: float, board: str = "") -> float:
        """Standard deviation of one week's admissions as a share of its expectation."""
        return float(np.sqrt(self.factor(board) * (self.kappa / weekly_expected + self.local + self.quarter
                                                    + self.white)))


# Without baseline-year counts: overdispersion 1.3, local pressure 3% a week with autocorrelation 0.5,
# quarters +/-1.5% (the ranges DESIGN.md describes: "week-to-week swings of a few percent").
DEFAULT_NOISE = Noise(kappa=1.3, local=0.03 ** 2, rho=0.5, quarter=0.015 ** 2, source=NOISE_DEFAULT)


def fit_noise(actual: np.ndarray, expected: np.ndarray, quarter_of_week: np.ndarray,
              boards: list[str], season_mode: np.ndarray | None = None) -> Noise:
    """Fit from (boards x weeks) baseline-year weekly actual and expected admissions.

    ``season_mode`` (weekly, relative): how the baseline year's weeks move when the winter swing is 1
    stronger (:meth:`Pattern.seasonal_modes`). Each board's own swing strength is taken out of its residuals
    first and its spread across boards kept as ``season_board``: a swing stronger in winter is weaker in
    summer, so it moves parts of a year, not the year's total (modelled as autocorrelated local pressure it
    would, and the plan-number test would overstate the year's noise several times over in a big winter)."""
    usable = expected.min(axis=1) > 0
    if usable.sum() < 3:
        return DEFAULT_NOISE
    y, m = actual[usable].astype(float), expected[usable].astype(float)
    codes = [b for b, ok in zip(boards, usable, strict=True) if ok]
    weeks = y.shape[1]
    e = y / m - 1
    strength = np.zeros(len(e))
    mode = None
    # What the residuals keep of any noise: anchoring to the annual total takes out their mean, and taking out
    # each board's own winter swing their projection on the season's shape (both exactly allowed for below).
    projector = np.eye(weeks) - 1.0 / weeks
    if season_mode is not None and np.ptp(season_mode) > 0:
        mode = season_mode - season_mode.mean()
        strength = e @ mode / (mode @ mode)
        e = e - strength[:, None] * mode[None, :]
        projector = projector - np.outer(mode, mode) / (mode @ mode)
    inverse_mean = (1 / m).mean(axis=1)
    second = (e ** 2).mean(axis=1)
    # lag 0 across boards: second ~ kappa * inverse_mean + total (weighted: precise boards count more)
    kappa, total = 1.0, float(np.median(second))
    for _ in range(5):
        weight = 1 / (kappa * inverse_mean + total) ** 2
        design = np.column_stack([inverse_mean, np.ones_like(inverse_mean)])
        kappa, total = np.linalg.lstsq(design * np.sqrt(weight)[:, None], second * np.sqrt(weight), rcond=None)[0]
        kappa = max(float(kappa), 1.0)
        total = max(float(np.average(second - kappa * inverse_mean, weights=weight)), 0.0)
    weight = 1 / (kappa * inverse_mean + total) ** 2
    weight /= weight.sum()
    # pooled autocovariances at lags 1..MAX_LAG, split by whether both weeks are in one quarter
    within, across = np.full(MAX_LAG, np.nan), np.full(MAX_LAG, np.nan)
    for lag in range(1, min(MAX_LAG, weeks - 1) + 1):
        same = quarter_of_week[lag:] == quarter_of_week[:-lag]
        products = e[:, lag:] * e[:, :-lag]
        if same.any():
            within[lag - 1] = float(weight @ products[:, same].mean(axis=1))
        if (~same).any():
            across[lag - 1] = float(weight @ products[:, ~same].mean(axis=1))
    count_part = kappa * float(weight @ inverse_mean)
    local, rho, quarter, white = _fit_components(total, within, across, count_part, projector, quarter_of_week)
    kept = _lag_means(projector @ _components(rho, quarter_of_week, local, quarter, white) @ projector,
                      quarter_of_week)[0]
    predicted = kappa * inverse_mean + kept
    ratio = second / predicted
    persistence = (1 + rho) / (1 - rho) * (local / predicted) + (1 - local / predicted)
    sampling = 2 * persistence / max(weeks - 1, 1)
    between = max(float(np.var(ratio) - np.mean(sampling)), 0.0)
    shrink = between / (between + sampling)
    factor = 1 + shrink * (ratio - 1)
    season_board = 0.0
    if mode is not None:
        # E[strength^2] = season_board + the sampling variance of the projection under the fitted noise
        pressure = mode @ _components(rho, quarter_of_week, local, quarter, white) @ mode
        sampling_strength = (kappa * (mode ** 2 / m).sum(axis=1) + pressure) / (mode @ mode) ** 2
        season_board = max(float(np.average(strength ** 2 - sampling_strength, weights=weight)), 0.0)
    return Noise(float(kappa), local, rho, quarter, NOISE_BASELINE,
                 {code: float(max(f, 0.5)) for code, f in zip(codes, factor, strict=True)}, season_board, white)


def _components(rho: float, quarter_of_week: np.ndarray, local: float = 1.0, quarter: float = 1.0,
                white: float = 1.0) -> np.ndarray:
    """The weeks x weeks relative covariance of local pressure, quarter levels and white noise."""
    weeks = len(quarter_of_week)
    distance = np.abs(np.subtract.outer(np.arange(weeks), np.arange(weeks)))
    same = np.equal.outer(quarter_of_week, quarter_of_week)
    covariance: np.ndarray = local * rho ** distance + quarter * same + white * np.eye(weeks)
    return covariance


def _lag_means(matrix: np.ndarray, quarter_of_week: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The mean of a weeks x weeks covariance's diagonal, and of its lag 1..MAX_LAG diagonals within and
    across quarters (nan where a lag has no such pair): how it shows in pooled residual products."""
    within, across = np.full(MAX_LAG, np.nan), np.full(MAX_LAG, np.nan)
    for lag in range(1, min(MAX_LAG, len(matrix) - 1) + 1):
        same = quarter_of_week[lag:] == quarter_of_week[:-lag]
        values = np.diagonal(matrix, lag)
        if same.any():
            within[lag - 1] = float(values[same].mean())
        if (~same).any():
            across[lag - 1] = float(values[~same].mean())
    return float(np.diagonal(matrix).mean()), within, across


def _fit_components(total: float, within: np.ndarray, across: np.ndarray, count_part: float,
                    projector: np.ndarray, quarter_of_week: np.ndarray) -> tuple[float, float, float, float]:
    """Grid over rho; (local, quarter, white) by non-negative least squares on the lag-0 total and the lags.
    Each component shows in the residuals as ``projector @ C @ projector``: what anchoring to the annual total
    and taking out the board's winter swing leave of it, computed exactly (a smooth projection takes much of
    a slow local pressure with it, and the fit must not read that loss as a short memory)."""
    best = (np.inf, 0.0, 0.0, 0.0, 0.0)
    weeks = len(quarter_of_week)
    count_shape = _lag_means(projector @ projector, quarter_of_week)
    for rho in RHO_GRID:
        shapes = [_lag_means(projector @ _components(rho, quarter_of_week, *unit) @ projector, quarter_of_week)
                  for unit in ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))]
        rows, targets = [[shape[0] for shape in shapes]], [total]  # lag 0
        for lag in range(min(MAX_LAG, weeks - 1)):
            for observed, component_lags, count_lags in (
                    (within, [shape[1] for shape in shapes], count_shape[1]),
                    (across, [shape[2] for shape in shapes], count_shape[2])):
                if np.isnan(observed[lag]):
                    continue
                rows.append([values[lag] for values in component_lags])
                targets.append(observed[lag] - count_part * count_lags[lag])
        design, target = np.array(rows), np.array(targets)
        solution = _nonnegative_lstsq(design, target)
        error = float(np.sum((design @ solution - target) ** 2))
        if error < best[0]:
            best = (error, float(solution[0]), float(rho), float(solution[1]), float(solution[2]))
    _, local, rho, quarter, white = best
    return local, rho if local > 0 else 0.0, quarter, white


def _nonnegative_lstsq(design: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0: the best of the unconstrained fits on each subset of the
    columns that comes out non-negative (three columns: eight subsets)."""
    columns = design.shape[1]
    best, solution = np.inf, np.zeros(columns)
    for subset in range(1, 2 ** columns):
        chosen = [c for c in range(columns) if subset >> c & 1]
        fit = np.linalg.lstsq(design[:, chosen], target, rcond=None)[0]
        if (fit < 0).any():
            continue
        candidate = np.zeros(columns)
        candidate[chosen] = fit
        error = float(np.sum((design @ candidate - target) ** 2))
        if error < best:
            best, solution = error, candidate
    return solution


def weekly_covariance(noise: Noise, board: str, expected: np.ndarray, quarter_of_week: np.ndarray,
                      baseline_quarter_variance: np.ndarray | None = None,
                      seasonal_modes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(covariance of the plan year's weekly residuals without the count part, the count part's diagonal).

    ``baseline_quarter_variance`` (relative, per financial quarter) adds the noise of a plan baseline
    that is itself the baseline year's counts: a shared offset for every week of that quarter.
    ``seasonal_modes`` (2 x weeks, :meth:`Pattern.seasonal_modes` averaged by week) adds a season that
    differs from the baseline year's (:data:`SEASON_AMPLITUDE_SD`, :data:`SEASON_PEAK_SD_DAYS`).
    """
    f = noise.factor(board)
    lag = np.abs(np.subtract.outer(np.arange(len(expected)), np.arange(len(expected))))
    outer = np.outer(expected, expected)
    same_quarter = np.equal.outer(quarter_of_week, quarter_of_week)
    shared = f * (noise.local * noise.rho ** lag + noise.quarter * same_quarter + noise.white * (lag == 0)) * outer
    if baseline_quarter_variance is not None:
        shared = shared + baseline_quarter_variance[quarter_of_week][:, None] * same_quarter * outer
    if seasonal_modes is not None:
        # the national swing's prior difference from the baseline year's, and the board's own swing
        amplitude_sd = np.sqrt(SEASON_AMPLITUDE_SD ** 2 + noise.season_board)
        scaled = seasonal_modes * np.array([[amplitude_sd], [SEASON_PEAK_SD_DAYS]])
        shared = shared + (scaled.T @ scaled) * outer
    return shared, f * noise.kappa * expected


def quarter_sum_variance(noise: Noise, board: str, expected: np.ndarray, quarter_of_week: np.ndarray,
                         season_mode: np.ndarray | None = None) -> np.ndarray:
    """Relative variance of each quarter's total of weekly admissions with these expectations (4 values);
    ``season_mode`` (weekly) adds the board's own winter swing (``season_board``) in that year."""
    shared, count = weekly_covariance(noise, board, expected, quarter_of_week)
    if season_mode is not None:
        shared = shared + noise.season_board * np.outer(season_mode, season_mode) * np.outer(expected, expected)
    out = np.zeros(4)
    for q in range(4):
        members = quarter_of_week == q
        total = expected[members].sum()
        if total > 0:
            out[q] = (shared[np.ix_(members, members)].sum() + count[members].sum()) / total ** 2
    return out
