"""National figures of the BCF plans and the documented national default shape of daily admissions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bcfwatch.core.boards import load_boards

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


WEEKEND_FACTOR = 0.82


SEASONAL_AMPLITUDE = 0.05


def daily_profile(days: pd.DatetimeIndex) -> np.ndarray:
    """Relative daily volume: weekday pattern x winter seasonality, mean ~1 over a year."""
    weekday = np.where(days.day_of_week >= 5, WEEKEND_FACTOR, 1.0)
    seasonal = 1 + SEASONAL_AMPLITUDE * np.cos(2 * np.pi * (days.day_of_year - 15) / 365.25)
    return np.asarray(weekday * seasonal) / (5 + 2 * WEEKEND_FACTOR) * 7
