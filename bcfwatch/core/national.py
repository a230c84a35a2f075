"""National figures of the BCF plans and the documented national default shape of daily admissions."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from bcfwatch.core.boards import load_boards
from bcfwatch.core.calendar import DAYS_PER_YEAR

if TYPE_CHECKING:  # (types only: the CLI, the worker's process included, imports this module for its constants)
    import pandas as pd

NATIONAL_EMERGENCY_ADMISSIONS = 5_500_000


NATIONAL_REDUCTION = 0.0307


NATIONAL_POOL_GBP = 5.3e9


NATIONAL_DELAYED_DAYS = 1_740_000


DELAYED_DAYS_REDUCTION = 0.075


CARE_HOME_PER_100K_65 = 659.0


CARE_HOME_REDUCTION = 0.033


REABLEMENT_TARGET = 0.82


def board_weights() -> tuple[list[str], np.ndarray]:
    """Share of national emergency admissions per plan board (population, weighted towards 65+)."""
    boards = list(load_boards())
    weight = np.array([b.population + 1.5 * b.population_65_plus for b in boards], dtype=float)
    return [b.code for b in boards], weight / weight.sum()


# --- the national default shape of daily emergency admissions ------------------------------------------
# The plans' trajectories, the sample plan and the generator's defaults are built on it, and the drift
# monitor falls back on it without baseline-year counts (docs/drift.md, "national default").

WEEKEND_FACTOR = 0.82  # Saturday and Sunday, of an ordinary weekday (DESIGN.md: 14-22% lower)


WEEKDAY_FACTORS = (1.0, 1.0, 1.0, 1.0, 1.0, WEEKEND_FACTOR, WEEKEND_FACTOR)  # Monday..Sunday


# A weekday bank holiday, of an ordinary weekday (25-30% lower): the monitor's national default pattern.
BANK_HOLIDAY_FACTOR = 0.73


# The generator's bank-holiday default (``--bank-holiday-drop 27.5``%): the same concept as
# BANK_HOLIDAY_FACTOR, unrounded. Kept apart only because making them one value would change either the
# generated logs (``--bank-holidays``) or the monitor's national-default figures.
GENERATOR_BANK_HOLIDAY_FACTOR = 0.725


DAY_TYPE_FACTORS = (*WEEKDAY_FACTORS, BANK_HOLIDAY_FACTOR)  # in the order of calendar.DAY_TYPES


SEASONAL_AMPLITUDE = 0.05  # the winter peak 5% above the yearly mean, the summer trough 5% below


WINTER_PEAK_DAY = 15  # day of the year of the winter peak: 15 January


def annual_phase(days: pd.DatetimeIndex, zero_day: float = WINTER_PEAK_DAY) -> np.ndarray:
    """Each day's angle in the yearly cycle (radians), 0 on day of the year ``zero_day`` (the winter peak)."""
    return 2 * np.pi * (np.asarray(days.day_of_year) - zero_day) / DAYS_PER_YEAR


def seasonality(days: pd.DatetimeIndex, amplitude: float | np.ndarray = SEASONAL_AMPLITUDE,
                peak_day: float = WINTER_PEAK_DAY) -> np.ndarray:
    """Relative volume of the winter cosine: 1 + amplitude at the peak day, 1 - amplitude half a year on
    (``amplitude`` may be an array that broadcasts against the days, e.g. boards x days)."""
    volume: np.ndarray = 1 + amplitude * np.cos(annual_phase(days, peak_day))
    return volume


def weekday_and_winter(days: pd.DatetimeIndex, weekday_factors: tuple[float, ...] = WEEKDAY_FACTORS,
                       amplitude: float | np.ndarray = SEASONAL_AMPLITUDE,
                       peak_day: float = WINTER_PEAK_DAY) -> np.ndarray:
    """Relative daily volume, mean ~1 over a year: the weekday factors (Monday..Sunday, rescaled to average
    1 over a week) x :func:`seasonality`. The defaults are the national shape (:func:`daily_profile`)."""
    weekday = np.asarray(weekday_factors)[np.asarray(days.day_of_week)]
    volume: np.ndarray = weekday * seasonality(days, amplitude, peak_day) / math.fsum(weekday_factors) * 7
    return volume


def daily_profile(days: pd.DatetimeIndex) -> np.ndarray:
    """Relative daily volume of the national shape: weekdays 1, weekends 0.82, a 5% winter peak on 15 January."""
    return weekday_and_winter(days)
