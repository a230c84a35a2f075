"""Statistical process control as NHS "Making Data Count" uses it (after NHSRplotthedots).

XmR chart: the mean, the mean moving range (MR-bar) and process limits at
mean +/- 2.66 x MR-bar. Moving ranges above 3.267 x MR-bar are screened out
before MR-bar is recomputed (NHSRplotthedots' ``screen_outliers``). Special-cause
rules, each a pure function over the series that flags the points it covers:

* a point outside the process limits;
* a **shift**: 7 or more consecutive points on one side of the mean (a point on
  the mean breaks the run);
* a **trend**: 7 or more consecutive points each higher (or each lower) than
  the one before;
* **two in three**: 2 of 3 consecutive points beyond two thirds of the distance
  to a limit, on the same side.

Assurance compares a target with the limits: a target outside them means the
process will consistently hit (or miss) it; inside them, it will hit and miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

LIMIT_FACTOR = 2.66
SCREEN_FACTOR = 3.267
RUN_LENGTH = 7


@dataclass(frozen=True)
class Limits:
    mean: float
    mean_moving_range: float
    lower: float
    upper: float

    @property
    def lower_two_thirds(self) -> float:
        return self.mean - (self.mean - self.lower) * 2 / 3

    @property
    def upper_two_thirds(self) -> float:
        return self.mean + (self.upper - self.mean) * 2 / 3


def xmr_limits(values: Sequence[float], screen_outliers: bool = True) -> Limits:
    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        raise ValueError("an XmR chart needs at least two points")
    mean = float(x.mean())
    moving_ranges = np.abs(np.diff(x))
    mr_bar = float(moving_ranges.mean())
    if screen_outliers and mr_bar > 0:
        kept = moving_ranges[moving_ranges <= SCREEN_FACTOR * mr_bar]
        mr_bar = float(kept.mean()) if len(kept) else mr_bar
    return Limits(mean, mr_bar, mean - LIMIT_FACTOR * mr_bar, mean + LIMIT_FACTOR * mr_bar)


def _runs(flags: np.ndarray, length: int) -> np.ndarray:
    """Mark every point that belongs to a run of at least ``length`` consecutive True flags."""
    marked = np.zeros(len(flags), dtype=bool)
    start = None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= length:
                marked[start:i] = True
            start = None
    return marked


def outside_limits(values: Sequence[float], limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """(above the upper limit, below the lower limit) per point."""
    x = np.asarray(values, dtype=float)
    return x > limits.upper, x < limits.lower


def shift(values: Sequence[float], limits: Limits, length: int = RUN_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """(part of a run above the mean, part of a run below the mean)."""
    x = np.asarray(values, dtype=float)
    return _runs(x > limits.mean, length), _runs(x < limits.mean, length)


def trend(values: Sequence[float], length: int = RUN_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """(part of >= length points rising, part of >= length points falling); ties break a trend."""
    x = np.asarray(values, dtype=float)
    rising_step = np.diff(x) > 0
    falling_step = np.diff(x) < 0

    def points(steps: np.ndarray) -> np.ndarray:
        step_runs = _runs(steps, length - 1)
        marked = np.zeros(len(x), dtype=bool)
        marked[1:] |= step_runs
        marked[:-1] |= step_runs
        return marked

    return points(rising_step), points(falling_step)


def two_in_three(values: Sequence[float], limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """(high, low): points beyond 2/3 of the limit distance that are 2 of some 3 consecutive points."""
    x = np.asarray(values, dtype=float)

    def side(beyond: np.ndarray) -> np.ndarray:
        marked = np.zeros(len(x), dtype=bool)
        for i in range(len(x) - 2):
            window = beyond[i:i + 3]
            if window.sum() >= 2:
                marked[i:i + 3] |= window
        if len(x) == 2 and beyond.all():
            marked[:] = True
        return marked

    return side(x > limits.upper_two_thirds), side(x < limits.lower_two_thirds)


class Variation(StrEnum):
    COMMON_CAUSE = "common cause"
    SPECIAL_CAUSE_CONCERN = "special cause: concern"
    SPECIAL_CAUSE_IMPROVEMENT = "special cause: improvement"


class Assurance(StrEnum):
    CONSISTENTLY_HIT = "consistently hit"
    CONSISTENTLY_MISSED = "consistently missed"
    HIT_AND_MISS = "hit and miss"


@dataclass(frozen=True)
class SpcResult:
    limits: Limits
    high: np.ndarray  # special cause above (per point)
    low: np.ndarray  # special cause below (per point)
    rules_high: dict[str, np.ndarray]
    rules_low: dict[str, np.ndarray]

    def variation(self, index: int, improvement: str = "decrease") -> Variation:
        concern = self.high if improvement == "decrease" else self.low
        better = self.low if improvement == "decrease" else self.high
        if concern[index]:
            return Variation.SPECIAL_CAUSE_CONCERN
        if better[index]:
            return Variation.SPECIAL_CAUSE_IMPROVEMENT
        return Variation.COMMON_CAUSE

    def rules_fired(self, index: int, improvement: str = "decrease") -> list[str]:
        rules = self.rules_high if improvement == "decrease" else self.rules_low
        return [name for name, flags in rules.items() if flags[index]]


def special_causes(values: Sequence[float], limits: Limits | None = None) -> SpcResult:
    """Apply every rule; ``limits`` fixed from a baseline period, or computed from ``values``."""
    limits = limits or xmr_limits(values)
    above, below = outside_limits(values, limits)
    shift_high, shift_low = shift(values, limits)
    trend_high, trend_low = trend(values)
    two_high, two_low = two_in_three(values, limits)
    rules_high = {"outside limits": above, "shift": shift_high, "trend": trend_high, "two in three": two_high}
    rules_low = {"outside limits": below, "shift": shift_low, "trend": trend_low, "two in three": two_low}
    return SpcResult(limits, above | shift_high | trend_high | two_high, below | shift_low | trend_low | two_low,
                     rules_high, rules_low)


def assurance(limits: Limits, target: float, improvement: str = "decrease") -> Assurance:
    """Whether the process will meet ``target`` (lower is better when improvement is 'decrease')."""
    if improvement == "decrease":
        if limits.upper < target:
            return Assurance.CONSISTENTLY_HIT
        if limits.lower > target:
            return Assurance.CONSISTENTLY_MISSED
    else:
        if limits.lower > target:
            return Assurance.CONSISTENTLY_HIT
        if limits.upper < target:
            return Assurance.CONSISTENTLY_MISSED
    return Assurance.HIT_AND_MISS
