"""The calendar of the BCF: financial years (April-March) and quarters, Monday-Sunday weeks, days counted
from the Unix epoch, and England's bank holidays.

Every date computation of the project lives here, once: the financial year or quarter a day falls in, the
same day a year earlier, the Sunday ending a week, the week and quarter of a run of days, and the day
number (days since 1970-01-01, UTC) the event-time code counts in, one value or a whole column at a time.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, overload

import numpy as np

if TYPE_CHECKING:  # pandas and holidays are imported where used: the worker, which counts in epoch days, never
    import pandas as pd  # loads them (they were ~100 MiB of its RSS)

FIRST_MONTH = 4  # financial years start on 1 April
DAYS_PER_YEAR = 365.25  # the mean length of a year: yearly volumes per day, the phase of the yearly cycle


@overload
def _months_into_year(month: int) -> int: ...
@overload
def _months_into_year(month: np.ndarray) -> np.ndarray: ...
def _months_into_year(month: int | np.ndarray) -> int | np.ndarray:
    """Months since April: 0 for April ... 11 for March (a month number or an array of them)."""
    return (month - FIRST_MONTH) % 12


def financial_year_starting(year: int) -> date:
    """The first day of the financial year that starts in calendar year ``year`` (2015 -> 2015-04-01)."""
    return date(year, FIRST_MONTH, 1)


def financial_years(days: pd.DatetimeIndex) -> np.ndarray:
    """The calendar year each day's financial year starts in (2016-03-31 -> 2015), for a whole column."""
    return np.asarray(days.year) - (np.asarray(days.month) < FIRST_MONTH)


def financial_year_start(day: date) -> date:
    return financial_year_starting(day.year if day.month >= FIRST_MONTH else day.year - 1)


def next_financial_year_start(day: date) -> date:
    """The first day of the financial year after the one ``day`` falls in."""
    return financial_year_starting(financial_year_start(day).year + 1)


def financial_quarter_start(day: date) -> date:
    month = FIRST_MONTH + _months_into_year(day.month) // 3 * 3
    year = financial_year_start(day).year
    return date(year + (month > 12), (month - 1) % 12 + 1, 1)


def year_earlier(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def year_days(year_start: date, years: int = 1) -> pd.DatetimeIndex:
    """Every day of the ``years`` (financial) years starting on ``year_start``."""
    import pandas as pd

    return pd.date_range(year_start, pd.Timestamp(year_start) + pd.DateOffset(years=years) - pd.Timedelta(days=1))


def financial_quarter(days: pd.DatetimeIndex) -> np.ndarray:
    """0 for April-June ... 3 for January-March."""
    months: np.ndarray = np.asarray(days.month)
    return _months_into_year(months) // 3


# --- Monday-Sunday weeks -------------------------------------------------------------------------------

WEEKLY = "W-SUN"  # the pandas rule for Monday-Sunday weeks, each labelled by its Sunday


def week_ending(day: date) -> date:
    """The Sunday that ends the Monday-Sunday week holding ``day``."""
    return day + timedelta(days=6 - day.weekday())


def week_numbers(days: pd.DatetimeIndex) -> np.ndarray:
    """The Monday-Sunday week of each day, counted from 0 for the week holding the first day."""
    weeks: np.ndarray = (np.asarray((days - days[0]).days) + days[0].day_of_week) // 7
    return weeks


def complete_weeks(days: pd.DatetimeIndex) -> slice:
    """The span of ``days`` (consecutive) covered by complete Monday-Sunday weeks."""
    first_monday = (7 - days[0].day_of_week) % 7
    weeks = max(0, (len(days) - first_monday) // 7)
    return slice(first_monday, first_monday + weeks * 7)


def quarter_of_weeks(days: pd.DatetimeIndex, span: slice) -> np.ndarray:
    """Financial quarter (0-3) of each complete week of ``span`` (:func:`complete_weeks`): its Thursday's."""
    return financial_quarter(days[span][3::7])


# --- days since the Unix epoch (UTC) -------------------------------------------------------------------

SECONDS_PER_DAY = 86_400
EPOCH = date(1970, 1, 1)
_EPOCH_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_day(seconds: float) -> int:
    """The day (days since 1970-01-01) of a moment given as seconds since the epoch."""
    return int(seconds // SECONDS_PER_DAY)


@overload
def epoch_days(seconds: np.ndarray) -> np.ndarray: ...
@overload
def epoch_days(seconds: pd.Series) -> pd.Series: ...
def epoch_days(seconds: np.ndarray | pd.Series) -> np.ndarray | pd.Series:
    """:func:`epoch_day` of an array (or Series) of epoch seconds, as 64-bit integers."""
    return np.floor_divide(seconds, SECONDS_PER_DAY).astype(np.int64)


def day_from_epoch(day: int) -> date:
    return EPOCH + timedelta(days=day)


@lru_cache(maxsize=16_384)  # every count of the worker names its day: a few thousand days in use
def day_text(day: int) -> str:
    """An epoch day as ``YYYY-MM-DD``."""
    return day_from_epoch(day).isoformat()


def day_texts(days: np.ndarray) -> pd.Index:
    """:func:`day_text` of an array of epoch days."""
    import pandas as pd

    return pd.to_datetime(days, unit="D").strftime("%Y-%m-%d")


def epoch_microseconds(moment: datetime) -> int:
    """Whole microseconds from the epoch to an aware ``moment`` (exact: no float on the way)."""
    return (moment - _EPOCH_MOMENT) // timedelta(microseconds=1)


def civil_epoch_days(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates given as integer columns (H. Hinnant's algorithm)."""
    year = year - (month <= 2)
    era = np.floor_divide(year, 400)
    year_of_era = year - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    since_epoch: np.ndarray = era * 146_097 + day_of_era - 719_468
    return since_epoch


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def days_in_month(year: np.ndarray, month: np.ndarray) -> np.ndarray:
    """The number of days of each (year, month) (integer columns; a month outside 1-12 is clipped into it)."""
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    lengths: np.ndarray = _MONTH_DAYS[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    return lengths


# --- England's bank holidays and day types --------------------------------------------------------------

DAY_TYPES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "bank holiday")


BANK_HOLIDAY = 7


@lru_cache(maxsize=32)
def _bank_holidays(first_year: int, last_year: int) -> frozenset[date]:
    import holidays

    table = holidays.country_holidays("GB", subdiv="ENG", years=range(first_year, last_year + 1))
    return frozenset(day for day in table if day.weekday() < 5)


def england_bank_holidays(days: pd.DatetimeIndex) -> np.ndarray:
    """True on the days that are a weekday bank holiday in England (Monday to Friday, as gov.uk lists
    them, substitute days included)."""
    if len(days) == 0:
        return np.zeros(0, dtype=bool)
    found = _bank_holidays(int(days[0].year), int(days[-1].year))
    return np.array([day in found for day in days.date], dtype=bool)


def day_types(days: pd.DatetimeIndex) -> np.ndarray:
    """0..6 for Monday..Sunday, 7 (:data:`BANK_HOLIDAY`) for a weekday bank holiday."""
    types = np.asarray(days.day_of_week, dtype=int).copy()
    types[england_bank_holidays(days)] = BANK_HOLIDAY
    return types
