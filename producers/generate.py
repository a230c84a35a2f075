"""Synthetic national event log, vectorised with numpy/pandas.

Volumes are proportional to each board's population (weighted towards people
aged 65+) and calibrated to the national figures in DESIGN.md at scale 1.0:
~5.5M emergency admissions a year, weekends ~18% lower, a winter peak of ~5%,
~1.7M delayed days a year split NHS / social care / both as in September 2015,
~659 permanent care-home admissions per 100,000 aged 65+ and ~82% of people 65+
discharged into reablement still at home 91 days later.

The first financial year in the range is the baseline; later years follow each
board's plan (baseline x (1 - planned reduction)) unless a drift is given.
Reproducible: the same arguments and seed give the same file, byte for byte.

Real admissions are not shaped like that (DESIGN.md, "Real data is not the
generator"), and drift rules must be judged on data they were not fitted to, so
the shape and noise of emergency admissions are an ``AdmissionsModel``: weekday
profile, winter peak (optionally different each winter and board), England's
bank holidays, week-to-week local pressure (lognormal, AR(1)) and
overdispersion (gamma-Poisson). Its defaults are the shape above with Poisson
noise and leave the output for a seed unchanged. ``emergency_daily_counts``
draws the daily emergency admissions per board from the same model without
building events, for evaluations that need many years quickly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bcfwatch.core.boards import BoardList, load_boards
from bcfwatch.core.calendar import (
    DAYS_PER_YEAR,
    SECONDS_PER_DAY,
    england_bank_holidays,
    next_financial_year_start,
    week_numbers,
)
from bcfwatch.core.national import (
    CARE_HOME_PER_100K_65,
    CARE_HOME_REDUCTION,
    DELAYED_DAYS_REDUCTION,
    GENERATOR_BANK_HOLIDAY_FACTOR,
    NATIONAL_DELAYED_DAYS,
    NATIONAL_EMERGENCY_ADMISSIONS,
    NATIONAL_REDUCTION,
    REABLEMENT_TARGET,
    SEASONAL_AMPLITUDE,
    WEEKDAY_FACTORS,
    WINTER_PEAK_DAY,
    board_weights,
    weekday_and_winter,
)
from bcfwatch.core.nhs_number import valid_nhs_numbers
from producers.eventlog.logformat import LOG_COLUMNS

OTHER_NON_ELECTIVE_SHARE = 0.10  # maternity + other non-elective, relative to emergency
SHARE_65_PLUS_ADMITTED = 0.42
DELAYED_SHARE = 0.032  # discharges with any delayed days
DELAYED_MEAN_DAYS = 9.0
DELAY_ATTRIBUTION = (("nhs", 0.62), ("social_care", 0.31), ("both", 0.07))
REABLEMENT_SHARE_65 = 0.12  # of 65+ discharged home
ADVERSE_DAYS = 110  # adverse events fall 1..110 days after a reablement discharge
READMISSION_SHARE_OF_ADVERSE = 0.65  # the rest are permanent care-home placements
PERMANENT_PLACEMENTS, PLACEMENTS_65_PLUS = 0.8, 0.9  # of care-home placements not after reablement
HOME_DESTINATION = 0.905  # discharges home (destination 19), as in DESTINATIONS
DIED_SHARE = 0.03  # discharges on death (79), as in DESTINATIONS
# delayed days: per discharge share x mean length, calibrated to NATIONAL_DELAYED_DAYS at scale 1.0
DELAYED_CALIBRATION = NATIONAL_DELAYED_DAYS / (NATIONAL_EMERGENCY_ADMISSIONS * (1 + OTHER_NON_ELECTIVE_SHARE)
                                               * (1 - DIED_SHARE) * DELAYED_SHARE * DELAYED_MEAN_DAYS)
EMERGENCY_METHODS = (("21", 0.70), ("22", 0.08), ("23", 0.04), ("24", 0.05), ("25", 0.02),
                     ("2A", 0.04), ("2B", 0.03), ("2C", 0.02), ("2D", 0.015), ("28", 0.005))
OTHER_METHODS = (("31", 0.55), ("32", 0.15), ("81", 0.2), ("82", 0.05), ("83", 0.05))
DESTINATIONS = (("19", 0.905), ("29", 0.01), ("51", 0.02), ("54", 0.005), ("65", 0.007), ("85", 0.01),
                ("79", 0.03), ("88", 0.005), ("98", 0.003), ("99", 0.005))
PROVIDERS = 8  # synthetic provider codes per board
CARE_HOME_SETTINGS = (("residential", 0.6), ("nursing", 0.4))
MALFORMED_KINDS = ("not_json", "bad_nhs_number", "unknown_board", "impossible_age", "impossible_date",
                   "no_timezone", "unknown_type", "wrong_type")


class GenerateError(ValueError):
    """Bad generator arguments."""


@dataclass(frozen=True)
class Drift:
    """A board that departs from plan, in the plan years only (never in the baseline year).

    ``BOARD:+N%`` is a step of +N% (or -N%) on the board's emergency admissions plan from the first day of the
    plan year; ``BOARD:+N%@YYYY-MM-DD`` the same step from that date on; ``BOARD:creep+N%`` a linear ramp from 0
    on the first day of the plan year to +N% 365 days later, held after that; ``BOARD:creep+N%@YYYY-MM-DD`` the
    same ramp starting on that date. Another plan metric is named before the change: ``BOARD:delayed_days+20%``,
    ``BOARD:care_home_admissions_65+15%``, ``BOARD:reablement-5pt`` (points of the share at home after 91 days);
    each drift moves its own metric only.
    """

    board: str
    change: float  # 0.04 for +4% (reablement: -0.05 for 5 points under the target)
    start: date | None = None
    creep: bool = False
    metric: str = "emergency_admissions"

    @classmethod
    def parse(cls, text: str) -> Drift:
        match = re.fullmatch(r"(E\d{8}):(delayed_days|care_home_admissions_65|reablement)?(creep)?"
                             r"([+-]?\d+(?:\.\d+)?)(%|pt)(?:@(\d{4}-\d{2}-\d{2}))?", text.strip())
        if not match or (match.group(5) == "pt") != (match.group(2) == "reablement"):
            raise GenerateError(
                f"--drift {text!r} is not BOARD:+N% (optionally BOARD:+N%@YYYY-MM-DD or BOARD:creep+N%), "
                "e.g. E09000012:+4%; another metric: BOARD:delayed_days+20%, BOARD:care_home_admissions_65+15%, "
                "BOARD:reablement-5pt"
            )
        board, metric, creep, change, _, start = match.groups()
        try:
            first = date.fromisoformat(start) if start else None
        except ValueError:
            raise GenerateError(f"--drift {text!r}: {start} is not a date") from None
        return cls(board, float(change) / 100, first, bool(creep), metric or "emergency_admissions")


# The defaults are the national shape the monitor's plan trajectories assume (bcfwatch/core/national.py): weekends
# 18% lower, a 5% winter peak on 15 January, bank holidays (when asked for) 27.5% below the same weekday.
NOISE_STREAM = 13  # the shape-and-noise draws come from their own stream, so the defaults draw nothing new


@dataclass(frozen=True)
class AdmissionsModel:
    """Shape and noise of daily emergency admissions (and other non-elective admissions, which follow them).

    A board's expected admissions on a day are its yearly volume / 365.25 x weekday x winter x bank holiday
    x plan (x drift) x local pressure; the count is Poisson, or gamma-Poisson when ``dispersion`` > 1.

    - ``weekday_profile``: multipliers Monday..Sunday, rescaled to average 1 over a week (so the yearly
      volume stays calibrated).
    - ``winter_peak``: seasonal amplitude, 0.05 = the peak day 5% above the yearly mean and the summer
      trough 5% below it (a cosine); ``winter_peak_day``: day of the year of the peak (15 = 15 January).
    - ``winter_varies``: standard deviation of each winter's amplitude (0.02 = 2 percentage points), half
      the variance shared by every board that winter, half each board's own; the amplitude changes
      smoothly from one winter peak to the next and is never below 0.
    - ``bank_holidays``: England's bank holidays (``holidays``, GB, subdivision ENG: the Monday-to-Friday
      days, so Easter and substitute days fall where gov.uk lists them) are ``bank_holiday_factor`` x
      the same weekday otherwise (0.725: 27.5% lower); the admissions are lost, not moved to other days.
    - ``weekly_noise``: log standard deviation of a lognormal local-pressure multiplier (mean 1) per board
      and week (Monday to Sunday), 0.03 = swings of about 3%; ``weekly_persistence``: its AR(1)
      coefficient from one week to the next (the stationary standard deviation stays ``weekly_noise``).
    - ``dispersion``: variance / mean ratio of a board's daily emergency admissions around the expected
      value (gamma-Poisson, negative binomial with variance = dispersion x mean, so weeks and months
      have the same ratio); 1 is Poisson.
    """

    weekday_profile: tuple[float, ...] = WEEKDAY_FACTORS
    winter_peak: float = SEASONAL_AMPLITUDE
    winter_peak_day: int = WINTER_PEAK_DAY
    winter_varies: float = 0.0
    bank_holidays: bool = False
    bank_holiday_factor: float = GENERATOR_BANK_HOLIDAY_FACTOR
    weekly_noise: float = 0.0
    weekly_persistence: float = 0.0
    dispersion: float = 1.0

    def __post_init__(self) -> None:
        profile = tuple(float(x) for x in self.weekday_profile)
        object.__setattr__(self, "weekday_profile", profile)
        if len(profile) != 7 or not all(math.isfinite(x) and x > 0 for x in profile):
            raise GenerateError("--weekday-profile needs seven positive multipliers, Monday to Sunday")
        if not 0 <= self.winter_peak < 1:
            raise GenerateError("--winter-peak must be at least 0% and below 100%")
        if not 1 <= self.winter_peak_day <= 366:
            raise GenerateError("the winter peak day must be a day of the year (1-366)")
        if self.winter_varies < 0:
            raise GenerateError("--winter-varies must not be negative")
        if not 0 < self.bank_holiday_factor <= 1:
            raise GenerateError("--bank-holiday-drop must be at least 0% and below 100%")
        if self.weekly_noise < 0:
            raise GenerateError("--weekly-noise must not be negative")
        if not 0 <= self.weekly_persistence < 1:
            raise GenerateError("--weekly-persistence must be at least 0 and below 1")
        if not self.dispersion >= 1:
            raise GenerateError("--dispersion is a variance/mean ratio and must be at least 1 (1 is Poisson)")


def parse_weekday_profile(text: str) -> tuple[float, ...]:
    """Seven comma-separated multipliers, Monday first: ``"1.1,1,1,1,0.97,0.8,0.78"``."""
    try:
        profile = tuple(float(part) for part in text.split(","))
    except ValueError:
        profile = ()
    if len(profile) != 7:
        raise GenerateError(f"--weekday-profile {text!r} is not seven comma-separated numbers, Monday first")
    return profile


def parse_peak_day(text: str) -> int:
    """``MM-DD`` as a day of the year (in a year without 29 February): ``"01-15"`` is 15."""
    try:
        month, day = (int(part) for part in text.split("-"))
        return date(2015, month, day).timetuple().tm_yday
    except ValueError:
        raise GenerateError(f"--winter-peak-on {text!r} is not a day of the year as MM-DD, e.g. 01-15") from None


def _winter_amplitude(model: AdmissionsModel, boards: int, days: pd.DatetimeIndex,
                      rng: np.random.Generator) -> float | np.ndarray:
    """The seasonal amplitude: the model's, or (boards x days) when each winter and board has its own."""
    if model.winter_varies == 0:
        return model.winter_peak
    years = np.arange(days[0].year - 1, days[-1].year + 2)
    peaks = pd.DatetimeIndex([pd.Timestamp(int(y), 1, 1) + pd.Timedelta(days=model.winter_peak_day - 1)
                              for y in years])
    half = model.winter_varies / math.sqrt(2)
    national = rng.normal(0.0, half, len(years))
    local = rng.normal(0.0, half, (boards, len(years)))
    amplitude = np.clip(model.winter_peak + national[None, :] + local, 0.0, 0.95)
    position = np.asarray((days - peaks[0]).days, dtype=float)
    anchors = np.asarray((peaks - peaks[0]).days, dtype=float)
    after = np.searchsorted(anchors, position, side="right")
    weight = (position - anchors[after - 1]) / (anchors[after] - anchors[after - 1])
    return amplitude[:, after - 1] * (1 - weight) + amplitude[:, after] * weight


def admissions_shape(model: AdmissionsModel, boards: int, days: pd.DatetimeIndex,
                     rng: np.random.Generator) -> np.ndarray:
    """Relative daily volume, mean ~1 over a year: (days,) or (boards x days) when winters vary by board.

    With the default model this is exactly ``bcfwatch.core.national.daily_profile``.
    """
    amplitude = _winter_amplitude(model, boards, days, rng)
    shape = weekday_and_winter(days, model.weekday_profile, amplitude, model.winter_peak_day)
    if model.bank_holidays:
        shape = shape * np.where(england_bank_holidays(days), model.bank_holiday_factor, 1.0)
    return shape


def local_pressure(model: AdmissionsModel, boards: int, days: pd.DatetimeIndex,
                   rng: np.random.Generator) -> np.ndarray:
    """(boards x days) lognormal multiplier, mean 1, constant from Monday to Sunday, AR(1) across weeks."""
    week = week_numbers(days)
    weeks = int(week[-1]) + 1
    innovations = rng.normal(0.0, model.weekly_noise, (boards, weeks))
    rho = model.weekly_persistence
    log_pressure = np.empty_like(innovations)
    log_pressure[:, 0] = innovations[:, 0]
    for w in range(1, weeks):
        log_pressure[:, w] = rho * log_pressure[:, w - 1] + math.sqrt(1 - rho * rho) * innovations[:, w]
    return np.exp(log_pressure - model.weekly_noise ** 2 / 2)[:, week]


@dataclass
class GeneratorSpec:
    """What to generate: dates, volume, seed, plan and drifts, event-log defects and the admissions model."""

    start: date
    end: date  # inclusive
    scale: float = 0.01
    seed: int = 1
    drifts: list[Drift] = field(default_factory=list)
    reductions: dict[str, float] | None = None  # plan board -> planned reduction (default: the sample plan)
    late_share: float = 0.05
    duplicate_share: float = 0.01
    malformed_share: float = 0.0
    beyond_lateness_share: float = 0.04  # of late events, delayed past the 14-day lateness
    admissions: AdmissionsModel = field(default_factory=AdmissionsModel)  # shape and noise (default: as the plans)
    targets: PlanTargets | None = None  # what the other metrics' plan years follow (default: the sample plan)


@dataclass(frozen=True)
class PlanTargets:
    """Per plan board, what the plan years of the other metrics follow: planned over baseline delayed days and
    permanent care-home admissions 65+, and the reablement target (the share at home 91 days after discharge,
    also the baseline year's share)."""

    delayed_days: dict[str, float]
    care_homes: dict[str, float]
    reablement: dict[str, float]

    def arrays(self, codes: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.array([self.delayed_days.get(c, 1 - DELAYED_DAYS_REDUCTION) for c in codes]),
                np.array([self.care_homes.get(c, 1 - CARE_HOME_REDUCTION) for c in codes]),
                np.array([self.reablement.get(c, REABLEMENT_TARGET) for c in codes]))


def _choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...], size: int) -> np.ndarray:
    labels = np.array([o for o, _ in options], dtype=object)
    weights = np.array([w for _, w in options])
    return labels[rng.choice(len(labels), size=size, p=weights / weights.sum())]


def nhs_numbers(rng: np.random.Generator, size: int) -> np.ndarray:
    """Valid NHS numbers (Modulus 11), as 10-character strings, vectorised."""
    out = np.empty(size, dtype=np.int64)
    filled = 0
    while filled < size:
        numbers = valid_nhs_numbers(rng.integers(400_000_000, 999_999_999, size=size - filled + 16))
        take = min(len(numbers), size - filled)
        out[filled:filled + take] = numbers[:take]
        filled += take
    return out.astype(str)


def sample_plan_targets() -> PlanTargets:
    from bcfwatch.core.plans import load_plan
    from producers.sample_plan import sample_plan_path

    plans = load_plan(sample_plan_path()).values()
    return PlanTargets({p.board: p.planned_delayed_days / max(p.baseline_delayed_days, 1) for p in plans},
                       {p.board: p.planned_care_home_admissions_65 / max(p.baseline_care_home_admissions_65, 1)
                        for p in plans},
                       {p.board: p.reablement_target for p in plans})


def sample_plan_reductions() -> dict[str, float]:
    from bcfwatch.core.plans import load_plan
    from producers.sample_plan import sample_plan_path

    return {code: plan.planned_reduction for code, plan in load_plan(sample_plan_path()).items()}


@dataclass(frozen=True)
class EmergencyDraw:
    """One draw of daily emergency admissions, boards x days, and what it was drawn from."""

    boards: list[str]
    days: pd.DatetimeIndex
    expected: np.ndarray  # volume x shape x plan (x drift) x local pressure: what other admissions follow
    counts: np.ndarray  # Poisson (or gamma-Poisson) counts around ``expected``

    def frame(self) -> pd.DataFrame:
        """The counts as a days x boards table."""
        return pd.DataFrame(self.counts.T, index=self.days, columns=self.boards)


def check_spec(spec: GeneratorSpec) -> None:
    """Refuse a spec the generator cannot honour (the admissions model checks itself)."""
    if spec.end < spec.start:
        raise GenerateError("--to must not be before --from")
    if spec.scale <= 0:
        raise GenerateError("--scale must be positive")


def plan_factor(spec: GeneratorSpec, boards: list[str], days: pd.DatetimeIndex) -> np.ndarray:
    """(boards x days) multiplier of emergency admissions: 1 in the baseline year, plan (x drift) after it."""
    plan_start = pd.Timestamp(next_financial_year_start(spec.start))  # the first financial year is the baseline
    after_baseline = np.asarray(days >= plan_start)
    planned = spec.reductions if spec.reductions is not None else sample_plan_reductions()
    reductions = np.array([planned.get(b, NATIONAL_REDUCTION) for b in boards])
    factor = np.where(after_baseline[None, :], (1 - reductions)[:, None], 1.0)
    return factor * drift_factor(spec, boards, days, "emergency_admissions")


def drift_factor(spec: GeneratorSpec, boards: list[str], days: pd.DatetimeIndex, metric: str,
                 additive: bool = False) -> np.ndarray:
    """(boards x days) the drifts of ``metric``: a multiplier (1 + change), or with ``additive`` the change
    itself (reablement points); neutral in the baseline year and before a drift starts."""
    plan_start = pd.Timestamp(next_financial_year_start(spec.start))
    after_baseline = np.asarray(days >= plan_start)
    factor = np.full((len(boards), len(days)), 0.0 if additive else 1.0)
    index = {b: i for i, b in enumerate(boards)}
    for drift in spec.drifts:
        if drift.board not in index:
            raise GenerateError(f"--drift names board {drift.board}, which is not a BCF plan board")
        if drift.start is not None and pd.Timestamp(drift.start) < plan_start:
            raise GenerateError(f"--drift for {drift.board} starts on {drift.start}, in the baseline year: drifts "
                                f"start in a plan year (from {plan_start.date()})")
        if drift.metric != metric:
            continue
        first = pd.Timestamp(drift.start) if drift.start else plan_start
        active = np.asarray(days >= first) & after_baseline
        if drift.creep:
            progress = np.clip(np.asarray((days - first).days) / 365.0, 0, 1)
            change = drift.change * progress
        else:
            change = np.full(len(days), drift.change)
        if additive:
            factor[index[drift.board]] += np.where(active, change, 0.0)
        else:
            factor[index[drift.board]] *= np.where(active, 1 + change, 1.0)
    return factor


def _noise_rng(spec: GeneratorSpec) -> np.random.Generator:
    """The stream for shape and noise draws, apart from the event stream so the defaults leave it untouched."""
    return np.random.default_rng([spec.seed, NOISE_STREAM])


def expected_emergency(spec: GeneratorSpec, codes: list[str], days: pd.DatetimeIndex,
                       noise: np.random.Generator | None = None) -> np.ndarray:
    """(boards x days) expected emergency admissions: volume x shape x plan (x drift) x local pressure.

    The shape's and pressure's random parts (varying winters, weekly noise) come from ``noise``, by default
    the seed's own noise stream, so the same spec gives the same expectation.
    """
    model = spec.admissions
    noise = noise if noise is not None else _noise_rng(spec)
    _, share = board_weights()
    per_board_year = NATIONAL_EMERGENCY_ADMISSIONS * spec.scale * share
    shape = admissions_shape(model, len(codes), days, noise)
    shape = shape if shape.ndim == 2 else shape[None, :]
    expected = per_board_year[:, None] / DAYS_PER_YEAR * shape * plan_factor(spec, codes, days)
    if model.weekly_noise > 0:
        expected = expected * local_pressure(model, len(codes), days, noise)
    return expected


def draw_emergency(spec: GeneratorSpec, codes: list[str], days: pd.DatetimeIndex,
                   rng: np.random.Generator) -> EmergencyDraw:
    """Daily emergency admissions per board: the generator's model, drawn once (counts from ``rng``)."""
    noise = _noise_rng(spec)
    expected = expected_emergency(spec, codes, days, noise)
    mean = expected
    if spec.admissions.dispersion > 1:
        excess = spec.admissions.dispersion - 1  # gamma mixing: variance of the mean = excess x mean
        mean = noise.gamma(expected / excess, excess)
    return EmergencyDraw(codes, days, expected, rng.poisson(mean))


def emergency_daily_counts(spec: GeneratorSpec) -> pd.DataFrame:
    """Daily emergency admissions per board (days x boards) from the same model and seed as the event log,
    without building events: the log's emergency admissions, before readmissions after reablement are added
    and before lateness, duplicates and malformed lines."""
    check_spec(spec)
    codes = load_boards().codes
    days = pd.date_range(spec.start, spec.end, freq="D")
    return draw_emergency(spec, codes, days, np.random.default_rng(spec.seed)).frame()


def _events(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(board index, day index) per event for a (boards x days) table of counts."""
    board_index, day_index = np.nonzero(counts)
    repeat = counts[board_index, day_index]
    return np.repeat(board_index, repeat), np.repeat(day_index, repeat)


def _poisson_events(rng: np.random.Generator, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw counts for a (boards x days) expectation; return (board index, day index) per event."""
    return _events(rng.poisson(expected))


def _seconds_in_day(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, SECONDS_PER_DAY, size=size)


def _quiet(_message: str) -> None:
    pass


@dataclass(frozen=True)
class _Stays:
    """Every admission (emergency ones first, then other non-elective), per admission: what its stay's later
    events (discharge, readmission or care home after reablement) are drawn from."""

    board: np.ndarray  # plan board code
    board_index: np.ndarray  # its position in the board list
    admitted: np.ndarray  # seconds from the first day
    age: np.ndarray
    patients: np.ndarray  # NHS numbers


def generate_frame(spec: GeneratorSpec, boards: BoardList | None = None,
                   progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """All events (good ones, late, duplicated and malformed as asked) in log (arrival) order.

    One random stream (``spec.seed``) is drawn from in a fixed order, step by step below, so the same spec
    gives the same log byte for byte; the admissions model's shape and noise come from a stream of their own.
    """
    check_spec(spec)
    boards = boards or load_boards()
    say = progress or _quiet
    rng = np.random.default_rng(spec.seed)
    days = pd.date_range(spec.start, spec.end, freq="D")
    say("admissions")
    stays, admissions = _admissions(spec, boards, days, rng)
    plan = _OtherMetricsPlan.of(spec, boards.codes, days)
    say("discharges")
    discharges, discharged, into_reablement = _discharges(stays, rng, plan)
    say("reablement outcomes")
    readmissions, placements_after = _after_reablement(stays, discharged, into_reablement, rng, plan)
    say("care-home placements")
    placements = _care_home_placements(spec, boards, days, rng, plan)
    say("ordering, late and duplicate events")
    events = pd.concat([admissions, discharges, readmissions, placements_after, placements], ignore_index=True)
    events = _in_arrival_order(events, spec, len(days), rng)
    events = _as_log_columns(events, origin=days[0])
    if spec.malformed_share > 0:
        events = _insert_malformed(events, spec, rng)
    return events


@dataclass(frozen=True)
class _OtherMetricsPlan:
    """(boards x days) what the other metrics follow: each board's plan in the plan years (x its drifts), its
    baseline in the baseline year. Delayed days and care homes are made independent of emergency admissions'
    plan and drifts (a drift moves its own metric only)."""

    delayed_share: np.ndarray  # chance a discharge that day has delayed days
    at_home: np.ndarray  # share of reablement discharges that day at home after 91 days
    placements: np.ndarray  # expected care-home placements not after reablement, per day

    @classmethod
    def of(cls, spec: GeneratorSpec, codes: list[str], days: pd.DatetimeIndex) -> _OtherMetricsPlan:
        targets = spec.targets if spec.targets is not None else sample_plan_targets()
        delayed, care_homes, reablement = targets.arrays(codes)
        plan_year = np.asarray(days >= pd.Timestamp(next_financial_year_start(spec.start)))[None, :]
        emergency = plan_factor(spec, codes, days)
        delayed_share = DELAYED_SHARE * DELAYED_CALIBRATION * np.where(plan_year, delayed[:, None], 1.0) \
            * drift_factor(spec, codes, days, "delayed_days") / emergency
        at_home = np.clip(reablement[:, None] + drift_factor(spec, codes, days, "reablement", additive=True),
                          0.0, 1.0)
        adverse = np.clip((1 - at_home) * ADVERSE_DAYS / 91, 0.0, 1.0)
        _, share = board_weights()
        admitted_65 = (NATIONAL_EMERGENCY_ADMISSIONS * spec.scale * share[:, None] * emergency
                       * (1 + OTHER_NON_ELECTIVE_SHARE) * SHARE_65_PLUS_ADMITTED)
        after_reablement = admitted_65 * HOME_DESTINATION * REABLEMENT_SHARE_65 * adverse \
            * (1 - READMISSION_SHARE_OF_ADVERSE)
        population_65 = np.array([b.population_65_plus for b in load_boards()], dtype=float)
        permanent_65 = (population_65 * CARE_HOME_PER_100K_65 / 1e5 * spec.scale)[:, None] \
            * np.where(plan_year, care_homes[:, None], 1.0) * drift_factor(spec, codes, days,
                                                                           "care_home_admissions_65")
        placements = np.maximum(permanent_65 - after_reablement, 0.0) / (PERMANENT_PLACEMENTS * PLACEMENTS_65_PLUS)
        return cls(np.clip(delayed_share, 0.0, 1.0), at_home, placements / DAYS_PER_YEAR)


def _day_of(seconds: np.ndarray, days: int) -> np.ndarray:
    return np.clip(seconds // SECONDS_PER_DAY, 0, days - 1).astype(np.int64)


def _admissions(spec: GeneratorSpec, boards: BoardList, days: pd.DatetimeIndex,
                rng: np.random.Generator) -> tuple[_Stays, pd.DataFrame]:
    """Emergency admissions from the admissions model, then other non-elective ones following the same
    expectation: the stays, and their admission events."""
    codes = boards.codes
    emergency = draw_emergency(spec, codes, days, rng)
    em_board, em_day = _events(emergency.counts)
    ot_board, ot_day = _poisson_events(rng, emergency.expected * OTHER_NON_ELECTIVE_SHARE)
    adm_board = np.concatenate([em_board, ot_board])
    adm_day = np.concatenate([em_day, ot_day])
    n_adm = len(adm_board)
    methods = np.concatenate([_choice(rng, EMERGENCY_METHODS, len(em_board)),
                              _choice(rng, OTHER_METHODS, len(ot_board))])
    old = rng.random(n_adm) < SHARE_65_PLUS_ADMITTED
    age = np.where(old, rng.integers(65, 101, n_adm), rng.integers(0, 65, n_adm))
    adm_seconds = adm_day * SECONDS_PER_DAY + _seconds_in_day(rng, n_adm)
    patients = nhs_numbers(rng, n_adm)
    provider = np.char.add("R", rng.integers(0, PROVIDERS, n_adm).astype(str))
    stays = _Stays(np.array(codes, dtype=object)[adm_board], adm_board, adm_seconds, age, patients)
    admissions = pd.DataFrame({
        "type": "admission", "board": stays.board, "t": adm_seconds, "nhs_number": patients,
        "age": age, "admission_method": methods, "provider": provider,
    })
    return stays, admissions


def _discharges(stays: _Stays, rng: np.random.Generator,
                plan: _OtherMetricsPlan) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One discharge per stay: the events, when each was discharged and whether into reablement."""
    n_adm = len(stays.board)
    length_of_stay = rng.geometric(1 / 5.0, n_adm) - 1
    dis_seconds = stays.admitted + length_of_stay * SECONDS_PER_DAY + rng.integers(3_600, 12 * 3_600, n_adm)
    destination = _choice(rng, DESTINATIONS, n_adm)
    died = destination == "79"
    chance = plan.delayed_share[stays.board_index, _day_of(dis_seconds, plan.delayed_share.shape[1])]
    delayed = (rng.random(n_adm) < chance) & ~died
    delayed_days = np.where(delayed, rng.geometric(1 / DELAYED_MEAN_DAYS, n_adm), 0)
    attribution = np.where(delayed, _choice(rng, DELAY_ATTRIBUTION, n_adm), np.array(None, dtype=object))
    reablement = (stays.age >= 65) & (destination == "19") & (rng.random(n_adm) < REABLEMENT_SHARE_65)
    discharges = pd.DataFrame({
        "type": "discharge", "board": stays.board, "t": dis_seconds, "nhs_number": stays.patients,
        "age": stays.age, "discharge_destination": destination, "discharge_method": np.where(died, "4", "1"),
        "delayed_days": delayed_days, "delay_attributable_to": attribution, "into_reablement": reablement,
    })
    return discharges, dis_seconds, reablement


def _after_reablement(stays: _Stays, discharged: np.ndarray, into_reablement: np.ndarray,
                      rng: np.random.Generator, plan: _OtherMetricsPlan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For some reablement patients (as many as keep the board's share at home after 91 days at its target),
    an emergency readmission or a permanent care-home placement within 1..110 days of discharge:
    (readmissions, placements)."""
    reabled = np.nonzero(into_reablement)[0]
    at_home = plan.at_home[stays.board_index[reabled], _day_of(discharged[reabled], plan.at_home.shape[1])]
    chance = np.clip((1 - at_home) * ADVERSE_DAYS / 91, 0.0, 1.0)
    adverse = reabled[rng.random(len(reabled)) < chance]
    adverse_seconds = discharged[adverse] + rng.integers(1, ADVERSE_DAYS + 1, len(adverse)) * SECONDS_PER_DAY
    is_readmission = rng.random(len(adverse)) < READMISSION_SHARE_OF_ADVERSE
    readmitted = adverse[is_readmission]
    readmissions = pd.DataFrame({
        "type": "admission", "board": stays.board[readmitted], "t": adverse_seconds[is_readmission],
        "nhs_number": stays.patients[readmitted], "age": stays.age[readmitted], "admission_method": "21",
        "provider": "R0",
    })
    care_after = adverse[~is_readmission]
    placements = pd.DataFrame({
        "type": "care_home_placement", "board": stays.board[care_after],
        "t": adverse_seconds[~is_readmission], "nhs_number": stays.patients[care_after],
        "age": stays.age[care_after], "setting": _choice(rng, CARE_HOME_SETTINGS, len(care_after)),
        "permanent": True,
    })
    return readmissions, placements


def _care_home_placements(spec: GeneratorSpec, boards: BoardList, days: pd.DatetimeIndex,
                          rng: np.random.Generator, plan: _OtherMetricsPlan) -> pd.DataFrame:
    """Care-home placements not after a reablement stay: as many as, with those after reablement, give each
    board its permanent care-home admissions 65+ (baseline: 659 per 100,000 aged 65+; then its plan)."""
    expected_homes = plan.placements
    ch_board, ch_day = _poisson_events(rng, expected_homes)
    n_ch = len(ch_board)
    permanent = rng.random(n_ch) < 0.8
    ch_age = np.where(rng.random(n_ch) < 0.9, rng.integers(65, 101, n_ch), rng.integers(18, 65, n_ch))
    seconds = ch_day * SECONDS_PER_DAY + _seconds_in_day(rng, n_ch)
    patients = nhs_numbers(rng, n_ch)
    return pd.DataFrame({
        "type": "care_home_placement", "board": np.array(boards.codes, dtype=object)[ch_board],
        "t": seconds, "nhs_number": patients, "age": ch_age,
        "setting": _choice(rng, CARE_HOME_SETTINGS, n_ch), "permanent": permanent,
    })


def _in_arrival_order(events: pd.DataFrame, spec: GeneratorSpec, day_count: int,
                      rng: np.random.Generator) -> pd.DataFrame:
    """Events of the date range with their ids and arrival times (a few hours after, late ones days or weeks
    after), some sent twice, sorted by arrival."""
    events = events[events["t"] < day_count * SECONDS_PER_DAY].reset_index(drop=True)
    n = len(events)
    events["event_id"] = f"g{spec.seed}-" + pd.Series(np.arange(n)).astype(str).str.zfill(9)
    delay = rng.integers(0, 6 * 3_600, n)
    late = rng.random(n) < spec.late_share
    beyond = late & (rng.random(n) < spec.beyond_lateness_share)
    delay = np.where(late, rng.integers(SECONDS_PER_DAY, 10 * SECONDS_PER_DAY, n), delay)
    delay = np.where(beyond, rng.integers(15 * SECONDS_PER_DAY, 40 * SECONDS_PER_DAY, n), delay)
    events["arrival"] = events["t"] + delay
    duplicates = events[rng.random(n) < spec.duplicate_share].copy()
    duplicates["arrival"] += rng.integers(1, 2 * 3_600, len(duplicates))
    events = pd.concat([events, duplicates], ignore_index=True)
    return events.sort_values(["arrival", "event_id"], kind="stable").reset_index(drop=True)


def _as_log_columns(events: pd.DataFrame, origin: pd.Timestamp) -> pd.DataFrame:
    """The log's columns, in order: ``occurred_at`` from the seconds after ``origin``, nullable integers and
    booleans, and every column an event type does not have as None."""
    stamps = np.datetime_as_string((origin.to_datetime64().astype("datetime64[s]")
                                    + events["t"].to_numpy().astype("timedelta64[s]")), unit="s")
    events["occurred_at"] = pd.Series(stamps, dtype=object) + "+00:00"
    for column in ("delayed_days",):
        events[column] = events[column].astype("Int64")
    for column in ("into_reablement", "permanent"):
        events[column] = events[column].astype("boolean")
    events["age"] = events["age"].astype("Int64")
    for column in LOG_COLUMNS:
        if column not in events:
            events[column] = None
    return events[list(LOG_COLUMNS)]


def _insert_malformed(events: pd.DataFrame, spec: GeneratorSpec, rng: np.random.Generator) -> pd.DataFrame:
    """Add malformed copies of random events (each kind in turn); the good events stay."""
    count = round(len(events) * spec.malformed_share)
    picks = rng.choice(len(events), size=count, replace=False)
    bad = events.iloc[picks].copy()
    bad["event_id"] = bad["event_id"] + "-bad"
    kinds = np.array(MALFORMED_KINDS)[np.arange(count) % len(MALFORMED_KINDS)]
    bad["malformed"] = kinds
    nhs = bad["nhs_number"].astype(str)
    last = nhs.str[-1].astype(int)
    bad.loc[kinds == "bad_nhs_number", "nhs_number"] = (nhs.str[:9] + ((last + 1) % 10).astype(str))[
        kinds == "bad_nhs_number"]
    bad.loc[kinds == "unknown_board", "board"] = "E99999999"
    bad.loc[kinds == "impossible_age", "age"] = 150
    bad.loc[kinds == "impossible_date", "occurred_at"] = "2015-02-30T10:00:00+00:00"
    bad.loc[kinds == "no_timezone", "occurred_at"] = bad.loc[kinds == "no_timezone", "occurred_at"].str[:-6]
    bad.loc[kinds == "unknown_type", "type"] = "transfer"
    bad["age"] = bad["age"].astype(object)
    bad.loc[kinds == "wrong_type", "age"] = "old"
    events = events.copy()
    events["malformed"] = None
    positions = np.sort(picks) + 0.5
    merged = pd.concat([events.assign(_pos=np.arange(len(events), dtype=float)),
                        bad.assign(_pos=positions)], ignore_index=True)
    return merged.sort_values("_pos", kind="stable").drop(columns="_pos").reset_index(drop=True)


def write_log(events: pd.DataFrame, out: Path, progress: Callable[[int], None] | None = None,
              chunk: int = 250_000) -> int:
    """Write events as JSON Lines (or CSV when ``out`` ends in .csv); returns lines written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    csv_output = out.suffix.lower() == ".csv"
    with open(out, "w", encoding="utf-8", newline="") as handle:
        for offset in range(0, len(events), chunk):
            part = events.iloc[offset:offset + chunk]
            malformed = part.pop("malformed") if "malformed" in part else None
            if csv_output:
                text = part.to_csv(index=False, header=offset == 0, lineterminator="\n")
            else:
                text = part.to_json(orient="records", lines=True)
            if malformed is not None and (malformed == "not_json").any():
                lines = text.splitlines()
                skip = 1 if csv_output and offset == 0 else 0
                for i in np.nonzero((malformed == "not_json").to_numpy())[0]:
                    lines[i + skip] = lines[i + skip][: len(lines[i + skip]) // 2]
                text = "\n".join(lines) + "\n"
            handle.write(text)
            if progress is not None:
                progress(len(part))
    return len(events)
