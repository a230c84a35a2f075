"""The calendar of the BCF: financial years (April-March) and quarters, and England's bank holidays."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays
import numpy as np
import pandas as pd


def financial_year_start(day: date) -> date:
    return date(day.year if day.month >= 4 else day.year - 1, 4, 1)


def financial_quarter_start(day: date) -> date:
    month = ((day.month - 4) % 12) // 3 * 3 + 4
    year = day.year if day.month >= 4 else day.year - 1
    return date(year + (month > 12), (month - 1) % 12 + 1, 1)


def year_earlier(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def financial_quarter(days: pd.DatetimeIndex) -> np.ndarray:
    """0 for April-June ... 3 for January-March."""
    return ((np.asarray(days.month) - 4) % 12) // 3


DAY_TYPES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "bank holiday")


BANK_HOLIDAY = 7


@lru_cache(maxsize=32)
def _bank_holidays(first_year: int, last_year: int) -> frozenset[date]:
    table = holidays.country_holidays("GB", subdiv="ENG", years=range(first_year, last_year + 1))
    return frozenset(day for day in table if day.weekday() < 5)


def england_bank_holidays(days: pd.DatetimeIndex) -> np.ndarray:
    """True on the days that are a weekday bank holiday in England."""
    if len(days) == 0:
        return np.zeros(0, dtype=bool)
    found = _bank_holidays(int(days[0].year), int(days[-1].year))
    return np.array([day in found for day in days.date], dtype=bool)


def day_types(days: pd.DatetimeIndex) -> np.ndarray:
    """0..6 for Monday..Sunday, 7 (:data:`BANK_HOLIDAY`) for a weekday bank holiday."""
    types = np.asarray(days.day_of_week, dtype=int).copy()
    types[england_bank_holidays(days)] = BANK_HOLIDAY
    return types
