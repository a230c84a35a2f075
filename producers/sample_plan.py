"""The sample plan shipped with bcfwatch: one plan per board, around the national figures.

Synthetic, reproducible from its seed: planned reductions in emergency
admissions vary by board around the national 3.07% (volume-weighted to exactly
that), 5 boards not approved and the rest approved, approved with support or
with conditions; pooled funds sum to about £5.3bn; delayed days are planned to
fall 7.5%, permanent care-home admissions 3.3%; reablement targets near 82%.
Baselines are the generator's expected volumes at the given scale, so a log
generated at that scale follows this plan unless told to drift.
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from bcfwatch.core.boards import load_boards
from bcfwatch.core.calendar import financial_quarter, year_days
from bcfwatch.core.national import (
    CARE_HOME_PER_100K_65,
    CARE_HOME_REDUCTION,
    DELAYED_DAYS_REDUCTION,
    NATIONAL_DELAYED_DAYS,
    NATIONAL_EMERGENCY_ADMISSIONS,
    NATIONAL_POOL_GBP,
    NATIONAL_REDUCTION,
    REABLEMENT_TARGET,
    board_weights,
    daily_profile,
)
from bcfwatch.core.plans import PLAN_COLUMNS

NOT_APPROVED = 5




def sample_plan(scale: float = 1.0, seed: int = 2015, baseline_year: date = date(2014, 4, 1)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    boards = list(load_boards())
    codes, share = board_weights()
    days = year_days(baseline_year)
    profile = daily_profile(days)
    quarter_share = np.bincount(financial_quarter(days), weights=profile, minlength=4) / 365.25
    yearly = NATIONAL_EMERGENCY_ADMISSIONS * scale * share
    quarters = np.maximum(np.rint(yearly[:, None] * quarter_share[None, :]).astype(int), 1)  # plans refuse 0

    reduction = np.clip(rng.normal(NATIONAL_REDUCTION, 0.012, len(boards)), 0.0, 0.08)
    reduction *= NATIONAL_REDUCTION / np.average(reduction, weights=quarters.sum(axis=1))
    status = rng.choice(["approved", "approved with support", "approved with conditions"], size=len(boards),
                        p=[0.62, 0.25, 0.13]).astype(object)
    status[rng.choice(len(boards), NOT_APPROVED, replace=False)] = "not approved"
    pool = NATIONAL_POOL_GBP * share * rng.uniform(0.85, 1.15, len(boards))
    pool *= NATIONAL_POOL_GBP / pool.sum()
    delayed = np.maximum(np.rint(NATIONAL_DELAYED_DAYS * scale * share).astype(int), 1)  # plans refuse 0
    care_homes = np.rint([b.population_65_plus * CARE_HOME_PER_100K_65 / 1e5 * scale for b in boards]).astype(int)
    frame = pd.DataFrame({
        "board": codes,
        "name": [b.name for b in boards],
        "approval_status": status,
        "pooled_fund_gbp": (np.rint(pool / 1000) * 1000).astype(np.int64),
        **{f"baseline_emergency_q{q + 1}": quarters[:, q] for q in range(4)},
        "planned_reduction_pct": np.round(reduction * 100, 2),
        "baseline_delayed_days": delayed,
        "planned_delayed_days": np.rint(delayed * (1 - DELAYED_DAYS_REDUCTION)).astype(int),
        "baseline_care_home_admissions_65": care_homes,
        "planned_care_home_admissions_65": np.rint(care_homes * (1 - CARE_HOME_REDUCTION)).astype(int),
        "reablement_target_pct": np.round(np.clip(rng.normal(REABLEMENT_TARGET * 100, 2, len(boards)), 70, 95), 1),
        "population_18_plus": [b.population_18_plus for b in boards],
        "population_65_plus": [b.population_65_plus for b in boards],
    })
    return frame[list(PLAN_COLUMNS)]


def write_sample_plan(out: Path, scale: float = 1.0, seed: int = 2015) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# bcfwatch sample BCF plan, synthetic (seed {seed}, scale {scale}): baselines are 2014-15, the plan "
              "year 2015-16. See docs/plan-format.md.\n")
    out.write_text(header + sample_plan(scale, seed).to_csv(index=False))


def sample_plan_path() -> Path:
    return Path(str(resources.files("producers").joinpath("sample_plan.csv")))
