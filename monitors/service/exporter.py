"""Board metrics for Prometheus, refreshed by the monitor after each evaluation round.

One label, ``board`` (ONS code), plus ``window`` on the admissions gauges: 151
boards x (4 windows x 2 + 11) series, all created at start-up; the other plan metrics'
gauges add ``metric`` (delayed_days, care_home_admissions_65, reablement_91d): 151 x 3
series each. Ratios are plain ratios (0.05 = 5%), money is in pounds, times in seconds.
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
from prometheus_client import Counter, Gauge

from bcfwatch.core.plans import BoardPlan
from monitors.rules.baseline import baseline_model
from monitors.rules.drift import Assessment
from monitors.rules.plan_metrics import MetricAssessment, PlanMetric
from monitors.rules.spc import Assurance, Variation
from streams.views import windows

WINDOWS = ("rolling_28_days", "month_to_date", "quarter_to_date", "financial_year_to_date")
SPC_STATE = {Variation.SPECIAL_CAUSE_CONCERN: 1, Variation.COMMON_CAUSE: 0, Variation.SPECIAL_CAUSE_IMPROVEMENT: -1,
             Variation.SPECIAL_CAUSE_NEUTRAL_HIGH: 0,
             Variation.SPECIAL_CAUSE_NEUTRAL_LOW: 0}  # neutral: not used for admissions
ASSURANCE = {Assurance.CONSISTENTLY_HIT: 1, Assurance.HIT_AND_MISS: 0, Assurance.CONSISTENTLY_MISSED: -1}

ADMISSIONS = Gauge("bcf_emergency_admissions", "Emergency admissions in the window ending on the last settled day",
                   ["board", "window"])
ADMISSIONS_PLANNED = Gauge("bcf_emergency_admissions_planned", "Planned emergency admissions in the same window",
                           ["board", "window"])
VARIANCE = Gauge("bcf_emergency_admissions_variance_ratio",
                 "Year-to-date emergency admissions against plan (actual / planned - 1)", ["board"])
WEEKLY_VARIANCE = Gauge("bcf_weekly_emergency_admissions_variance_ratio",
                        "Latest settled week's emergency admissions against plan (actual / planned - 1)", ["board"])
SPC_MEAN = Gauge("bcf_spc_mean_ratio", "SPC centre line of the weekly variance", ["board"])
SPC_UPPER = Gauge("bcf_spc_upper_limit_ratio", "SPC upper process limit of the weekly variance", ["board"])
SPC_LOWER = Gauge("bcf_spc_lower_limit_ratio", "SPC lower process limit of the weekly variance", ["board"])
SPC_SPECIAL_CAUSE = Gauge("bcf_spc_special_cause",
                          "Latest week: 1 special cause (concern), 0 common cause, -1 special cause (improvement)",
                          ["board"])
SPC_ASSURANCE = Gauge("bcf_spc_assurance", "1 consistently hitting plan, 0 hit and miss, -1 consistently missing",
                      ["board"])
PROJECTED = Gauge("bcf_projected_year_end_emergency_admissions", "Projected emergency admissions at year end",
                  ["board"])
PLANNED_YEAR_END = Gauge("bcf_planned_year_end_emergency_admissions",
                         "The plan number: planned emergency admissions for the year (the plan file's)", ["board"])
MONEY_AT_RISK = Gauge("bcf_money_at_risk_gbp", "Projected admissions above plan x unit cost", ["board"])
OPEN_ALERTS = Gauge("bcf_open_alerts", "Open drift alerts", ["board"])
SETTLED_DAY = Gauge("bcf_settled_day_timestamp_seconds", "Last settled day of the board's counts", ["board"])
PLAN_METRIC_YEAR_TO_DATE = Gauge("bcf_plan_metric_year_to_date", "Another plan metric's year to date: delayed "
                                 "days, care-home admissions 65+, or reablement's % at home", ["board", "metric"])
PLAN_METRIC_PLANNED = Gauge("bcf_plan_metric_planned_year_to_date", "The plan for the same months (reablement: the "
                            "target, %)", ["board", "metric"])
PLAN_METRIC_VARIANCE = Gauge("bcf_plan_metric_variance_ratio", "Year to date / plan - 1 (reablement: share - target)",
                             ["board", "metric"])
PLAN_METRIC_Z = Gauge("bcf_plan_metric_z", "The year to date's z in the direction of concern", ["board", "metric"])
PLAN_METRIC_PROJECTED = Gauge("bcf_plan_metric_projected_year_end", "Projected year end (reablement: % at home)",
                              ["board", "metric"])
PLAN_METRIC_OPEN_ALERTS = Gauge("bcf_plan_metric_open_alerts", "Open plan-number alerts of the metric (0 or 1)",
                                ["board", "metric"])
PLAN_METRIC_GAUGES = (PLAN_METRIC_YEAR_TO_DATE, PLAN_METRIC_PLANNED, PLAN_METRIC_VARIANCE, PLAN_METRIC_Z,
                      PLAN_METRIC_PROJECTED, PLAN_METRIC_OPEN_ALERTS)
EVALUATIONS = Counter("bcf_monitor_evaluations", "Monitor evaluation rounds")
LAST_EVALUATION = Gauge("bcf_monitor_last_evaluation_timestamp_seconds", "When the monitor last evaluated")


def initialise(boards: list[str]) -> None:
    for board in boards:
        for window in WINDOWS:
            ADMISSIONS.labels(board, window)
            ADMISSIONS_PLANNED.labels(board, window)
        for gauge in (VARIANCE, WEEKLY_VARIANCE, SPC_MEAN, SPC_UPPER, SPC_LOWER, SPC_SPECIAL_CAUSE, SPC_ASSURANCE,
                      PROJECTED, PLANNED_YEAR_END, MONEY_AT_RISK, OPEN_ALERTS, SETTLED_DAY):
            gauge.labels(board)
        for metric in PlanMetric:
            for plan_gauge in PLAN_METRIC_GAUGES:
                plan_gauge.labels(board, metric.value)


def update(plans: dict[str, BoardPlan], daily: pd.DataFrame, settled: dict[str, date],
           assessments: dict[str, Assessment], open_alerts: set[str], plan_year_start: date) -> None:
    """Every board's open alerts; the windows and the latest assessment of the boards in ``settled``.

    ``plans``: every board's (the model is fitted on all of them, as the alerts' is, and so is the one the
    monitor's round has just fitted and cached: a subset would be a different model, fitted again each round)."""
    model = baseline_model(plans, daily, plan_year_start)
    for board, plan in plans.items():
        OPEN_ALERTS.labels(board).set(1 if board in open_alerts else 0)
        as_of = settled.get(board)
        if as_of is None:
            continue
        SETTLED_DAY.labels(board).set(pd.Timestamp(as_of).timestamp())
        actual = daily[board].to_numpy() if board in daily else np.zeros(0)
        planned = model.planned_days(plan)
        planned_values = planned.to_numpy()
        spans = windows(as_of)
        for window in WINDOWS:
            start, end = spans[window]
            ADMISSIONS.labels(board, window).set(_window_sum(daily.index, actual, start, end))
            ADMISSIONS_PLANNED.labels(board, window).set(_window_sum(planned.index, planned_values, start, end))
        assessment = assessments.get(board)
        if assessment is None or assessment.weeks == 0:
            continue
        VARIANCE.labels(board).set(assessment.variance_pct / 100)
        WEEKLY_VARIANCE.labels(board).set(float(assessment.series.variance[-1]))
        if assessment.limits is not None:
            SPC_MEAN.labels(board).set(assessment.limits.mean)
            SPC_UPPER.labels(board).set(assessment.limits.upper)
            SPC_LOWER.labels(board).set(assessment.limits.lower)
        SPC_SPECIAL_CAUSE.labels(board).set(SPC_STATE[assessment.variation])
        SPC_ASSURANCE.labels(board).set(ASSURANCE[assessment.assurance])
        PROJECTED.labels(board).set(assessment.projected_year_end)
        PLANNED_YEAR_END.labels(board).set(assessment.planned_year_end)
        MONEY_AT_RISK.labels(board).set(assessment.money_at_risk_gbp)
    mark_evaluated()


def _window_sum(days: pd.Index, values: np.ndarray, start: date, end: date) -> float:
    """The sum of ``values`` (one per day of the sorted ``days``) from ``start`` to ``end``, both included: a
    label slice's, without building the slice."""
    if len(values) == 0:
        return 0.0
    first, last = days.searchsorted(pd.Timestamp(start)), days.searchsorted(pd.Timestamp(end), side="right")
    return float(values[first:last].sum())


def update_plan_metrics(latest: dict[tuple[str, str], MetricAssessment], open_alerts: set[tuple[str, str]]) -> None:
    """The other plan metrics' latest looks (``(board, metric)`` -> assessment) and open alerts."""
    for (board, metric), assessment in latest.items():
        ratio = assessment.variance_pct / 100
        for gauge, value in ((PLAN_METRIC_YEAR_TO_DATE, assessment.actual_ytd),
                             (PLAN_METRIC_PLANNED, assessment.planned_ytd), (PLAN_METRIC_VARIANCE, ratio),
                             (PLAN_METRIC_Z, assessment.z), (PLAN_METRIC_PROJECTED, assessment.projected_year_end)):
            gauge.labels(board, metric).set(float(value))
    for board, metric in {*latest, *open_alerts}:
        PLAN_METRIC_OPEN_ALERTS.labels(board, metric).set(1 if (board, metric) in open_alerts else 0)


def mark_evaluated() -> None:
    """One evaluation round done (whether or not any board had a newly settled day)."""
    EVALUATIONS.inc()
    LAST_EVALUATION.set(time.time())


