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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from bcfwatch.boards import BoardList, load_boards
from monitors.sample_plan import NATIONAL_EMERGENCY_ADMISSIONS, NATIONAL_REDUCTION, board_weights
from monitors.trajectory import daily_profile
from producers.logformat import LOG_COLUMNS
from streams.views import financial_year_start

OTHER_NON_ELECTIVE_SHARE = 0.10  # maternity + other non-elective, relative to emergency
SHARE_65_PLUS_ADMITTED = 0.42
DELAYED_SHARE = 0.032  # discharges with any delayed days
DELAYED_MEAN_DAYS = 9.0
DELAY_ATTRIBUTION = (("nhs", 0.62), ("social_care", 0.31), ("both", 0.07))
REABLEMENT_SHARE_65 = 0.12  # of 65+ discharged home
ADVERSE_AFTER_REABLEMENT = 0.22  # readmission or care home within 1..110 days (~18% within 91)
CARE_HOME_PER_100K_65 = 659.0
EMERGENCY_METHODS = (("21", 0.70), ("22", 0.08), ("23", 0.04), ("24", 0.05), ("25", 0.02),
                     ("2A", 0.04), ("2B", 0.03), ("2C", 0.02), ("2D", 0.015), ("28", 0.005))
OTHER_METHODS = (("31", 0.55), ("32", 0.15), ("81", 0.2), ("82", 0.05), ("83", 0.05))
DESTINATIONS = (("19", 0.905), ("29", 0.01), ("51", 0.02), ("54", 0.005), ("65", 0.007), ("85", 0.01),
                ("79", 0.03), ("88", 0.005), ("98", 0.003), ("99", 0.005))
PROVIDERS = 8  # synthetic provider codes per board
MALFORMED_KINDS = ("not_json", "bad_nhs_number", "unknown_board", "impossible_age", "impossible_date",
                   "no_timezone", "unknown_type", "wrong_type")


class GenerateError(ValueError):
    """Bad generator arguments."""


@dataclass(frozen=True)
class Drift:
    """A board that departs from plan: +4% from a date, or a creep ramping up to +N% by year end."""

    board: str
    change: float  # 0.04 for +4%
    start: date | None = None
    creep: bool = False

    @classmethod
    def parse(cls, text: str) -> Drift:
        match = re.fullmatch(r"(E\d{8}):(creep)?([+-]?\d+(?:\.\d+)?)%(?:@(\d{4}-\d{2}-\d{2}))?", text.strip())
        if not match:
            raise GenerateError(
                f"--drift {text!r} is not BOARD:+N% (optionally BOARD:+N%@YYYY-MM-DD or BOARD:creep+N%), "
                "e.g. E09000012:+4%"
            )
        board, creep, change, start = match.groups()
        return cls(board, float(change) / 100, date.fromisoformat(start) if start else None, bool(creep))


@dataclass
class GeneratorSpec:
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


def _choice(rng: np.random.Generator, options: tuple[tuple[str, float], ...], size: int) -> np.ndarray:
    labels = np.array([o for o, _ in options], dtype=object)
    weights = np.array([w for _, w in options])
    return labels[rng.choice(len(labels), size=size, p=weights / weights.sum())]


def nhs_numbers(rng: np.random.Generator, size: int) -> np.ndarray:
    """Valid NHS numbers (Modulus 11), as 10-character strings, vectorised."""
    out = np.empty(size, dtype=np.int64)
    filled = 0
    weights = np.array([10, 9, 8, 7, 6, 5, 4, 3, 2])
    while filled < size:
        base = rng.integers(400_000_000, 999_999_999, size=size - filled + 16)
        digits = (base[:, None] // 10 ** np.arange(8, -1, -1)) % 10
        check = 11 - (digits @ weights) % 11
        check[check == 11] = 0
        good = check != 10
        numbers = base[good] * 10 + check[good]
        take = min(len(numbers), size - filled)
        out[filled:filled + take] = numbers[:take]
        filled += take
    return out.astype(str)


def sample_plan_reductions() -> dict[str, float]:
    from monitors.plans import load_plan, sample_plan_path

    return {code: plan.planned_reduction for code, plan in load_plan(sample_plan_path()).items()}


def plan_factor(spec: GeneratorSpec, boards: list[str], days: pd.DatetimeIndex) -> np.ndarray:
    """(boards x days) multiplier: 1 in the baseline year, plan (x drift) after it."""
    baseline_start = pd.Timestamp(financial_year_start(spec.start))
    after_baseline = np.asarray(days >= baseline_start + pd.DateOffset(years=1))
    planned = spec.reductions if spec.reductions is not None else sample_plan_reductions()
    reductions = np.array([planned.get(b, NATIONAL_REDUCTION) for b in boards])
    factor = np.where(after_baseline[None, :], (1 - reductions)[:, None], 1.0)
    index = {b: i for i, b in enumerate(boards)}
    for drift in spec.drifts:
        if drift.board not in index:
            raise GenerateError(f"--drift names board {drift.board}, which is not a BCF plan board")
        first = pd.Timestamp(drift.start) if drift.start else baseline_start + pd.DateOffset(years=1)
        active = np.asarray(days >= first) & after_baseline
        if drift.creep:
            progress = np.clip(np.asarray((days - first).days) / 365.0, 0, 1)
            change = drift.change * progress
        else:
            change = np.full(len(days), drift.change)
        factor[index[drift.board]] *= np.where(active, 1 + change, 1.0)
    return factor


def expected_emergency(spec: GeneratorSpec, codes: list[str], days: pd.DatetimeIndex) -> np.ndarray:
    """(boards x days) expected emergency admissions: population share x daily shape x plan (x drift)."""
    _, share = board_weights()
    per_board_year = NATIONAL_EMERGENCY_ADMISSIONS * spec.scale * share
    return per_board_year[:, None] / 365.25 * daily_profile(days)[None, :] * plan_factor(spec, codes, days)


def emergency_daily_counts(spec: GeneratorSpec) -> pd.DataFrame:
    """Daily emergency admissions per board (days x boards) from the same model, without building events."""
    codes = load_boards().codes
    days = pd.date_range(spec.start, spec.end, freq="D")
    counts = np.random.default_rng(spec.seed).poisson(expected_emergency(spec, codes, days))
    return pd.DataFrame(counts.T, index=days, columns=codes)


def _poisson_events(rng: np.random.Generator, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draw counts for a (boards x days) expectation; return (board index, day index) per event."""
    counts = rng.poisson(expected)
    board_index, day_index = np.nonzero(counts)
    repeat = counts[board_index, day_index]
    return np.repeat(board_index, repeat), np.repeat(day_index, repeat)


def _seconds_in_day(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.integers(0, 86_400, size=size)


def generate_frame(spec: GeneratorSpec, boards: BoardList | None = None,
                   progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """All events (good ones, late, duplicated and malformed as asked) in log (arrival) order."""
    if spec.end < spec.start:
        raise GenerateError("--to must not be before --from")
    if spec.scale <= 0:
        raise GenerateError("--scale must be positive")
    boards = boards or load_boards()
    say = progress or (lambda _message: None)
    rng = np.random.default_rng(spec.seed)
    codes = boards.codes
    board_codes = np.array(codes, dtype=object)
    population_65 = np.array([b.population_65_plus for b in boards], dtype=float)
    days = pd.date_range(spec.start, spec.end, freq="D")
    epoch = days[0]

    say("admissions")
    expected = expected_emergency(spec, codes, days)
    em_board, em_day = _poisson_events(rng, expected)
    ot_board, ot_day = _poisson_events(rng, expected * OTHER_NON_ELECTIVE_SHARE)
    adm_board = np.concatenate([em_board, ot_board])
    adm_day = np.concatenate([em_day, ot_day])
    n_adm = len(adm_board)
    methods = np.concatenate([_choice(rng, EMERGENCY_METHODS, len(em_board)),
                              _choice(rng, OTHER_METHODS, len(ot_board))])
    old = rng.random(n_adm) < SHARE_65_PLUS_ADMITTED
    age = np.where(old, rng.integers(65, 101, n_adm), rng.integers(0, 65, n_adm))
    adm_seconds = adm_day * 86_400 + _seconds_in_day(rng, n_adm)
    patients = nhs_numbers(rng, n_adm)
    provider = np.char.add("R", rng.integers(0, PROVIDERS, n_adm).astype(str))
    admissions = pd.DataFrame({
        "type": "admission", "board": board_codes[adm_board], "t": adm_seconds, "nhs_number": patients,
        "age": age, "admission_method": methods, "provider": provider,
    })

    say("discharges")
    length_of_stay = rng.geometric(1 / 5.0, n_adm) - 1
    dis_seconds = adm_seconds + length_of_stay * 86_400 + rng.integers(3_600, 12 * 3_600, n_adm)
    destination = _choice(rng, DESTINATIONS, n_adm)
    died = destination == "79"
    delayed = (rng.random(n_adm) < DELAYED_SHARE) & ~died
    delayed_days = np.where(delayed, rng.geometric(1 / DELAYED_MEAN_DAYS, n_adm), 0)
    attribution = np.where(delayed, _choice(rng, DELAY_ATTRIBUTION, n_adm), None)
    reablement = (age >= 65) & (destination == "19") & (rng.random(n_adm) < REABLEMENT_SHARE_65)
    discharges = pd.DataFrame({
        "type": "discharge", "board": admissions["board"], "t": dis_seconds, "nhs_number": patients,
        "age": age, "discharge_destination": destination, "discharge_method": np.where(died, "4", "1"),
        "delayed_days": delayed_days, "delay_attributable_to": attribution, "into_reablement": reablement,
    })

    say("reablement outcomes")
    reabled = np.nonzero(reablement)[0]
    adverse = reabled[rng.random(len(reabled)) < ADVERSE_AFTER_REABLEMENT]
    adverse_seconds = dis_seconds[adverse] + rng.integers(1, 111, len(adverse)) * 86_400
    is_readmission = rng.random(len(adverse)) < 0.65
    readmissions = pd.DataFrame({
        "type": "admission", "board": admissions["board"].to_numpy()[adverse][is_readmission],
        "t": adverse_seconds[is_readmission], "nhs_number": patients[adverse][is_readmission],
        "age": age[adverse][is_readmission], "admission_method": "21", "provider": "R0",
    })
    care_after = adverse[~is_readmission]
    placements_after = pd.DataFrame({
        "type": "care_home_placement", "board": admissions["board"].to_numpy()[care_after],
        "t": adverse_seconds[~is_readmission], "nhs_number": patients[care_after],
        "age": age[care_after], "setting": _choice(rng, (("residential", 0.6), ("nursing", 0.4)), len(care_after)),
        "permanent": True,
    })

    say("care-home placements")
    expected_homes = (population_65 * CARE_HOME_PER_100K_65 / 1e5 * spec.scale * 1.3 / 365.25)[:, None] \
        * np.ones(len(days))[None, :]
    ch_board, ch_day = _poisson_events(rng, expected_homes)
    n_ch = len(ch_board)
    permanent = rng.random(n_ch) < 0.8
    ch_age = np.where(rng.random(n_ch) < 0.9, rng.integers(65, 101, n_ch), rng.integers(18, 65, n_ch))
    placements = pd.DataFrame({
        "type": "care_home_placement", "board": board_codes[ch_board],
        "t": ch_day * 86_400 + _seconds_in_day(rng, n_ch), "nhs_number": nhs_numbers(rng, n_ch),
        "age": ch_age, "setting": _choice(rng, (("residential", 0.6), ("nursing", 0.4)), n_ch),
        "permanent": permanent,
    })

    say("ordering, late and duplicate events")
    events = pd.concat([admissions, discharges, readmissions, placements_after, placements], ignore_index=True)
    last_second = len(days) * 86_400
    events = events[events["t"] < last_second].reset_index(drop=True)
    n = len(events)
    events["event_id"] = f"g{spec.seed}-" + pd.Series(np.arange(n)).astype(str).str.zfill(9)
    delay = rng.integers(0, 6 * 3_600, n)
    late = rng.random(n) < spec.late_share
    beyond = late & (rng.random(n) < spec.beyond_lateness_share)
    delay = np.where(late, rng.integers(86_400, 10 * 86_400, n), delay)
    delay = np.where(beyond, rng.integers(15 * 86_400, 40 * 86_400, n), delay)
    events["arrival"] = events["t"] + delay
    duplicates = events[rng.random(n) < spec.duplicate_share].copy()
    duplicates["arrival"] += rng.integers(1, 2 * 3_600, len(duplicates))
    events = pd.concat([events, duplicates], ignore_index=True)
    events = events.sort_values(["arrival", "event_id"], kind="stable").reset_index(drop=True)
    stamps = np.datetime_as_string((epoch.to_datetime64().astype("datetime64[s]")
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
    events = events[list(LOG_COLUMNS)]
    if spec.malformed_share > 0:
        events = _insert_malformed(events, spec, rng)
    return events


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
