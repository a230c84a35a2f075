"""`bcfwatch evaluate --metric ...`: how the delayed days, care-home and reablement rules perform on simulated
years they were not fitted to (a benchmark, not a test).

Each simulated year is a baseline year and a plan year of monthly totals for all 151 boards (sized by their
population aged 65+ at the national volumes of 2015: 1.7M delayed days, 659 permanent care-home admissions per
100,000 aged 65+, 180,000 reablement discharges at 82% at home after 91 days), made here, independently of
``producers/generate.py``, under a :class:`MetricSetting`. The rule learns its noise from the simulated
baseline year across boards exactly as live (``fit_count_noise``, ``fit_reablement_dispersion``), then looks
after each plan-year month. Scenarios, each on every board:

* **on plan**: the plan year's expected total is the plan (for reablement: the share is the target);
* **drift** of a realistic size: delayed days +10%, care-home admissions +15%, reablement 5 points under target;
* **improving**: delayed days and care homes 10% under plan, reablement 3 points over target.

Settings: ``typical`` (geometric delay episodes of 9 days, month-to-month pressure of 4%, care homes 5%,
reablement cohorts 1 point) and ``heavy`` (lognormal episodes with a long tail, pressure of 8% that persists
from month to month, care homes 15%, reablement 3 points, persistent): the rule's model has none of the heavy
setting's shapes built in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bcfwatch.core.boards import load_boards
from monitors.rules.plan_metrics import (
    WEEKS,
    CountNoise,
    MetricRules,
    PlanMetric,
    ShareNoise,
    assess_count,
    assess_reablement,
    fit_count_noise,
    fit_reablement_noise,
)

NATIONAL_DELAYED_DAYS = 1_700_000
CARE_HOMES_PER_65 = 659 / 100_000
NATIONAL_REABLEMENT = 180_000
REABLEMENT_SHARE = 0.82
SEASON = np.repeat([0.97, 0.98, 0.97, 0.98, 0.97, 0.98, 1.02, 1.03, 1.06, 1.08, 1.0, 0.98], 5)[:WEEKS]  # by week
LOOK_WEEKS = (4, 8, 13, 17, 21, 26, 30, 34, 39, 43, 47, 52)  # complete weeks seen at each month's look
SCENARIOS = ("on plan", "drift", "improving")
DRIFT = {PlanMetric.DELAYED_DAYS: 0.10, PlanMetric.CARE_HOME_ADMISSIONS_65: 0.15, PlanMetric.REABLEMENT_91D: -0.05}
IMPROVING = {PlanMetric.DELAYED_DAYS: -0.10, PlanMetric.CARE_HOME_ADMISSIONS_65: -0.10,
             PlanMetric.REABLEMENT_91D: 0.03}


@dataclass(frozen=True)
class MetricSetting:
    name: str
    episode: str  # "geometric" or "lognormal"
    episode_days: float
    pressure: float  # delayed days: relative sd of a week's level
    persistence: float  # AR(1) correlation of every pressure from week to week
    care_home_pressure: float
    reablement_pressure: float  # sd of a weekly cohort's share (as a fraction)


SETTINGS = (MetricSetting("typical", "geometric", 9.0, 0.04, 0.0, 0.05, 0.01),
            MetricSetting("heavy", "lognormal", 12.0, 0.06, 0.9, 0.12, 0.025))


def _pressure(rng: np.random.Generator, shape: tuple[int, int], sd: float, rho: float) -> np.ndarray:
    """(weeks x boards) AR(1) noise with marginal sd ``sd``."""
    out = np.empty(shape)
    out[0] = rng.normal(0, sd, shape[1])
    for m in range(1, shape[0]):
        out[m] = rho * out[m - 1] + rng.normal(0, sd * np.sqrt(1 - rho ** 2), shape[1])
    return out


def _delayed_days(rng: np.random.Generator, mean: np.ndarray, setting: MetricSetting) -> np.ndarray:
    """Weekly delayed days: Poisson episodes of random length whose total has the given mean."""
    episodes = rng.poisson(np.maximum(mean, 0) / setting.episode_days)
    if setting.episode == "geometric":  # a sum of n geometric lengths is negative binomial
        extra = rng.negative_binomial(np.maximum(episodes, 1), 1 / setting.episode_days)
        return np.where(episodes > 0, episodes + extra, 0).astype(float)
    sigma = 1.0
    mu = np.log(setting.episode_days) - sigma ** 2 / 2
    totals = np.zeros(episodes.shape)
    flat = episodes.ravel()
    lengths = rng.lognormal(mu, sigma, flat.sum())
    sums = np.add.reduceat(lengths, np.r_[0, np.cumsum(flat)[:-1]]) if flat.sum() else np.zeros(len(flat))
    totals.ravel()[:] = np.where(flat > 0, sums, 0)
    return np.round(totals)


def _counts(metric: PlanMetric, rng: np.random.Generator, mean: np.ndarray, setting: MetricSetting) -> np.ndarray:
    sd = setting.pressure if metric is PlanMetric.DELAYED_DAYS else setting.care_home_pressure
    level = mean * np.exp(_pressure(rng, mean.shape, sd, setting.persistence) - sd ** 2 / 2)
    if metric is PlanMetric.DELAYED_DAYS:
        return _delayed_days(rng, level, setting)
    return rng.poisson(level).astype(float)


@dataclass
class MetricOutcome:
    metric: str
    setting: str
    scenario: str
    size: float
    alerted: bool
    month: int | None  # plan-year month (1-12) of the first drifting look (reablement: cohort month)


def _size_band(values: np.ndarray) -> np.ndarray:
    low, high = np.quantile(values, [1 / 3, 2 / 3])
    return np.where(values < low, "small", np.where(values < high, "medium", "large"))


def _first_drift(assessments: list) -> int | None:
    return next((a.months for a in assessments if a.drifting), None)


def _count_year(metric: PlanMetric, setting: MetricSetting, sizes: np.ndarray, rng: np.random.Generator,
                rules: MetricRules) -> list[MetricOutcome]:
    expected = np.outer(SEASON / SEASON.sum(), sizes)
    noise = fit_count_noise(pd.DataFrame(_counts(metric, rng, expected, setting)), metric)
    outcomes = []
    for scenario in SCENARIOS:
        factor = 1 + {"on plan": 0.0, "drift": DRIFT[metric], "improving": IMPROVING[metric]}[scenario]
        plan_year = _counts(metric, rng, expected * factor, setting)
        for b, size in enumerate(sizes):
            looks = [assess_count("", metric, float(size), plan_year[:weeks, b], month, noise, rules)
                     for month, weeks in enumerate(LOOK_WEEKS, start=1)]
            month = _first_drift(looks)
            outcomes.append(MetricOutcome(metric, setting.name, scenario, float(size), month is not None, month))
    return outcomes


def _reablement_year(setting: MetricSetting, sizes: np.ndarray, rng: np.random.Generator,
                     rules: MetricRules) -> list[MetricOutcome]:
    boards = len(sizes)
    cohort = np.outer(SEASON / SEASON.sum(), sizes)
    board_share = np.clip(rng.normal(REABLEMENT_SHARE, 0.03, boards), 0.5, 0.97)

    def year(shift: float) -> tuple[np.ndarray, np.ndarray]:
        n = rng.poisson(cohort).astype(float)
        share = np.clip(board_share + shift + _pressure(rng, n.shape, setting.reablement_pressure,
                                                        setting.persistence), 0.01, 0.99)
        return n, rng.binomial(n.astype(int), share).astype(float)

    n0, x0 = year(0.0)
    noise = fit_reablement_noise(pd.DataFrame(n0), pd.DataFrame(x0))
    outcomes = []
    for scenario in SCENARIOS:
        shift = {"on plan": 0.0, "drift": DRIFT[PlanMetric.REABLEMENT_91D],
                 "improving": IMPROVING[PlanMetric.REABLEMENT_91D]}[scenario]
        n, x = year(shift)
        for b, size in enumerate(sizes):
            looks = [assess_reablement("", float(board_share[b]), n[:weeks, b], x[:weeks, b], month, noise, rules,
                                       float(n[weeks:, b].sum())) for month, weeks in enumerate(LOOK_WEEKS, start=1)]
            month = _first_drift(looks)
            outcomes.append(MetricOutcome(PlanMetric.REABLEMENT_91D, setting.name, scenario, float(size),
                                          month is not None, month))
    return outcomes


def board_sizes(metric: PlanMetric) -> np.ndarray:
    """Each board's yearly volume of ``metric`` at scale 1.0 (reablement: discharges)."""
    population = np.array([b.population_65_plus for b in load_boards()], dtype=float)
    if metric is PlanMetric.DELAYED_DAYS:
        return NATIONAL_DELAYED_DAYS * population / population.sum()
    if metric is PlanMetric.CARE_HOME_ADMISSIONS_65:
        return CARE_HOMES_PER_65 * population
    return NATIONAL_REABLEMENT * population / population.sum()


def evaluate_metrics(metrics: tuple[PlanMetric, ...], years: int = 10, seed: int = 1,
                     settings: tuple[MetricSetting, ...] = SETTINGS, rules: MetricRules | None = None,
                     progress: Callable[[], None] | None = None) -> pd.DataFrame:
    """One row per simulated board-year and scenario: metric, setting, scenario, size, alerted, month."""
    rules = rules or MetricRules()
    outcomes: list[MetricOutcome] = []
    for metric in metrics:
        sizes = board_sizes(metric)
        for s, setting in enumerate(settings):
            for year in range(years):
                rng = np.random.default_rng([seed, list(PlanMetric).index(metric), s, year])
                if metric is PlanMetric.REABLEMENT_91D:
                    outcomes += _reablement_year(setting, sizes, rng, rules)
                else:
                    outcomes += _count_year(metric, setting, sizes, rng, rules)
                if progress:
                    progress()
    frame = pd.DataFrame([vars(o) for o in outcomes])
    frame["band"] = frame.groupby("metric")["size"].transform(lambda s: pd.Series(_size_band(s.to_numpy()),
                                                                                   index=s.index))
    return frame


def metric_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Alerted per 100 board-years and the median plan-year month of the first alert, by metric, setting,
    scenario and size band (small, medium, large: thirds of the boards by volume)."""
    rows = []
    for (metric, setting, scenario, band), group in frame.groupby(["metric", "setting", "scenario", "band"],
                                                                  sort=False):
        months = group.loc[group["alerted"], "month"]
        rows.append({"metric": metric, "setting": setting, "scenario": scenario, "size": band,
                     "board_years": len(group), "alerted_per_100": round(100 * group["alerted"].mean(), 2),
                     "median_month_alerted": float(months.median()) if len(months) else None})
    order = {"small": 0, "medium": 1, "large": 2}
    table = pd.DataFrame(rows)
    return table.sort_values(["metric", "setting", "scenario", "size"], key=lambda c: c.map(order)
                             if c.name == "size" else c).reset_index(drop=True)


def noise_fits(metric: PlanMetric, setting: MetricSetting, seed: int = 1) -> CountNoise | ShareNoise:
    """What the rule learns from one simulated baseline year (for the docs)."""
    rng = np.random.default_rng([seed, 99])
    sizes = board_sizes(metric)
    expected = np.outer(SEASON / SEASON.sum(), sizes)
    if metric is PlanMetric.REABLEMENT_91D:
        n = rng.poisson(expected).astype(float)
        share = np.clip(REABLEMENT_SHARE + _pressure(rng, n.shape, setting.reablement_pressure, setting.persistence),
                        0.01, 0.99)
        return fit_reablement_noise(pd.DataFrame(n), pd.DataFrame(rng.binomial(n.astype(int), share)))
    return fit_count_noise(pd.DataFrame(_counts(metric, rng, expected, setting)), metric)


def metric_targets(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per metric and setting: false alerts per 100 on-plan board-years (target <= 1) and whether it is
    met, alerts on improving boards, the drift's detection within the year by size and its median month."""
    rows = []
    for (metric, setting), group in frame.groupby(["metric", "setting"], sort=False):
        on_plan = group[group["scenario"] == "on plan"]
        drift = group[group["scenario"] == "drift"]
        false_rate = 100 * on_plan["alerted"].mean()
        row = {"metric": metric, "setting": setting, "drift": _drift_label(PlanMetric(metric)),
               "false_alerts_per_100": round(false_rate, 2), "target": "<= 1", "met": "yes" if false_rate <= 1
               else "no", "improving_alerted_per_100": round(100 * group.loc[group["scenario"] == "improving",
                                                                                "alerted"].mean(), 2)}
        for band in ("small", "medium", "large"):
            row[f"detected_{band}_pct"] = round(100 * drift.loc[drift["band"] == band, "alerted"].mean(), 1)
        months = drift.loc[drift["alerted"], "month"]
        row["median_month"] = float(months.median()) if len(months) else None
        rows.append(row)
    return pd.DataFrame(rows)


def _drift_label(metric: PlanMetric) -> str:
    if metric is PlanMetric.REABLEMENT_91D:
        return f"{abs(DRIFT[metric]) * 100:.0f} points under target"
    return f"+{DRIFT[metric]:.0%} over plan"
