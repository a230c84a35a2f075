"""What the report shows for each board and metric, as plain data: the SPC series, the cumulative year against
the plan trajectory with the year-end projection, the status and its one-sentence reason.

Emergency admissions are shown exactly as the monitor judged them (``monitors.rules.drift.Assessment``, the
same noise model, the same alerts). The other three BCF metrics take their status from their own alerts
(``monitors/rules/plan_metrics.py``, raised in the same timeline) when they have one; their charts and the
descriptive projection below show the whole plan:

* **Delayed days** and **permanent care-home admissions 65+**: months (complete ones) as a rate per day, an
  XmR chart with limits fixed on the baseline year's 12 months (NHSRplotthedots ``fix_after_n_points``) and
  the plan's rate per day as the target. The plan trajectory spreads the plan's year total over the plan year
  in the shape of the baseline year's cumulative counts (linearly without a whole baseline year). The
  projection carries the year-to-date ratio to plan to the rest of the year; its 90% interval takes the
  month-to-month spread of the XmR chart (sigma = MR-bar / 1.128) as the noise of each remaining month and of
  the ratio's estimate, months independent. Delayed days run in episodes, so that interval is optimistic.
* **Reablement at 91 days**: monthly discharge cohorts, settled only (the cohort's last day + 91 days +
  the lateness before the board's last settled day), as the share at home; target ``reablement_target``,
  higher is better. The projection is the year-to-date share, its interval binomial (the share's estimate
  and the remaining cohorts, sized as the baseline year's).

A metric with fewer than :data:`TOO_FEW` expected events to date says "too few to judge yet" rather than
guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum

import numpy as np
import pandas as pd

from bcfwatch.core.calendar import year_days, year_earlier
from bcfwatch.core.plans import BoardPlan
from monitors.alerting.alerts import Alert, AlertState
from monitors.rules.drift import METRIC, Assessment, Question
from monitors.rules.plan_metrics import Judgement, MetricAssessment, PlanMetric
from monitors.rules.spc import ImprovementDirection, PointType, xmr_chart

Z90 = 1.6448536269514722  # two-sided 90%
D2 = 1.128  # E[moving range] / sigma for a moving range of two
TOO_FEW = 20  # expected events (or settled cohort members) to date below which a metric is not judged


class Metric(StrEnum):
    """The four BCF plan metrics as the report shows them (the names alerts carry: ``drift.METRIC`` and
    ``plan_metrics.PlanMetric``)."""

    EMERGENCY_ADMISSIONS = METRIC
    DELAYED_DAYS = PlanMetric.DELAYED_DAYS.value
    CARE_HOME_ADMISSIONS_65 = PlanMetric.CARE_HOME_ADMISSIONS_65.value
    REABLEMENT_91D = PlanMetric.REABLEMENT_91D.value

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Metric.EMERGENCY_ADMISSIONS: "Emergency admissions",
    Metric.DELAYED_DAYS: "Delayed transfers of care (delayed days)",
    Metric.CARE_HOME_ADMISSIONS_65: "Permanent care-home admissions 65+",
    Metric.REABLEMENT_91D: "Reablement 65+: at home 91 days after discharge",
}


class Status(StrEnum):
    """One word for where a board stands on a metric (the table's filter), ordered from most to least urgent."""

    ALERTED = "alerted"
    RESOLVED = "alert resolved"
    PROJECTED_MISS = "projected to miss plan"
    WITHIN_NOISE = "within noise of plan"
    ON_TRACK = "on track"
    TOO_FEW = "too few to judge yet"

    @property
    def rank(self) -> int:
        return list(Status).index(self)


@dataclass(frozen=True)
class SpcSeries:
    """An XmR chart's points: period labels (ISO dates of each period's first day), values, limits per point
    (None where undefined), NHSRplotthedots point types, the target (None without one)."""

    periods: list[str]
    values: list[float]
    mean: list[float | None]
    lower: list[float | None]
    upper: list[float | None]
    point_types: list[PointType]
    target: float | None
    unit: str
    variation: str
    assurance: str


@dataclass(frozen=True)
class Cumulative:
    """The year to date against the plan trajectory, and the projection's fan at the year end."""

    days: list[str]  # ISO dates the actual line passes through (the last is the last settled day)
    actual: list[float]
    plan_days: list[str]  # the whole plan year, sampled
    plan: list[float]
    year_end: str
    projected: float
    low: float
    high: float
    planned_year_end: float
    unit: str


@dataclass(frozen=True)
class AlertEvent:
    day: date
    state: str
    severity: str
    question: str
    variance_pct: float
    money_at_risk_gbp: float = 0.0


@dataclass(frozen=True)
class MetricView:
    metric: Metric
    status: Status
    reason: str  # one sentence: the question answered (or the projection), the variance, the SPC verdict
    variance_pct: float | None  # year to date against the plan (points for reablement)
    projected: float | None
    projected_low: float | None
    projected_high: float | None
    planned_year_end: float | None
    money_at_risk_gbp: float | None
    severity: str | None
    spc: SpcSeries | None
    cumulative: Cumulative | None
    alerts: list[AlertEvent] = field(default_factory=list)

    @property
    def variation(self) -> str:
        return self.spc.variation if self.spc else "not enough data"

    @property
    def assurance(self) -> str:
        return self.spc.assurance if self.spc else "not enough data"


# ------------------------------------------------------------------------------------------- shared pieces


def _optional(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def _spc(periods: pd.DatetimeIndex, values: np.ndarray, baseline_points: int, target: float | None,
         improvement: ImprovementDirection, unit: str) -> SpcSeries | None:
    """NHSRplotthedots' chart of ``values``, limits fixed on the first ``baseline_points`` when there are at least
    12 of them and points after them (otherwise fitted on every point)."""
    if len(values) < 2:
        return None
    fix = baseline_points if 12 <= baseline_points < len(values) else None
    chart = xmr_chart(values, improvement=improvement, fix_after_n_points=fix, target=target)
    limits = [chart.limits_at(i) for i in range(len(values))]
    assurance = chart.assurance
    return SpcSeries(
        periods=[p.date().isoformat() for p in periods], values=[float(v) for v in values],
        mean=_optional(np.array([lim.mean for lim in limits])),
        lower=_optional(np.array([lim.lower for lim in limits])),
        upper=_optional(np.array([lim.upper for lim in limits])), point_types=list(chart.point_types),
        target=target, unit=unit, variation=str(chart.variation(len(values) - 1)),
        assurance=str(assurance) if assurance is not None else "no target")


def _alert_events(alerts: list[Alert], metric: str) -> list[AlertEvent]:
    return [AlertEvent(a.as_of, str(a.state), str(a.severity), str(a.question), a.variance_pct,
                       a.money_at_risk_gbp) for a in alerts if a.metric == metric]


def _attributed(attribution: dict[str, float]) -> str:
    """The clause naming delayed days' shares (``delayed_attribution``: % by nhs, social_care, both)."""
    return (f"; attributed NHS {attribution.get('nhs', 0):.0f}%, social care "
            f"{attribution.get('social_care', 0):.0f}%, both {attribution.get('both', 0):.0f}%")


def _with_monitor(view: MetricView, judged: MetricAssessment | None) -> MetricView:
    """The view with the monitor's own numbers (``plan_metrics``): year to date, z, projection and interval,
    and a status from them, where the monitor has judged the metric (the report's charts stay as drawn)."""
    if judged is None or judged.judgement is not Judgement.JUDGED:
        return view
    reablement = view.metric is Metric.REABLEMENT_91D
    unit, points = ("%", " points") if reablement else ("", "%")
    status = (Status.PROJECTED_MISS if judged.z >= judged.threshold else
              Status.WITHIN_NOISE if judged.z > 0 else Status.ON_TRACK)
    lead = {Status.PROJECTED_MISS: "Off plan to date beyond the alert threshold",
            Status.WITHIN_NOISE: "Worse than plan to date, within noise", Status.ON_TRACK: "On track"}[status]
    spc = f"; SPC: {view.spc.variation}, {view.spc.assurance}" if view.spc else ""
    spc += _attributed(judged.attribution) if judged.attribution else ""
    reason = (f"{lead}: {judged.actual_ytd:,.1f}{unit} to date against {judged.planned_ytd:,.1f}{unit} planned "
              f"({judged.variance_pct:+.1f}{points}, z {judged.z:.1f}, threshold {judged.threshold:.1f}); projected "
              f"{judged.projected_year_end:,.1f}{unit} ({judged.projected_year_end_low:,.1f} to "
              f"{judged.projected_year_end_high:,.1f}) against {judged.planned_year_end:,.1f}{unit}{spc}.")
    cumulative = view.cumulative and replace(view.cumulative, projected=judged.projected_year_end,
                                             low=judged.projected_year_end_low, high=judged.projected_year_end_high)
    return replace(view, status=status, reason=reason, variance_pct=judged.variance_pct,
                   projected=judged.projected_year_end, projected_low=judged.projected_year_end_low,
                   projected_high=judged.projected_year_end_high, cumulative=cumulative)


def _from_alerts(view: MetricView) -> MetricView:
    """The view with the status its latest plan-number alert gives (alerted or resolved), when it has one."""
    primary = [a for a in view.alerts if a.question == Question.PLAN_NUMBER.value]
    if not primary:
        return view
    latest = primary[-1]
    if latest.state == AlertState.RESOLVED.value:
        return replace(view, status=Status.RESOLVED,
                       reason=f"Alerted earlier this year, now within noise. {view.reason}")
    lead = "Expected to miss its target" if view.metric is Metric.REABLEMENT_91D else "Expected to miss its plan"
    return replace(view, status=Status.ALERTED, severity=latest.severity,
                   money_at_risk_gbp=latest.money_at_risk_gbp or None,
                   reason=f"{lead} (alerted {latest.day.isoformat()}, {latest.variance_pct:+.1f}"
                          f"{' points' if view.metric is Metric.REABLEMENT_91D else '%'} then). {view.reason}")


def _sampled(days: pd.DatetimeIndex, values: np.ndarray, step: int = 7) -> tuple[list[str], list[float]]:
    """Every ``step``-th day and the last one: enough for a cumulative line, a fraction of the bytes."""
    if len(days) == 0:
        return [], []
    keep = sorted(set(range(step - 1, len(days), step)) | {len(days) - 1})
    return [days[i].date().isoformat() for i in keep], [float(values[i]) for i in keep]


# ------------------------------------------------------------------------------------ emergency admissions


def emergency_view(plan: BoardPlan, assessment: Assessment, actual_daily: pd.Series, planned_daily: pd.Series,
                   alerts: list[Alert]) -> MetricView:
    """The monitor's own judgement of a board's emergency admissions (``alerts``: the board's alert events)."""
    metric = Metric.EMERGENCY_ADMISSIONS
    events = _alert_events(alerts, metric)
    primary = [a for a in alerts if a.metric == metric and a.question is Question.PLAN_NUMBER]
    latest = primary[-1] if primary else None
    status = _emergency_status(assessment, latest)
    weekly = assessment.weekly()
    spc = None
    if len(weekly):
        high = weekly["special_cause_high"].to_numpy(bool) if "special_cause_high" in weekly else np.zeros(len(weekly),
                                                                                                             bool)
        low = weekly["special_cause_low"].to_numpy(bool) if "special_cause_low" in weekly else np.zeros(len(weekly),
                                                                                                          bool)
        types = [PointType.SPECIAL_CAUSE_CONCERN if h else PointType.SPECIAL_CAUSE_IMPROVEMENT if lo
                 else PointType.COMMON_CAUSE for h, lo in zip(high, low, strict=True)]
        column = weekly.get
        spc = SpcSeries(
            periods=[p.date().isoformat() for p in weekly["start"]], values=list(weekly["variance"] * 100),
            mean=_optional(column("mean", pd.Series(np.nan, index=weekly.index)).to_numpy(float) * 100),
            lower=_optional(column("lower", pd.Series(np.nan, index=weekly.index)).to_numpy(float) * 100),
            upper=_optional(column("upper", pd.Series(np.nan, index=weekly.index)).to_numpy(float) * 100),
            point_types=types, target=0.0, unit="% vs plan (weekly)", variation=str(assessment.variation),
            assurance=str(assessment.assurance))
    days = planned_daily.index
    settled_days = days[days <= pd.Timestamp(assessment.as_of)] if assessment.as_of else days[:0]
    actual = actual_daily.reindex(settled_days, fill_value=0).to_numpy(float).cumsum()
    actual_days, actual_values = _sampled(settled_days, actual)
    plan_days, plan_values = _sampled(days, planned_daily.to_numpy(float).cumsum())
    cumulative = (Cumulative(actual_days, actual_values, plan_days, plan_values, days[-1].date().isoformat(),
                             assessment.projected_year_end, assessment.projected_year_end_low,
                             assessment.projected_year_end_high, assessment.planned_year_end, "admissions")
                  if actual_days else None)
    return MetricView(metric, status, _emergency_reason(assessment, status), assessment.variance_pct,
                      assessment.projected_year_end, assessment.projected_year_end_low,
                      assessment.projected_year_end_high, assessment.planned_year_end,
                      assessment.money_at_risk_gbp, str(latest.severity) if latest and status is Status.ALERTED
                      else None, spc, cumulative, events)


def _emergency_status(assessment: Assessment, latest: Alert | None) -> Status:
    """From the plan-number alert's latest state (what alerts.jsonl says), else from the assessment."""
    if latest is not None:
        return Status.RESOLVED if latest.state is AlertState.RESOLVED else Status.ALERTED
    if assessment.weeks == 0:
        return Status.TOO_FEW
    return Status.WITHIN_NOISE if assessment.variance_pct > 0 else Status.ON_TRACK


def _emergency_reason(a: Assessment, status: Status) -> str:
    projection = (f"projected {a.projected_year_end:,.0f} ({a.projected_year_end_low:,.0f} to "
                  f"{a.projected_year_end_high:,.0f}) against a plan number of {a.planned_year_end:,.0f}")
    variance = f"{a.variance_pct:+.1f}% vs plan to date (z {a.z:.1f})"
    spc = f"SPC: {a.variation}, {a.assurance}"
    if status is Status.ALERTED:
        window = "the year to date" if a.window_weeks == 0 else f"the latest {a.window_weeks} weeks"
        return (f"Expected to miss its plan number: {variance}, {window} beyond its threshold of z "
                f"{a.threshold:.1f}; {projection}; {spc}.")
    if status is Status.RESOLVED:
        return f"Alerted earlier this year, now within noise of its plan number: {variance}; {projection}; {spc}."
    if status is Status.TOO_FEW:
        return "No settled week of the plan year yet."
    lead = ("Over plan to date but within noise: not (yet) expected to miss its plan number"
            if status is Status.WITHIN_NOISE else "On track for its plan number")
    return f"{lead}: {variance}; {projection}; {spc}."


# -------------------------------------------------------------------------- delayed days and care homes


def _months(days: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """First days of the complete calendar months within ``days``."""
    if len(days) == 0:
        return pd.DatetimeIndex([])
    starts = pd.date_range(days[0], days[-1], freq="MS")
    return pd.DatetimeIndex([s for s in starts if s + pd.offsets.MonthEnd(0) <= days[-1]])


def _monthly_rate(daily: pd.Series, months: pd.DatetimeIndex) -> np.ndarray:
    """Each month's count per day."""
    return np.array([daily[m: m + pd.offsets.MonthEnd(0)].mean() for m in months], dtype=float)


def _plan_shape(baseline: pd.Series, plan_days: pd.DatetimeIndex) -> np.ndarray:
    """The plan year's cumulative share of the year total by day: the baseline year's, or linear without a
    whole baseline year (or with an empty one)."""
    linear = np.arange(1, len(plan_days) + 1) / len(plan_days)
    if len(baseline) < 365 or baseline.sum() <= 0:
        return linear
    shape = baseline.to_numpy(float).cumsum() / baseline.sum()
    return np.interp(np.linspace(0, 1, len(plan_days)), np.linspace(0, 1, len(shape)), shape)


def count_view(metric: Metric, plan: BoardPlan, daily: pd.Series, plan_year_start: date, as_of: date,
               log_start: date, alerts: list[Alert], attribution: dict[str, float] | None = None,
               judged: MetricAssessment | None = None) -> MetricView:
    """Delayed days or care-home admissions 65+ (``daily``: the board's daily counts, days without events 0;
    ``log_start``: the log's first day, to tell a whole baseline year from a partial one; ``attribution``: the
    plan year's delayed days to date, % by nhs, social_care, both)."""
    planned_total = float(plan.planned_delayed_days if metric is Metric.DELAYED_DAYS
                          else plan.planned_care_home_admissions_65)
    unit = "delayed days" if metric is Metric.DELAYED_DAYS else "admissions"
    baseline_days, plan_days = year_days(year_earlier(plan_year_start)), year_days(plan_year_start)
    seen = pd.DatetimeIndex(sorted(set(baseline_days) | set(plan_days)))
    daily = daily.reindex(seen, fill_value=0).astype(float)
    settled = seen[seen <= pd.Timestamp(as_of)]
    months = _months(settled)
    baseline_months = int((months < pd.Timestamp(plan_year_start)).sum())
    target = planned_total / len(plan_days)
    spc = _spc(months, _monthly_rate(daily, months), baseline_months, target, ImprovementDirection.DECREASE,
               f"{unit} per day (monthly)")
    shape = _plan_shape(daily[baseline_days] if log_start <= baseline_days[0].date() else pd.Series(dtype=float),
                        plan_days)
    plan_cumulative = planned_total * shape
    to_date = plan_days[plan_days <= pd.Timestamp(as_of)]
    actual = daily[to_date].to_numpy(float).cumsum()
    planned_ytd = float(plan_cumulative[len(to_date) - 1]) if len(to_date) else 0.0
    actual_ytd = float(actual[-1]) if len(actual) else 0.0
    spread = _relative_month_sd(spc)
    projected, low, high = _ratio_projection(actual_ytd, planned_ytd, planned_total, spread,
                                             months_done=len(to_date) / 30.44,
                                             months_left=(len(plan_days) - len(to_date)) / 30.44)
    status = _projected_status(planned_ytd, low, high, planned_total, higher_is_better=False)
    variance = (actual_ytd / planned_ytd - 1) * 100 if planned_ytd > 0 else None
    actual_days, actual_values = _sampled(to_date, actual)
    plan_day_labels, plan_values = _sampled(plan_days, plan_cumulative)
    cumulative = (Cumulative(actual_days, actual_values, plan_day_labels, plan_values,
                             plan_days[-1].date().isoformat(), projected, low, high, planned_total, unit)
                  if len(to_date) else None)
    reason = _count_reason(status, actual_ytd, planned_ytd, projected, low, high, planned_total, spc)
    if attribution and status is not Status.TOO_FEW:
        reason = f"{reason[:-1]}{_attributed(attribution)}."
    view = MetricView(metric, status, reason, variance, projected if len(to_date) else None,
                      low if len(to_date) else None, high if len(to_date) else None, planned_total, None, None, spc,
                      cumulative, _alert_events(alerts, metric))
    return _from_alerts(_with_monitor(view, judged))


def _relative_month_sd(spc: SpcSeries | None) -> float:
    """The XmR chart's sigma (MR-bar / 1.128) relative to its mean: the spread of one month's rate."""
    if spc is None or spc.mean[-1] is None or spc.upper[-1] is None or not spc.mean[-1]:
        return 0.0
    mr_bar = (spc.upper[-1] - spc.mean[-1]) / 2.66
    return float(mr_bar / D2 / abs(spc.mean[-1]))


def _ratio_projection(actual_ytd: float, planned_ytd: float, planned_total: float, relative_sd: float,
                      months_done: float, months_left: float) -> tuple[float, float, float]:
    """The year end if the ratio of actual to plan so far holds, with a 90% interval (see the module doc)."""
    if planned_ytd <= 0:
        return planned_total, planned_total, planned_total
    ratio = actual_ytd / planned_ytd
    remaining = (planned_total - planned_ytd) * ratio
    projected = actual_ytd + remaining
    if months_left <= 0:
        return projected, projected, projected
    sd = remaining * relative_sd * math.sqrt(1 / max(months_done, 1) + 1 / months_left)
    return projected, projected - Z90 * sd, projected + Z90 * sd


def _projected_status(expected_to_date: float, low: float, high: float, plan: float,
                      higher_is_better: bool) -> Status:
    if expected_to_date < TOO_FEW:
        return Status.TOO_FEW
    worse = high < plan if higher_is_better else low > plan
    better = low >= plan if higher_is_better else high <= plan
    return Status.PROJECTED_MISS if worse else Status.ON_TRACK if better else Status.WITHIN_NOISE


def _count_reason(status: Status, actual_ytd: float, planned_ytd: float, projected: float, low: float,
                  high: float, planned_total: float, spc: SpcSeries | None) -> str:
    if status is Status.TOO_FEW:
        return (f"Too few to judge yet: {actual_ytd:,.0f} to date against {planned_ytd:,.1f} planned "
                f"(fewer than {TOO_FEW} expected).")
    lead = {Status.PROJECTED_MISS: "Projected to miss its plan", Status.ON_TRACK: "On track for its plan",
            Status.WITHIN_NOISE: "Within noise of its plan"}[status]
    text = (f"{lead}: {actual_ytd:,.0f} to date against {planned_ytd:,.0f} planned "
            f"({(actual_ytd / planned_ytd - 1) * 100:+.1f}%), projected {projected:,.0f} ({low:,.0f} to "
            f"{high:,.0f}) against {planned_total:,.0f}; SPC: {spc.variation if spc else 'too few months'}, "
            f"{spc.assurance if spc else 'no assurance yet'}")
    return text + "."


# -------------------------------------------------------------------------------------------- reablement


def reablement_view(plan: BoardPlan, discharges: pd.Series, at_home: pd.Series, plan_year_start: date,
                    as_of: date, lateness_days: int, alerts: list[Alert],
                    judged: MetricAssessment | None = None) -> MetricView:
    """Monthly discharge cohorts' share at home 91 days later, settled cohorts only, against the target."""
    metric = Metric.REABLEMENT_91D
    baseline_days, plan_days = year_days(year_earlier(plan_year_start)), year_days(plan_year_start)
    seen = pd.DatetimeIndex(sorted(set(baseline_days) | set(plan_days)))
    discharges = discharges.reindex(seen, fill_value=0).astype(float)
    at_home = at_home.reindex(seen, fill_value=0).astype(float)
    settled_through = pd.Timestamp(as_of - timedelta(days=91 + lateness_days))
    months = _months(seen[seen <= settled_through])
    sizes = np.array([discharges[m: m + pd.offsets.MonthEnd(0)].sum() for m in months])
    home = np.array([at_home[m: m + pd.offsets.MonthEnd(0)].sum() for m in months])
    keep = sizes > 0
    months, sizes, home = months[keep], sizes[keep], home[keep]
    target = plan.reablement_target * 100
    baseline_months = int((months < pd.Timestamp(plan_year_start)).sum())
    spc = _spc(months, home / np.maximum(sizes, 1) * 100, baseline_months, target, ImprovementDirection.INCREASE,
               "% at home (monthly cohorts)")
    in_plan = months >= pd.Timestamp(plan_year_start)
    n_ytd, x_ytd = float(sizes[in_plan].sum()), float(home[in_plan].sum())
    baseline_size = float(discharges[baseline_days[0]: baseline_days[-1]].sum())
    n_rest = max(baseline_size - n_ytd, 0.0) if baseline_size else n_ytd
    share = x_ytd / n_ytd if n_ytd else math.nan
    if n_ytd:
        sd = math.sqrt(share * (1 - share) * n_rest * (n_ytd + n_rest) / n_ytd) / (n_ytd + n_rest)
        low, high = (share - Z90 * sd) * 100, (share + Z90 * sd) * 100
    else:
        low = high = math.nan
    status = (_projected_status(n_ytd, low, high, target, higher_is_better=True) if n_ytd else Status.TOO_FEW)
    variance = (share * 100 - target) if n_ytd else None
    cumulative = None
    if n_ytd:
        cohort_days = [m.date().isoformat() for m in months[in_plan]]
        running = np.cumsum(home[in_plan]) / np.cumsum(sizes[in_plan]) * 100
        cumulative = Cumulative(cohort_days, [float(v) for v in running], [plan_days[0].date().isoformat(),
                                plan_days[-1].date().isoformat()], [target, target], plan_days[-1].date().isoformat(),
                                share * 100, low, high, target, "% at home")
    if status is Status.TOO_FEW:
        reason = (f"Too few to judge yet: {n_ytd:,.0f} settled discharges of the plan year (day 91 must pass "
                  f"before a cohort settles).")
    else:
        lead = {Status.PROJECTED_MISS: "Projected below its target", Status.ON_TRACK: "On track for its target",
                Status.WITHIN_NOISE: "Within noise of its target"}[status]
        reason = (f"{lead}: {share:.1%} of {n_ytd:,.0f} settled discharges at home after 91 days against "
                  f"{plan.reablement_target:.1%} (year-end 90% interval {low:.1f}% to {high:.1f}%); SPC: "
                  f"{spc.variation if spc else 'too few cohorts'}, {spc.assurance if spc else 'no assurance yet'}.")
    view = MetricView(metric, status, reason, variance, share * 100 if n_ytd else None, low if n_ytd else None,
                      high if n_ytd else None, target, None, None, spc, cumulative, _alert_events(alerts, metric))
    return _from_alerts(_with_monitor(view, judged))
