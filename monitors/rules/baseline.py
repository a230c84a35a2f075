"""What the baseline year tells the drift monitor: each board's expected plan-year days and its noise.

:func:`baseline_model` is computed from the same days x boards emergency
admissions table that both the live monitor and the backtest hand to
``monitors/alerting/timeline.py`` (``daily_emergency_admissions``), with the same code,
so both judge every week against the same expectation. It reads only the
baseline year (the financial year before the plan year), for every plan board:

* the daily **pattern** (``monitors/rules/profile.py``), national with board-level
  day-type effects where the board's volume supports them;
* the **noise** (``monitors/rules/noise.py``) from baseline-year weekly residuals against it.

Which question a test answers is the drift rule's choice (``monitors/rules/drift.py``, ``Question``), never a
match between the plan's quarters and the counts.

Without a whole baseline year in the table (the table must start within a week
of the baseline year's first day and reach its last day, with some admissions),
the pattern and noise fall back to the documented national defaults and every
assessment says so (``expected_pattern``, ``noise_source``).

Models are cached by the content of the table's baseline-year rows, so the live
monitor fits once, not every round.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from bcfwatch.core.calendar import complete_weeks, quarter_of_weeks, year_days, year_earlier
from bcfwatch.core.plans import BoardPlan
from monitors.rules.noise import DEFAULT_NOISE, Noise, fit_noise, quarter_sum_variance
from monitors.rules.profile import Pattern, fit_pattern
from monitors.rules.trajectory import quarter_anchored


def weekly_sums(values: np.ndarray, span: slice) -> np.ndarray:
    """Sum the last axis over the complete weeks of ``span``."""
    window = values[..., span]
    return window.reshape(*window.shape[:-1], -1, 7).sum(axis=-1)


@dataclass
class BaselineModel:
    plan_year_start: date
    pattern: Pattern
    noise: Noise
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def baseline_start(self) -> date:
        return year_earlier(self.plan_year_start)

    def expected_days(self, plan: BoardPlan, year_start: date) -> pd.Series:
        """Expected emergency admissions per day of the year starting ``year_start`` at the plan's
        baseline rate (multiply by 1 - planned reduction for the plan trajectory)."""
        key = ("days", plan, year_start)
        if key not in self._cache:
            baseline = year_days(self.baseline_start)
            days = year_days(year_start)
            values = quarter_anchored(np.asarray(plan.baseline_emergency_by_quarter, dtype=float), baseline,
                                      self.pattern.relative(plan.board, baseline), days,
                                      self.pattern.relative(plan.board, days))
            self._cache[key] = pd.Series(values, index=days, name=plan.board)
        return self._cache[key]

    def planned_days(self, plan: BoardPlan) -> pd.Series:
        """The plan trajectory: expected emergency admissions per day of the plan year, summing to the plan
        number (the plan file's planned emergency admissions). Its shape is the baseline quarters carried to
        the plan year's calendar; the plan number is fixed, so the calendar moves admissions within the year,
        never the total. Computed once per plan (the same series for every caller: read it, do not change it)."""
        def compute() -> pd.Series:
            expected = self.expected_days(plan, self.plan_year_start)
            total = float(expected.sum())
            return expected * (plan.planned_emergency / total) if total > 0 else expected

        return self.cached(("planned days", plan), compute)

    def baseline_quarter_variance(self, plan: BoardPlan) -> np.ndarray:
        """Relative variance of each of the plan's baseline quarters as a count of one year: the noise the
        plan's baseline carries when asking whether the underlying rate moved (whatever extract it was cut
        from: a plan's baseline is always some year's count)."""
        days = year_days(self.baseline_start)
        span = complete_weeks(days)
        expected = weekly_sums(self.expected_days(plan, self.baseline_start).to_numpy(), span)
        season_mode = weekly_sums(self.pattern.seasonal_modes(days)[0], span) / 7
        return quarter_sum_variance(self.noise, plan.board, expected, quarter_of_weeks(days, span), season_mode)

    def cached(self, key: tuple, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


_MODELS: OrderedDict[tuple, BaselineModel] = OrderedDict()


def baseline_model(plans: dict[str, BoardPlan], daily: pd.DataFrame, plan_year_start: date) -> BaselineModel:
    """The model for these plans from the table's baseline-year rows (cached by their content)."""
    baseline_start = year_earlier(plan_year_start)
    days = year_days(baseline_start)
    codes = sorted(plans)
    block = _baseline_block(daily, days, codes)
    digest = hashlib.blake2b(block.tobytes() if block is not None else b"none", digest_size=16)
    digest.update(repr((plan_year_start, codes)).encode())
    key = (digest.hexdigest(),)
    if key in _MODELS:
        _MODELS.move_to_end(key)
        return _MODELS[key]
    model = _fit(block, days, codes, plan_year_start)
    _MODELS[key] = model
    while len(_MODELS) > 8:
        _MODELS.popitem(last=False)
    return model


def _baseline_block(daily: pd.DataFrame, days: pd.DatetimeIndex, codes: list[str]) -> np.ndarray | None:
    """(days x boards) baseline-year counts, or None without a whole baseline year in the table."""
    if daily is None or daily.empty:
        return None
    index = pd.DatetimeIndex(daily.index)
    if index[0] > days[0] + timedelta(days=7) or index[-1] < days[-1]:
        return None
    table = daily.reindex(index=days, columns=codes, fill_value=0).fillna(0)
    values = np.ascontiguousarray(table.to_numpy(dtype=np.int64))
    return values if values.sum() > 0 else None


def _fit(block: np.ndarray | None, days: pd.DatetimeIndex, codes: list[str], plan_year_start: date) -> BaselineModel:
    if block is None:
        return BaselineModel(plan_year_start, Pattern("national default"), DEFAULT_NOISE)
    present = block.sum(axis=0) > 0
    table = pd.DataFrame(block[:, present], index=days, columns=[c for c, p in zip(codes, present, strict=True) if p])
    pattern = fit_pattern(table)
    span = complete_weeks(days)
    counts = table.to_numpy(dtype=float).T  # boards x days
    relative = np.array([pattern.relative(code, days) for code in table.columns])
    expected = relative / relative.sum(axis=1, keepdims=True) * counts.sum(axis=1, keepdims=True)
    noise = fit_noise(weekly_sums(counts, span), weekly_sums(expected, span), quarter_of_weeks(days, span),
                      list(table.columns), weekly_sums(pattern.seasonal_modes(days)[0], span) / 7)
    return BaselineModel(plan_year_start, pattern, noise)
