"""Statistical process control as NHS "Making Data Count" uses it: a port of NHSRplotthedots v0.2.x.

The semantics follow NHSRplotthedots 0.2.2 (``R/ptd_spc_standard.R``, ``R/ptd_calculate_point_type.R``,
``R/ptd_calculate_assurance_type.R``); docs/spc.md explains the port. In short:

* **XmR limits**: mean +/- 2.66 x mean moving range (MR-bar). The first moving range is missing. With
  ``screen_outliers`` (the default) moving ranges at or above 3.267 x MR-bar are dropped (strictly below keeps)
  and MR-bar is recomputed; a flat fitting period therefore has no limits (NaN), not zero-width ones. Means are
  taken as R takes them (extended-precision sum plus a correction pass), so a point exactly on the mean in R is
  exactly on it here.
* **Rules**, each flagging every point that is *part of* a pattern:

  - a point outside the process limits;
  - a **trend**: 7 points each strictly higher (or lower) than the one before (an equal pair breaks it);
  - **two in three**: 2 of 3 consecutive points between the two-thirds line and the limit (points beyond the
    limit do not count), with all three points on the same side of the mean (NHSRplotthedots #143);
  - a **shift** (run): 7 points on one side of the mean (a point on the mean breaks the run).

* **One label per point** by priority: outside > trend > two in three > shift. A trend point is labelled with
  the direction of the step after it when the next point is also part of a trend (so a turning point shared by
  a rising and a falling trend takes the next step's direction), otherwise with the step before it.
* **Point type**: the label's side (above/increasing = high, below/decreasing = low) oriented by the improvement
  direction ("increase", "decrease" or "neutral").
* **fix_after_n_points** (>= 12) fits the limits on the first n points of each group; the rules still run over the
  whole group. **Rebasing** splits the series into groups at given indices, each with its own limits and rules.
* **Assurance**: the target against the last group's limits, strictly (a target equal to a limit is hit and
  miss); none for a neutral direction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

LIMIT_FACTOR = 2.66
LIMIT_CLOSE_FACTOR = 2 * (LIMIT_FACTOR / 3)  # the two-thirds line, computed as NHSRplotthedots does
SCREEN_FACTOR = 3.267
RUN_LENGTH = 7
MIN_FIX_AFTER_N_POINTS = 12
# NHSRplotthedots' ptd_spc.warning_threshold default in v0.2.2 is 13 (its message says "n < 12").
SHORT_GROUP_THRESHOLD = 13


class ImprovementDirection(StrEnum):
    INCREASE = "increase"
    DECREASE = "decrease"
    NEUTRAL = "neutral"

    @property
    def sign(self) -> int:
        return _SIGN[self]


_SIGN = {ImprovementDirection.INCREASE: 1, ImprovementDirection.DECREASE: -1, ImprovementDirection.NEUTRAL: 0}


class Rule(StrEnum):
    OUTSIDE_LIMITS = "outside limits"
    TREND = "trend"
    TWO_IN_THREE = "two in three"
    SHIFT = "shift"


class SpecialCauseType(StrEnum):
    """NHSRplotthedots' ``special_cause_type``: the one label each point gets."""

    COMMON_CAUSE = "Common Cause"
    ABOVE_UCL = "Above UCL"
    BELOW_LCL = "Below LCL"
    TREND_INCREASING = "7 Point Trend (Increasing)"
    TREND_DECREASING = "7 Point Trend (Decreasing)"
    TWO_IN_THREE_ABOVE = "2 in 3 Above CL"
    TWO_IN_THREE_BELOW = "2 in 3 Below CL"
    SHIFT_ABOVE = "7 Points Above CL"
    SHIFT_BELOW = "7 Points Below CL"

    @property
    def side(self) -> int:
        """+1 high (above, increasing), -1 low (below, decreasing), 0 common cause."""
        return _SIDE[self]

    @property
    def rule(self) -> Rule | None:
        return _RULE[self]


_SIDE = {
    SpecialCauseType.COMMON_CAUSE: 0,
    SpecialCauseType.ABOVE_UCL: 1, SpecialCauseType.TREND_INCREASING: 1,
    SpecialCauseType.TWO_IN_THREE_ABOVE: 1, SpecialCauseType.SHIFT_ABOVE: 1,
    SpecialCauseType.BELOW_LCL: -1, SpecialCauseType.TREND_DECREASING: -1,
    SpecialCauseType.TWO_IN_THREE_BELOW: -1, SpecialCauseType.SHIFT_BELOW: -1,
}
_RULE = {
    SpecialCauseType.COMMON_CAUSE: None,
    SpecialCauseType.ABOVE_UCL: Rule.OUTSIDE_LIMITS, SpecialCauseType.BELOW_LCL: Rule.OUTSIDE_LIMITS,
    SpecialCauseType.TREND_INCREASING: Rule.TREND, SpecialCauseType.TREND_DECREASING: Rule.TREND,
    SpecialCauseType.TWO_IN_THREE_ABOVE: Rule.TWO_IN_THREE, SpecialCauseType.TWO_IN_THREE_BELOW: Rule.TWO_IN_THREE,
    SpecialCauseType.SHIFT_ABOVE: Rule.SHIFT, SpecialCauseType.SHIFT_BELOW: Rule.SHIFT,
}


_BY_CODE = tuple(SpecialCauseType)
_CODE = {label: code for code, label in enumerate(_BY_CODE)}


class PointType(StrEnum):
    """NHSRplotthedots' ``point_type``."""

    COMMON_CAUSE = "common_cause"
    SPECIAL_CAUSE_IMPROVEMENT = "special_cause_improvement"
    SPECIAL_CAUSE_CONCERN = "special_cause_concern"
    SPECIAL_CAUSE_NEUTRAL_HIGH = "special_cause_neutral_high"
    SPECIAL_CAUSE_NEUTRAL_LOW = "special_cause_neutral_low"


class Variation(StrEnum):
    COMMON_CAUSE = "common cause"
    SPECIAL_CAUSE_CONCERN = "special cause: concern"
    SPECIAL_CAUSE_IMPROVEMENT = "special cause: improvement"
    SPECIAL_CAUSE_NEUTRAL_HIGH = "special cause: neutral high"
    SPECIAL_CAUSE_NEUTRAL_LOW = "special cause: neutral low"


_VARIATION = {
    PointType.COMMON_CAUSE: Variation.COMMON_CAUSE,
    PointType.SPECIAL_CAUSE_IMPROVEMENT: Variation.SPECIAL_CAUSE_IMPROVEMENT,
    PointType.SPECIAL_CAUSE_CONCERN: Variation.SPECIAL_CAUSE_CONCERN,
    PointType.SPECIAL_CAUSE_NEUTRAL_HIGH: Variation.SPECIAL_CAUSE_NEUTRAL_HIGH,
    PointType.SPECIAL_CAUSE_NEUTRAL_LOW: Variation.SPECIAL_CAUSE_NEUTRAL_LOW,
}


class Assurance(StrEnum):
    CONSISTENTLY_HIT = "consistently hit"
    CONSISTENTLY_MISSED = "consistently missed"
    HIT_AND_MISS = "hit and miss"

    @property
    def ptd_name(self) -> str:
        """NHSRplotthedots' ``assurance_type``."""
        return _PTD_ASSURANCE[self]


_PTD_ASSURANCE = {Assurance.CONSISTENTLY_HIT: "consistent_pass", Assurance.CONSISTENTLY_MISSED: "consistent_fail",
                  Assurance.HIT_AND_MISS: "inconsistent"}


def point_type(special_cause: SpecialCauseType, improvement: ImprovementDirection | str) -> PointType:
    """Orient a label by the improvement direction (NHSRplotthedots' ``ptd_point_type``)."""
    direction = ImprovementDirection(improvement)
    side = special_cause.side
    if direction is ImprovementDirection.NEUTRAL:
        return {1: PointType.SPECIAL_CAUSE_NEUTRAL_HIGH, -1: PointType.SPECIAL_CAUSE_NEUTRAL_LOW}.get(
            side, PointType.COMMON_CAUSE)
    oriented = side * direction.sign
    if oriented > 0:
        return PointType.SPECIAL_CAUSE_IMPROVEMENT
    if oriented < 0:
        return PointType.SPECIAL_CAUSE_CONCERN
    return PointType.COMMON_CAUSE


# ---------------------------------------------------------------------------------------------- limits


def r_mean(values: Iterable[float]) -> float:
    """The arithmetic mean exactly as R's ``mean()`` computes it for doubles.

    R sums in long double, divides, then adds the mean of the residuals (also in long double). numpy's
    ``longdouble`` is the same 80-bit type on x86-64 Linux, so the result is bit-identical there.
    """
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.longdouble)
    if x.size == 0:
        return math.nan
    n = np.longdouble(x.size)
    s = np.add.accumulate(x)[-1] / n  # accumulate sums in order, as R's loop does (np.sum would pair up)
    if np.isfinite(s):
        s += np.add.accumulate(x - s)[-1] / n
    return float(s)


@dataclass(frozen=True)
class Limits:
    mean: float
    mean_moving_range: float
    lower: float
    upper: float

    @property
    def lower_two_thirds(self) -> float:
        return self.mean - LIMIT_CLOSE_FACTOR * self.mean_moving_range

    @property
    def upper_two_thirds(self) -> float:
        return self.mean + LIMIT_CLOSE_FACTOR * self.mean_moving_range

    @property
    def defined(self) -> bool:
        """False when the fitting period gave no limits (flat, or a single point)."""
        return not (math.isnan(self.lower) or math.isnan(self.upper))


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1:
        raise ValueError("SPC needs a one-dimensional series")
    if not np.all(np.isfinite(x)):
        raise ValueError("SPC needs finite values (no missing weeks)")
    return x


def xmr_limits(values: Sequence[float] | np.ndarray, screen_outliers: bool = True) -> Limits:
    """XmR limits fitted on ``values`` (all of them: slice the fitting period first)."""
    x = _finite(values)
    if len(x) == 0:
        raise ValueError("an XmR chart needs at least one point")
    mean = r_mean(x)
    moving_ranges = np.abs(np.diff(x))  # the first point has no moving range
    mr_bar = r_mean(moving_ranges)
    if screen_outliers and len(moving_ranges):
        mr_bar = r_mean(moving_ranges[moving_ranges < SCREEN_FACTOR * mr_bar])
    return Limits(mean, mr_bar, mean - LIMIT_FACTOR * mr_bar, mean + LIMIT_FACTOR * mr_bar)


# ---------------------------------------------------------------------------------------------- rules


def _ends_of(flags: np.ndarray, length: int) -> np.ndarray:
    """True where ``length`` consecutive True flags end."""
    ends = np.zeros(len(flags), dtype=bool)
    if length <= len(flags):
        ends[length - 1:] = sliding_window_view(flags, length).all(axis=1)
    return ends


def _part_of(ends: np.ndarray, length: int) -> np.ndarray:
    """Points that are one of the ``length`` points ending at a flagged end."""
    marked = np.zeros(len(ends), dtype=bool)
    for end in np.flatnonzero(ends):
        marked[max(0, end - length + 1):end + 1] = True
    return marked


def _relative_to_mean(x: np.ndarray, limits: Limits) -> np.ndarray:
    return np.sign(x - limits.mean)


def outside_limits(values: Sequence[float] | np.ndarray, limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """(above the upper limit, below the lower limit) per point; nothing is outside undefined limits."""
    x = _finite(values)
    return x > limits.upper, x < limits.lower


def shift(values: Sequence[float] | np.ndarray, limits: Limits,
          length: int = RUN_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """(part of a run above the mean, part of a run below the mean); a point on the mean breaks a run."""
    x = _finite(values)
    side = _relative_to_mean(x, limits)
    return _part_of(_ends_of(side == 1, length), length), _part_of(_ends_of(side == -1, length), length)


def _trend_ends(x: np.ndarray, length: int) -> np.ndarray:
    """+1 where ``length`` strictly rising points end, -1 where strictly falling ones end, else 0."""
    steps = np.sign(np.diff(x))
    ends = np.zeros(len(x), dtype=int)
    if len(x):
        ends[1:] = _ends_of(steps == 1, length - 1).astype(int) - _ends_of(steps == -1, length - 1).astype(int)
    return ends


def trend(values: Sequence[float] | np.ndarray, length: int = RUN_LENGTH) -> tuple[np.ndarray, np.ndarray]:
    """(part of >= length points strictly rising, part of >= length points strictly falling); ties break a trend."""
    x = _finite(values)
    ends = _trend_ends(x, length)
    return _part_of(ends == 1, length), _part_of(ends == -1, length)


def _close_to_limits(x: np.ndarray, limits: Limits) -> np.ndarray:
    """Between the two-thirds line and the limit (inclusive of the limit, never beyond it)."""
    above, below = x > limits.upper, x < limits.lower
    return ~(above | below) & ((x < limits.lower_two_thirds) | (x > limits.upper_two_thirds))


def _two_in_three(x: np.ndarray, limits: Limits) -> np.ndarray:
    close = _close_to_limits(x, limits)
    side = _relative_to_mean(x, limits)
    windows = np.zeros(len(x), dtype=bool)  # windows[i]: x[i:i+3] has >= 2 close points, all three on one side
    if len(x) >= 3:
        windows[:-2] = ((sliding_window_view(close, 3).sum(axis=1) >= 2)
                        & (np.abs(sliding_window_view(side, 3).sum(axis=1)) == 3))
    in_window = windows.copy()
    in_window[1:] |= windows[:-1]
    in_window[2:] |= windows[:-2]
    return in_window & close


def two_in_three(values: Sequence[float] | np.ndarray, limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """(high, low): points between the two-thirds line and the limit that are 2 of 3 consecutive such points,
    the three all on the same side of the mean; points beyond the limits never count."""
    x = _finite(values)
    flagged = _two_in_three(x, limits)
    side = _relative_to_mean(x, limits)
    return flagged & (side > 0), flagged & (side <= 0)


def special_cause_types(values: Sequence[float] | np.ndarray, limits: Limits,
                        length: int = RUN_LENGTH) -> tuple[SpecialCauseType, ...]:
    """One label per point by priority: outside > trend > two in three > shift (one group, given limits)."""
    x = _finite(values)
    n = len(x)
    side = _relative_to_mean(x, limits)
    above, below = outside_limits(x, limits)
    in_trend = _part_of(_trend_ends(x, length) != 0, length)
    two = _two_in_three(x, limits)
    run_high, run_low = shift(x, limits, length)
    steps = np.sign(np.diff(x))
    next_step = np.append(steps, 0.0)
    previous_step = np.insert(steps, 0, 0.0) if n else steps
    next_in_trend = np.append(in_trend[1:], False) if n else in_trend
    # a trend point takes the next step's direction if the next point is in a trend too, else the previous step's;
    # only +1 reads as increasing (NHSRplotthedots: ifelse(sdy == 1, "In", "De"))
    trend_step = np.where(in_trend & next_in_trend, next_step, previous_step)
    high = side > 0
    t = SpecialCauseType
    codes = np.select(
        [above | below, in_trend, two, run_high | run_low],
        [np.where(side == 1, _CODE[t.ABOVE_UCL], _CODE[t.BELOW_LCL]),
         np.where(trend_step == 1, _CODE[t.TREND_INCREASING], _CODE[t.TREND_DECREASING]),
         np.where(high, _CODE[t.TWO_IN_THREE_ABOVE], _CODE[t.TWO_IN_THREE_BELOW]),
         np.where(high, _CODE[t.SHIFT_ABOVE], _CODE[t.SHIFT_BELOW])],
        default=_CODE[t.COMMON_CAUSE])
    return tuple(_BY_CODE[code] for code in codes.tolist())


# ---------------------------------------------------------------------------------------------- assurance


def assurance(limits: Limits, target: float,
              improvement: ImprovementDirection | str = "decrease") -> Assurance:
    """Whether the process will meet ``target``: a target strictly beyond a limit is consistently hit or missed.

    Undefined (NaN) limits give hit and miss, as in NHSRplotthedots. A neutral direction has no assurance.
    """
    direction = ImprovementDirection(improvement)
    if direction is ImprovementDirection.NEUTRAL:
        raise ValueError("assurance needs an improvement direction (increase or decrease)")
    increasing = direction is ImprovementDirection.INCREASE
    if target > limits.upper:
        return Assurance.CONSISTENTLY_MISSED if increasing else Assurance.CONSISTENTLY_HIT
    if target < limits.lower:
        return Assurance.CONSISTENTLY_HIT if increasing else Assurance.CONSISTENTLY_MISSED
    return Assurance.HIT_AND_MISS


# ---------------------------------------------------------------------------------------------- the chart


@dataclass(frozen=True)
class SpcGroup:
    """One rebase group: points ``start`` to ``stop - 1``, limits fitted on the first ``fitted_points``."""

    start: int
    stop: int
    limits: Limits
    fitted_points: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def short_group_warning(self) -> bool:
        """Trial limits: fewer than 13 points (NHSRplotthedots' default warning threshold)."""
        return self.size < SHORT_GROUP_THRESHOLD


@dataclass(frozen=True)
class SpcChart:
    """An XmR chart as NHSRplotthedots' ``ptd_spc`` builds it, for one series (one facet)."""

    values: np.ndarray
    improvement: ImprovementDirection
    groups: tuple[SpcGroup, ...]
    special_cause_types: tuple[SpecialCauseType, ...]
    target: float | None = None

    def __len__(self) -> int:
        return len(self.values)

    def group_of(self, index: int) -> SpcGroup:
        index = range(len(self.values))[index]
        return next(g for g in self.groups if g.start <= index < g.stop)

    def limits_at(self, index: int) -> Limits:
        return self.group_of(index).limits

    @property
    def point_types(self) -> tuple[PointType, ...]:
        return tuple(point_type(label, self.improvement) for label in self.special_cause_types)

    def point_type(self, index: int) -> PointType:
        return point_type(self.special_cause_types[index], self.improvement)

    def variation(self, index: int) -> Variation:
        return _VARIATION[self.point_type(index)]

    def rules_fired(self, index: int) -> list[Rule]:
        rule = self.special_cause_types[index].rule
        return [rule] if rule else []

    @property
    def high(self) -> np.ndarray:
        """Special cause on the high side (above a limit or the mean, or a rising trend), per point."""
        return np.array([label.side > 0 for label in self.special_cause_types], dtype=bool)

    @property
    def low(self) -> np.ndarray:
        return np.array([label.side < 0 for label in self.special_cause_types], dtype=bool)

    @property
    def special_cause_flags(self) -> np.ndarray:
        return self.high | self.low

    @property
    def assurance(self) -> Assurance | None:
        """The target against the last group's limits; None without a target or with a neutral direction."""
        if self.target is None or self.improvement is ImprovementDirection.NEUTRAL:
            return None
        return assurance(self.groups[-1].limits, self.target, self.improvement)


def xmr_chart(values: Sequence[float] | np.ndarray, *, improvement: ImprovementDirection | str,
              fix_after_n_points: int | None = None, rebase: Iterable[int] = (),
              target: float | None = None, screen_outliers: bool = True) -> SpcChart:
    """Build the chart NHSRplotthedots' ``ptd_spc`` would for ``values`` in time order.

    ``rebase`` holds the indices where a new group (new limits, rules restarted) begins; index 0 changes
    nothing. ``fix_after_n_points`` (>= 12) fits each group's limits on its first n points only; every point of
    the group is still judged. ``improvement`` is required: "increase", "decrease" or "neutral".
    """
    x = _finite(values)
    if len(x) == 0:
        raise ValueError("an XmR chart needs at least one point")
    direction = ImprovementDirection(improvement)
    if fix_after_n_points is not None and (isinstance(fix_after_n_points, bool)
                                           or not isinstance(fix_after_n_points, int | np.integer)
                                           or fix_after_n_points < MIN_FIX_AFTER_N_POINTS):
        raise ValueError("fix_after_n_points must be a single number greater than or equal to 12")
    starts = sorted({int(i) for i in rebase} | {0})
    if starts[0] < 0 or starts[-1] >= len(x):
        raise ValueError(f"rebase indices must lie within the series (0 to {len(x) - 1})")
    groups = []
    labels: list[SpecialCauseType] = []
    for start, stop in zip(starts, [*starts[1:], len(x)], strict=True):
        segment = x[start:stop]
        fitted = min(len(segment), fix_after_n_points or len(segment))
        limits = xmr_limits(segment[:fitted], screen_outliers)
        groups.append(SpcGroup(start, stop, limits, fitted))
        labels.extend(special_cause_types(segment, limits))
    return SpcChart(x, direction, tuple(groups), tuple(labels), None if target is None else float(target))


# ---------------------------------------------------------------------------------------------- the original API


@dataclass(frozen=True)
class SpcResult:
    """Special causes of one group judged against ``limits`` (kept for existing callers; see ``xmr_chart``)."""

    limits: Limits
    high: np.ndarray  # the point's label is on the high side (per point)
    low: np.ndarray  # the point's label is on the low side (per point)
    rules_high: dict[Rule, np.ndarray]  # every rule's own flags, before the one-label priority
    rules_low: dict[Rule, np.ndarray]
    special_cause_types: tuple[SpecialCauseType, ...] = field(default=())

    def variation(self, index: int, improvement: ImprovementDirection | str = "decrease") -> Variation:
        return _VARIATION[point_type(self.special_cause_types[index], improvement)]

    def rules_fired(self, index: int, improvement: ImprovementDirection | str = "decrease") -> list[Rule]:
        """The rule behind the point's one label (on either side; ``variation`` says which), or none."""
        rule = self.special_cause_types[index].rule
        return [rule] if rule else []


def special_causes(values: Sequence[float] | np.ndarray, limits: Limits | None = None) -> SpcResult:
    """Label every point of ``values`` against ``limits`` (fixed elsewhere) or limits fitted on ``values``.

    With limits fixed from a baseline, patterns that straddle the baseline and ``values`` are not seen: for
    NHSRplotthedots' ``fix_after_n_points`` semantics pass baseline and new points together to ``xmr_chart``.
    """
    x = _finite(values)
    if limits is None:
        limits = xmr_limits(x)
    labels = special_cause_types(x, limits)
    above, below = outside_limits(x, limits)
    shift_high, shift_low = shift(x, limits)
    trend_high, trend_low = trend(x)
    two_high, two_low = two_in_three(x, limits)
    rules_high = {Rule.OUTSIDE_LIMITS: above, Rule.SHIFT: shift_high, Rule.TREND: trend_high,
                  Rule.TWO_IN_THREE: two_high}
    rules_low = {Rule.OUTSIDE_LIMITS: below, Rule.SHIFT: shift_low, Rule.TREND: trend_low,
                 Rule.TWO_IN_THREE: two_low}
    high = np.array([label.side > 0 for label in labels], dtype=bool)
    low = np.array([label.side < 0 for label in labels], dtype=bool)
    return SpcResult(limits, high, low, rules_high, rules_low, labels)
