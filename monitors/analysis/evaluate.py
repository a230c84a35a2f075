"""`bcfwatch evaluate`: how the drift rule performs on data it was not fitted to (a benchmark, not a test).

Each simulated year is a baseline financial year and a plan year of daily
emergency admissions for all 151 boards, made in-process (no events, no
Kafka) by :func:`simulate_daily` under a :class:`NoiseSetting` whose shape and
noise differ from the trajectory's defaults: a Monday peak, weekends ~20%
lower, bank holidays ~28% below an ordinary weekday (England's list), a winter
swing that differs by year and by board, week-to-week local pressure
(autocorrelated) and overdispersed days. The plan of each year is built from
that year's own baseline counts (quarterly totals) and the sample plan's
reductions. Boards are drawn into scenarios: on plan, sustained +3% and +5%,
creeping to +8% by year end, a +8% step change at a random date between July and
January, and improving (-3%). The decision rule runs exactly as the monitor
runs it (``baseline_model``, ``board_weeks``, ``first_drifting_week``: the
week the alert book raises).

The simulator is this module's own (independent of ``producers/generate.py``);
``run_year(simulate=...)`` accepts another daily-count maker with the same
signature, e.g. one wrapping the generator's ``AdmissionsModel`` options.

The report is a tidy table (one row per setting x scenario x size band), and a
summary: false drifting alerts per on-plan board-year, concern alerts on
improving boards, step changes flagged before they began.

Beside the rule, an **ideal year-end test** (``ideal_pct``) says how much any
rule could detect: it looks once, at the year end, at the plan year's total
against the plan and knows the true spread of that total for each board (the
standard deviation over :data:`IDEAL_YEARS` on-plan years simulated with the
same setting), with the threshold at 1 false alert per 100 on-plan
board-years. A sequential rule, which must also watch every week and learn the
noise from one baseline year, can only come below it.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache

import numpy as np
import pandas as pd

from bcfwatch.core.calendar import (
    DAYS_PER_YEAR,
    england_bank_holidays,
    financial_quarter,
    financial_year_starting,
    week_numbers,
    year_days,
    year_earlier,
)
from bcfwatch.core.national import NATIONAL_EMERGENCY_ADMISSIONS, board_weights, seasonality
from bcfwatch.core.plans import BoardPlan, load_plan
from monitors.rules.baseline import baseline_model
from monitors.rules.drift import DriftRules, board_weeks, first_drifting_week
from producers.sample_plan import sample_plan_path

IDEAL_YEARS = 60  # on-plan years simulated per setting for the ideal test's spread
IDEAL_Z = 2.326  # one-sided 1% (1 false alert per 100 on-plan board-years)
SIZE_BANDS = ((0, 20_000, "<20k"), (20_000, 50_000, "20-50k"), (50_000, np.inf, ">50k"))
SCENARIOS = ("on plan", "+3% sustained", "+5% sustained", "creep to +8%", "step +8%", "improving -3%")
SCENARIO_SHARES = {"+3% sustained": 22, "+5% sustained": 22, "creep to +8%": 14, "step +8%": 14,
                   "improving -3%": 14}  # boards per year; the rest are on plan


@dataclass(frozen=True)
class NoiseSetting:
    """How a simulated year's admissions are made (all relative factors).

    The shape differs from the national default (``bcfwatch/core/national.py``: flat weekdays, weekends
    0.82, bank holidays 0.73, a fixed 5% winter peak on 15 January) on purpose: the rule is judged on data
    it was not fitted to. These are the scenario's parameters, not national constants.
    """

    name: str
    weekday: tuple[float, ...] = (1.07, 1.01, 0.99, 0.98, 1.0, 0.81, 0.79)  # Monday..Sunday (a Monday peak)
    bank_holiday: float = 0.72  # of an ordinary weekday (~28% lower; national default 0.73)
    winter_national: tuple[float, float] = (0.03, 0.07)  # amplitude drawn each year from this range
    winter_board_sd: float = 0.015  # each board-year's amplitude around the national one
    winter_peak_day: float = 10.0  # day of the year the winter peak is drawn around (10 January)
    winter_peak_sd_days: float = 10.0  # peak day around winter_peak_day, drawn each year
    local_sd: float = 0.025  # week-to-week local pressure
    local_rho: float = 0.6
    daily_shape: float = 200.0  # gamma shape of daily overdispersion (variance = m + m^2 / shape)


SETTINGS = (
    NoiseSetting("mild", local_sd=0.012, local_rho=0.3, winter_board_sd=0.008, daily_shape=800.0,
                 winter_national=(0.04, 0.06)),
    NoiseSetting("typical"),
    NoiseSetting("harsh", local_sd=0.04, local_rho=0.7, winter_board_sd=0.025, daily_shape=100.0,
                 winter_national=(0.03, 0.07), weekday=(1.1, 1.02, 0.98, 0.97, 0.99, 0.78, 0.76)),
)
# Held-out shapes (``bcfwatch evaluate --setting slow`` etc.): no rule change is judged only on the three above.
HELD_OUT_SETTINGS = (
    NoiseSetting("slow", local_sd=0.02, local_rho=0.9, winter_board_sd=0.01, daily_shape=400.0),  # long pressure
    NoiseSetting("nb-days", local_sd=0.01, local_rho=0.3, winter_board_sd=0.0, daily_shape=50.0,
                 weekday=(1.0, 1.0, 1.0, 1.0, 1.0, 0.85, 0.85)),  # strongly overdispersed days, flat weekdays
    NoiseSetting("big-winter", winter_national=(0.08, 0.14), winter_board_sd=0.03, winter_peak_sd_days=20.0,
                 local_sd=0.015, local_rho=0.5),  # beyond DESIGN.md's 3-7% swing
)


def simulated_plan_year(year: int) -> date:
    """The plan year of simulated year ``year``: 2015-16, 2016-17 or 2017-18 in turn, so Easter and the bank
    holidays fall differently from one year to the next."""
    return financial_year_starting(2015 + year % 3)


def simulate_daily(setting: NoiseSetting, baseline_start: date, factors: np.ndarray, rng: np.random.Generator,
                   volumes: np.ndarray) -> pd.DataFrame:
    """(days x boards) emergency admissions over the baseline and plan years; ``factors`` (boards x plan-year
    days) multiplies the plan year (planned reduction x drift)."""
    days = year_days(baseline_start, 2)
    boards = len(volumes)
    weekday = np.array(setting.weekday)[np.asarray(days.day_of_week)]
    weekday = np.where(england_bank_holidays(days), setting.bank_holiday * np.mean(setting.weekday[:5]), weekday)
    weekday = weekday / weekday.mean()
    plan_start = len(days) - factors.shape[1]
    season = np.ones((boards, len(days)))
    for first, last in ((0, plan_start), (plan_start, len(days))):
        amplitude = rng.uniform(*setting.winter_national) + rng.normal(0, setting.winter_board_sd, boards)
        peak = setting.winter_peak_day + rng.normal(0, setting.winter_peak_sd_days)
        season[:, first:last] = seasonality(days[first:last], amplitude[:, None], peak)
    weeks = week_numbers(days)
    local = np.zeros((boards, weeks[-1] + 1))
    local[:, 0] = rng.normal(0, setting.local_sd, boards)
    innovation = setting.local_sd * np.sqrt(1 - setting.local_rho ** 2)
    for w in range(1, local.shape[1]):
        local[:, w] = setting.local_rho * local[:, w - 1] + rng.normal(0, innovation, boards)
    pressure = np.exp(local - setting.local_sd ** 2 / 2)[:, weeks]
    plan = np.ones((boards, len(days)))
    plan[:, plan_start:] = factors
    mean = volumes[:, None] / DAYS_PER_YEAR * weekday[None, :] * season * pressure * plan
    mean = mean * rng.gamma(setting.daily_shape, 1 / setting.daily_shape, size=mean.shape)
    return pd.DataFrame(rng.poisson(mean).T, index=days)


def _drift_factors(scenario: str, days: pd.DatetimeIndex, rng: np.random.Generator) -> tuple[np.ndarray, date | None]:
    progress = np.arange(len(days)) / len(days)
    if scenario == "+3% sustained":
        return np.full(len(days), 1.03), None
    if scenario == "+5% sustained":
        return np.full(len(days), 1.05), None
    if scenario == "creep to +8%":
        return 1 + 0.08 * progress, None
    if scenario == "step +8%":
        start = days[0] + pd.Timedelta(days=int(rng.integers(91, 276)))  # July to early January
        return np.where(days >= start, 1.08, 1.0), start.date()
    if scenario == "improving -3%":
        return np.full(len(days), 0.97), None
    return np.ones(len(days)), None


def _plans_from_counts(template: dict[str, BoardPlan], codes: list[str],
                       baseline: pd.DataFrame) -> dict[str, BoardPlan]:
    """The sample plan with each board's quarterly baselines replaced by the simulated baseline year's counts."""
    quarters = financial_quarter(pd.DatetimeIndex(baseline.index))
    totals = np.array([np.bincount(quarters, weights=baseline[c].to_numpy(), minlength=4) for c in codes])
    return {code: replace(template[code], baseline_emergency_by_quarter=tuple(int(v) for v in totals[i]))
            for i, code in enumerate(codes)}


@dataclass
class Outcome:
    setting: str
    year: int
    board: str
    size: float
    scenario: str
    first_week_end: date | None  # the week the first drifting alert is raised
    severity: str | None
    step_start: date | None
    detected_after_step: date | None
    ideal_z: float = 0.0  # the plan year's total over plan, in the board's true spreads (the ideal test's z)

    @property
    def ideal_detected(self) -> bool:
        """The ideal year-end test flags this board-year."""
        return self.ideal_z > IDEAL_Z


def _year_rng(setting: NoiseSetting, seed: int, year: int) -> np.random.Generator:
    """The generator of one simulated year: the same in every process (crc32, not Python's salted hash)."""
    return np.random.default_rng([seed, year, zlib.crc32(setting.name.encode()) % 1000])


def run_year(setting: NoiseSetting, year: int, seed: int, rules: DriftRules,
             simulate: Callable | None = None) -> list[Outcome]:
    """One simulated national year: baseline year + plan year, scenarios drawn, the rule run on every board."""
    rng = _year_rng(setting, seed, year)
    template = load_plan(sample_plan_path())
    codes, share = board_weights()
    volumes = NATIONAL_EMERGENCY_ADMISSIONS * share
    plan_year = simulated_plan_year(year)
    baseline_start = year_earlier(plan_year)
    plan_days = year_days(plan_year)
    scenario = np.array(["on plan"] * len(codes), dtype=object)
    order = rng.permutation(len(codes))
    cursor = 0
    for name, count in SCENARIO_SHARES.items():
        scenario[order[cursor:cursor + count]] = name
        cursor += count
    factors, steps = np.ones((len(codes), len(plan_days))), {}
    for i, code in enumerate(codes):
        drift, start = _drift_factors(scenario[i], plan_days, rng)
        factors[i] = (1 - template[code].planned_reduction) * drift
        steps[code] = start
    daily = (simulate or simulate_daily)(setting, baseline_start, factors, rng, volumes)
    daily.columns = codes
    plans = _plans_from_counts(template, codes, daily.loc[:pd.Timestamp(plan_year) - pd.Timedelta(days=1)])
    model = baseline_model(plans, daily, plan_year)
    planned_totals = np.array([sum(plans[c].baseline_emergency_by_quarter) * (1 - plans[c].planned_reduction)
                               for c in codes])
    year_end_excess = daily.loc[pd.Timestamp(plan_year):].sum().to_numpy() / planned_totals - 1
    ideal_z = year_end_excess / ideal_spread(setting, seed, simulate)
    outcomes = []
    for i, code in enumerate(codes):
        weeks = board_weeks(plans[code], daily[code], plan_year, plan_days[-1].date(), model, rules)
        first = first_drifting_week(weeks, rules)
        first_end = weeks.series.week_ending(first[0]) if first else None
        after = None
        step = steps[code]
        if step is not None:
            after = _first_drifting_after(weeks, rules, step)
        outcomes.append(Outcome(setting.name, year, code, float(volumes[i]), scenario[i], first_end,
                                first[1] if first else None, steps[code], after, float(ideal_z[i])))
    return outcomes


@lru_cache(maxsize=16)
def ideal_spread(setting: NoiseSetting, seed: int, simulate: Callable | None = None) -> np.ndarray:
    """Each board's standard deviation of the plan year's total over its plan (relative), on plan, with the
    plan built from the counted baseline year: :data:`IDEAL_YEARS` simulated years of this setting."""
    _, share = board_weights()
    volumes = NATIONAL_EMERGENCY_ADMISSIONS * share
    excess = []
    for year in range(IDEAL_YEARS):
        rng = _year_rng(setting, seed, 10_000 + year)
        plan_year = simulated_plan_year(year)
        plan_days = len(year_days(plan_year))
        daily = (simulate or simulate_daily)(setting, year_earlier(plan_year), np.ones((len(volumes), plan_days)),
                                             rng, volumes).to_numpy()
        excess.append(daily[-plan_days:].sum(axis=0) / daily[:-plan_days].sum(axis=0) - 1)
    return np.std(excess, axis=0)


def _first_drifting_after(weeks, rules: DriftRules, start: date) -> date | None:
    """The end of the first week ending on or after ``start`` in which the board drifts."""
    from monitors.rules.drift import scan

    for count in range(max(rules.min_weeks, 2), len(weeks.series) + 1):
        if weeks.series.week_ending(count) < start:
            continue
        verdict = scan(weeks.series, weeks.detector, count, rules)
        if verdict["projection_miss"] or verdict["recent_drift"]:
            return weeks.series.week_ending(count)
    return None


def size_band(volume: float) -> str:
    return next(label for low, high, label in SIZE_BANDS if low <= volume < high)


def _frame(outcomes: list[Outcome]) -> pd.DataFrame:
    frame = pd.DataFrame([o.__dict__ for o in outcomes])
    frame["ideal_detected"] = [o.ideal_detected for o in outcomes]
    return frame


def tidy_table(outcomes: list[Outcome]) -> pd.DataFrame:
    """One row per setting x scenario x size band: board-years, share alerted, median weeks to detect."""
    frame = _frame(outcomes)
    frame["band"] = frame["size"].map(size_band)
    frame["alerted"] = frame["first_week_end"].notna()
    plan_start = frame["year"].map(simulated_plan_year)
    frame["weeks_to_detect"] = [
        ((after if step is not None else first) - (step if step is not None else start)).days / 7
        if (after if step is not None else first) is not None else np.nan
        for first, after, step, start in zip(frame["first_week_end"], frame["detected_after_step"],
                                             frame["step_start"], plan_start, strict=True)]
    frame["early"] = [first is not None and step is not None and first < step
                      for first, step in zip(frame["first_week_end"], frame["step_start"], strict=True)]
    frame["detected"] = np.where(frame["step_start"].notna(), frame["detected_after_step"].notna(), frame["alerted"])
    rows = []
    for (setting, scenario, band), group in frame.groupby(["setting", "scenario", "band"], sort=False):
        rows.append({"setting": setting, "scenario": scenario, "size": band, "board_years": len(group),
                     "alerted_pct": 100 * group["alerted"].mean(),
                     "detected_pct": 100 * group["detected"].mean() if scenario not in ("on plan", "improving -3%")
                     else np.nan,
                     "median_weeks_to_detect": group["weeks_to_detect"].median()
                     if scenario not in ("on plan", "improving -3%") else np.nan,
                     "alerted_before_step": int(group["early"].sum()) if scenario == "step +8%" else np.nan,
                     "ideal_pct": 100 * group["ideal_detected"].mean() if scenario != "improving -3%" else np.nan})
    table = pd.DataFrame(rows)
    table["scenario"] = pd.Categorical(table["scenario"], SCENARIOS, ordered=True)
    table["size"] = pd.Categorical(table["size"], [label for *_, label in SIZE_BANDS], ordered=True)
    return table.sort_values(["setting", "scenario", "size"], kind="stable").reset_index(drop=True)


def summary(outcomes: list[Outcome]) -> dict[str, float]:
    frame = _frame(outcomes)
    on_plan = frame[frame["scenario"] == "on plan"]
    improving = frame[frame["scenario"] == "improving -3%"]
    sustained = frame[frame["scenario"].isin(["+3% sustained", "+5% sustained"]) & (frame["size"] >= 20_000)]
    plus3 = sustained[sustained["scenario"] == "+3% sustained"]
    steps = frame[frame["scenario"] == "step +8%"]
    early = sum(1 for f, s in zip(steps["first_week_end"], steps["step_start"], strict=True) if f is not None and f < s)
    return {
        "on-plan board-years": len(on_plan),
        "false drifting alerts per 100 on-plan board-years": 100 * on_plan["first_week_end"].notna().mean(),
        "concern alerts on improving boards": int(improving["first_week_end"].notna().sum()),
        "sustained >= +3% detected, boards >= 20k (%)": 100 * sustained["first_week_end"].notna().mean(),
        "sustained +3% detected, boards >= 20k (%)": 100 * plus3["first_week_end"].notna().mean(),
        "ideal year-end test: sustained >= +3% detected, boards >= 20k (%)": 100 * sustained["ideal_detected"].mean(),
        "ideal year-end test: false alerts per 100 on-plan board-years": 100 * on_plan["ideal_detected"].mean(),
        "step changes alerted before they began": early,
        "step changes (board-years)": len(steps),
    }


def evaluate(years: int = 8, seed: int = 1, settings: tuple[NoiseSetting, ...] = SETTINGS,
             rules: DriftRules | None = None, progress: Callable[[str], None] | None = None) -> list[Outcome]:
    rules = rules or DriftRules()
    outcomes: list[Outcome] = []
    for setting in settings:
        for year in range(years):
            started = time.monotonic()
            outcomes += run_year(setting, year, seed, rules)
            if progress is not None:
                progress(f"{setting.name} year {year + 1}/{years} ({time.monotonic() - started:.1f} s)")
    return outcomes


def markdown(table: pd.DataFrame) -> str:
    """The tidy table as GitHub markdown (for docs/evaluation.md)."""
    shown = table.copy()
    for column in ("alerted_pct", "detected_pct", "ideal_pct"):
        shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    shown["median_weeks_to_detect"] = shown["median_weeks_to_detect"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    shown["alerted_before_step"] = shown["alerted_before_step"].map(lambda v: "" if pd.isna(v) else f"{v:.0f}")
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "|".join("---" for _ in shown.columns) + "|"
    lines = ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join([header, rule, *lines])
