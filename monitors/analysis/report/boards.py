"""Every board's year, judged: the monitor's assessment of emergency admissions (as the alerts were raised) and
the report's view of each BCF metric (``metrics.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from bcfwatch.core.boards import load_boards
from bcfwatch.core.plans import BoardPlan
from monitors.alerting.alerts import AlertState
from monitors.alerting.metric_timeline import delayed_attribution, plan_metric_timeline, tables_from_counts
from monitors.alerting.timeline import daily_emergency_admissions, expectation_model
from monitors.analysis.backtest import BacktestResult
from monitors.analysis.report.metrics import (
    Metric,
    MetricView,
    Status,
    count_view,
    emergency_view,
    reablement_view,
)
from monitors.rules.drift import Assessment, DriftRules, Question, assess

DEFAULT_LATENESS_DAYS = 14


@dataclass
class BoardYear:
    plan: BoardPlan
    assessment: Assessment
    alerted: bool


def board_years(result: BacktestResult, plans: dict[str, BoardPlan], plan_year_start: date,
                rules: DriftRules | None = None) -> dict[str, BoardYear]:
    """The monitor's assessment of each board's emergency admissions at the end of the log (the expectations
    and noise the alerts were judged on), for boards with a settled day."""
    daily = daily_emergency_admissions(result.counts)
    alerted = {a.board for a in result.alerts if a.state is AlertState.RAISED and a.question is Question.PLAN_NUMBER}
    model = expectation_model(plans, daily, plan_year_start)
    years = {}
    for code, plan in sorted(plans.items()):
        as_of = result.settled.get(code)
        if as_of is None:
            continue
        actual = daily[code] if code in daily else pd.Series(dtype=float)
        years[code] = BoardYear(plan, assess(plan, actual, plan_year_start, as_of, rules or DriftRules(), model),
                                code in alerted)
    return years


def has_settled_week(years: dict[str, BoardYear], board: str | None = None) -> bool:
    """Whether there is something to chart: ``board``'s plan year, or (no board) a settled week of the plan year
    for any board; without one the report's arithmetic would fail."""
    if board is not None:
        return board in years
    return any(year.assessment.weeks for year in years.values())


@dataclass
class BoardReport:
    code: str
    name: str
    plan: BoardPlan
    assessment: Assessment
    views: dict[Metric, MetricView]

    @property
    def emergency(self) -> MetricView:
        return self.views[Metric.EMERGENCY_ADMISSIONS]

    @property
    def alerted(self) -> list[MetricView]:
        """The metrics with an open plan-number alert."""
        return [view for view in self.views.values() if view.status is Status.ALERTED]


def urgency(view: MetricView) -> tuple:
    """Sort key of an alerted metric, most urgent first: critical before warning, then money at risk."""
    return 0 if view.severity == "critical" else 1, -(view.money_at_risk_gbp or 0.0)


def _column(table: pd.DataFrame, code: str) -> pd.Series:
    return table[code] if code in table else pd.Series(dtype=float)


def board_reports(result: BacktestResult, plans: dict[str, BoardPlan], plan_year_start: date,
                  years: dict[str, BoardYear], lateness_days: int = DEFAULT_LATENESS_DAYS) -> list[BoardReport]:
    """Every judged board with a view of each metric, in code order."""
    counts = result.counts
    names = {b.code: b.name for b in load_boards()}
    emergency = daily_emergency_admissions(counts)
    model = expectation_model(plans, emergency, plan_year_start)
    tables = tables_from_counts(counts)  # the same days x boards tables the alerts were judged on
    delayed, care_homes = tables["delayed_days"], tables["care_home_admissions_65"]
    discharges, at_home = tables["reablement_discharges_65"], tables["at_home_91d"]
    log_start = pd.Timestamp(counts["date"].min()).date() if len(counts) else plan_year_start
    alerts_by_board: dict[str, list] = {}
    for alert in result.alerts:
        alerts_by_board.setdefault(alert.board, []).append(alert)
    judged: dict = {}  # (board, metric) -> the monitor's latest assessment of the other plan metrics
    plan_metric_timeline(plans, tables, plan_year_start, result.metric_settled, latest=judged)
    reports = []
    for code, year in years.items():
        plan, as_of, alerts = year.plan, result.settled[code], alerts_by_board.get(code, [])
        attribution = delayed_attribution(tables, code, plan_year_start, as_of)
        views = {
            Metric.EMERGENCY_ADMISSIONS: emergency_view(plan, year.assessment, _column(emergency, code),
                                                        model.planned_days(plan), alerts),
            Metric.DELAYED_DAYS: count_view(Metric.DELAYED_DAYS, plan, _column(delayed, code), plan_year_start,
                                            as_of, log_start, alerts, attribution,
                                            judged.get((code, Metric.DELAYED_DAYS.value))),
            Metric.CARE_HOME_ADMISSIONS_65: count_view(Metric.CARE_HOME_ADMISSIONS_65, plan,
                                                       _column(care_homes, code), plan_year_start, as_of, log_start,
                                                       alerts, judged=judged.get((code, "care_home_admissions_65"))),
            Metric.REABLEMENT_91D: reablement_view(plan, _column(discharges, code), _column(at_home, code),
                                                   plan_year_start, as_of, lateness_days, alerts,
                                                   judged.get((code, Metric.REABLEMENT_91D.value))),
        }
        reports.append(BoardReport(code, names.get(code, plan.name), plan, year.assessment, views))
    return reports



def funnel_limits(reports: list[BoardReport]) -> dict[str, list[float]]:
    """The funnel plot's limits from the monitor's own noise model: each board's standard deviation of its
    year-to-date variance, fitted across boards as a + b / planned (what a Poisson-plus-extra model gives), at
    z = 1.96 and at the typical alert threshold."""
    planned = np.array([r.assessment.planned_ytd for r in reports])
    spread = np.array([r.assessment.ytd_sd_pct for r in reports])
    finite = [r.assessment.threshold for r in reports if np.isfinite(r.assessment.threshold)]
    threshold = float(np.median(finite)) if finite else 3.0  # before any verdict: about what h is
    usable = (planned > 0) & (spread > 0)
    if not usable.any():
        return {"size": [], "sd": [], "threshold": [threshold]}
    size = np.geomspace(max(planned[usable].min(), 1), planned.max(), 60)
    design = np.column_stack([1 / planned[usable], np.ones(usable.sum())])
    a, b = np.maximum(np.linalg.lstsq(design, spread[usable] ** 2, rcond=None)[0], 0.0)
    return {"size": [float(s) for s in size], "sd": [float(v) for v in np.sqrt(a / size + b)],
            "threshold": [threshold]}
