"""The report's one HTML file: what needs attention, one table of every board and metric, the national roll-up,
the funnel plot and a section per board, with every chart drawn in the page from embedded data
(``assets/report.js``: SVG, no network, no third-party code) so the national report stays small."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from datetime import date
from importlib.resources import files
from typing import Any

import pandas as pd

from bcfwatch.core.boards import load_boards
from bcfwatch.core.plans import APPROVAL_STATUSES, BoardPlan
from monitors.analysis.backtest import BacktestResult
from monitors.analysis.report.boards import BoardReport, funnel_limits, urgency
from monitors.analysis.report.metrics import Cumulative, Metric, MetricView, SpcSeries, Status
from monitors.rules.spc import PointType

POINT_TYPES = list(PointType)
SYMBOL = {  # the shape that carries each SPC verdict beside its colour
    "concern": "\u25b2", "improvement": "\u25a0", "neutral": "\u25c6", "common": "\u25cf",
}
ASSURANCE_SYMBOL = {"consistently hit": "\u2714", "consistently missed": "\u2716", "hit and miss": "?"}


def _esc(value: object) -> str:
    return html.escape(str(value))


def _slug(text: str) -> str:
    return text.replace(" ", "-")


def _variation_class(variation: str) -> str:
    for word in ("concern", "improvement", "neutral"):
        if word in variation:
            return word
    return "common"


def _variation_html(variation: str) -> str:
    kind = _variation_class(variation)
    return f'<span class="{kind}">{SYMBOL[kind]} {_esc(variation)}</span>'


def _assurance_html(assurance: str) -> str:
    return f"{ASSURANCE_SYMBOL.get(assurance, '')} {_esc(assurance)}".strip()


def _money(value: float | None) -> str:
    return f"£{value:,.0f}" if value else "\u2014"


def _number(value: float | None, metric: Metric) -> str:
    if value is None or not math.isfinite(value):
        return "\u2014"
    return f"{value:.1f}%" if metric is Metric.REABLEMENT_91D else f"{value:,.0f}"


def _variance(view: MetricView) -> str:
    if view.variance_pct is None:
        return "\u2014"
    unit = " pts" if view.metric is Metric.REABLEMENT_91D else "%"
    return f"{view.variance_pct:+.1f}{unit}"


def _projection(view: MetricView) -> str:
    if view.projected is None:
        return "\u2014"
    return (f"{_number(view.projected, view.metric)} ({_number(view.projected_low, view.metric)} to "
            f"{_number(view.projected_high, view.metric)})")


# -------------------------------------------------------------------------------------------- the data


def _rounded(values: Sequence[float | None], digits: int = 2) -> list[float | None]:
    return [None if v is None or not math.isfinite(v) else round(v, digits) for v in values]


def _day_numbers(days: list[str], epoch: date) -> list[int]:
    return [(date.fromisoformat(d) - epoch).days for d in days]


def _spc_data(spc: SpcSeries, epoch: date) -> dict[str, Any]:
    return {"periods": _day_numbers(spc.periods, epoch), "values": _rounded(spc.values, 3),
            "mean": _rounded(spc.mean, 3), "lower": _rounded(spc.lower, 3), "upper": _rounded(spc.upper, 3),
            "types": [POINT_TYPES.index(t) for t in spc.point_types], "target": spc.target, "unit": spc.unit}


def _cumulative_data(cumulative: Cumulative, epoch: date) -> dict[str, Any]:
    return {"days": _day_numbers(cumulative.days, epoch), "actual": _rounded(cumulative.actual, 1),
            "plan_days": _day_numbers(cumulative.plan_days, epoch), "plan": _rounded(cumulative.plan, 1),
            "year_end": (date.fromisoformat(cumulative.year_end) - epoch).days,
            **{k: round(v, 2) if math.isfinite(v) else None for k, v in
               (("projected", cumulative.projected), ("low", cumulative.low), ("high", cumulative.high),
                ("planned_year_end", cumulative.planned_year_end))},
            "unit": cumulative.unit}


def page_data(reports: list[BoardReport], epoch: date, with_funnel: bool) -> dict[str, Any]:
    """What ``report.js`` draws: every chart's points (days as numbers from ``epoch``) and the funnel plot."""
    charts: dict[str, dict[str, dict[str, Any]]] = {}
    for report in reports:
        charts[report.code] = {
            metric.value: {k: v for k, v in (("spc", _spc_data(view.spc, epoch) if view.spc else None),
                                             ("cumulative", _cumulative_data(view.cumulative, epoch)
                                              if view.cumulative else None)) if v is not None}
            for metric, view in report.views.items()}
    funnel: dict[str, Any] = {"points": [], "size": [], "sd": [], "threshold": 3.0, "label": ""}
    if with_funnel:
        limits = funnel_limits(reports)
        funnel = {"points": [{"code": r.code, "name": r.name, "planned": round(r.assessment.planned_ytd, 1),
                              "variance": round(r.assessment.variance_pct, 2),
                              "alerted": r.emergency.status is Status.ALERTED} for r in reports],
                  "size": _rounded(limits["size"], 1), "sd": _rounded(limits["sd"], 4),
                  "threshold": round(limits["threshold"][0], 2),
                  "label": ("Funnel plot of every board's year-to-date variance in emergency admissions against its "
                            "planned admissions to date; alerted boards are triangles; each point links to its "
                            "board")}
    return {"epoch": epoch.isoformat(), "point_types": [str(t) for t in POINT_TYPES], "charts": charts,
            "funnel": funnel}


def _json_script(data: dict[str, Any]) -> str:
    text = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="report-data">{text}</script>'


# ------------------------------------------------------------------------------------------ the sections


def attention_html(reports: list[BoardReport]) -> str:
    """Every open plan-number alert, whatever the metric: most severe first, then by money at risk."""
    alerted = sorted(((r, view) for r in reports for view in r.alerted), key=lambda pair: (*urgency(pair[1]),
                                                                                          pair[0].code))
    if not alerted:
        return "<p>No board is alerted: none is expected to miss a plan figure.</p>"
    items = []
    for r, view in alerted:
        severity = view.severity or "warning"
        items.append(
            f'<li data-board="{r.code}" data-metric="{view.metric.value}"><a href="#{r.code}"><strong>'
            f'{_esc(r.name)}</strong> ({r.code})</a>, {_esc(view.metric.label.lower())}: '
            f'<span class="severity-{severity}">{severity}</span> {_money(view.money_at_risk_gbp)} at risk '
            f"if the rate holds. {_esc(view.reason)}</li>")
    boards = len({r.code for r, _ in alerted})
    return (f"<p>{boards} board{'s' if boards != 1 else ''} expected to miss a plan figure, {len(alerted)} "
            f"alert{'s' if len(alerted) != 1 else ''} (most severe first, then by money at risk):</p>"
            f"<ol class=\"attention\">{''.join(items)}</ol>")


def _options(values: list[str]) -> str:
    return "".join(f'<option value="{_esc(v)}">{_esc(v)}</option>' for v in values)


def board_table_html(reports: list[BoardReport]) -> str:
    rows = []
    for r in reports:
        for metric, view in r.views.items():
            money = view.money_at_risk_gbp or 0.0
            rows.append(
                f'<tr data-board="{r.code}" data-name="{_esc(r.name)}" data-status="{_esc(view.status)}" '
                f'data-approval="{_esc(r.plan.approval_status)}" data-metric="{metric.value}" '
                f'data-rank="{view.status.rank * 10 + (0 if view.severity == "critical" else 1)}" '
                f'data-variance="{"" if view.variance_pct is None else round(view.variance_pct, 3)}" '
                f'data-money="{round(money, 2)}" data-label="{_esc(metric.label)}">'
                f'<th scope="row"><a href="#{r.code}">{_esc(r.name)}</a> <small>{r.code}</small></th>'
                f"<td>{_esc(metric.label)}</td>"
                f'<td class="status status-{_slug(view.status)}">{_esc(view.status)}</td>'
                f'<td class="num">{_variance(view)}</td><td class="num">{_projection(view)}</td>'
                f'<td class="num">{_number(view.planned_year_end, metric)}</td>'
                f'<td class="num">{_money(view.money_at_risk_gbp)}</td>'
                f"<td>{_variation_html(view.variation)}</td><td>{_assurance_html(view.assurance)}</td></tr>")
    headers = [("name", "Board", "text"), ("label", "Metric", "text"), ("rank", "Status", "number"),
               ("variance", "Year to date vs plan", "number"), (None, "Projected year end (90% interval)", ""),
               (None, "Plan", ""), ("money", "Money at risk", "number"), (None, "SPC variation", ""),
               (None, "SPC assurance", "")]
    head = "".join(
        f'<th scope="col" data-sort="{key}" data-type="{kind}"><button type="button">{label}</button></th>' if key
        else f'<th scope="col">{label}</th>' for key, label, kind in headers)
    controls = (
        '<div class="controls">'
        '<label>Search a board (name or code)<input id="board-search" type="search" placeholder="e.g. Leeds"></label>'
        f'<label>Status<select id="filter-status" data-filter="status"><option value="">any</option>'
        f"{_options([s.value for s in Status])}</select></label>"
        f'<label>Approval status<select id="filter-approval" data-filter="approval"><option value="">any</option>'
        f"{_options(list(APPROVAL_STATUSES))}</select></label>"
        f'<label>Metric<select id="filter-metric" data-filter="metric"><option value="">any</option>'
        + "".join(f'<option value="{m.value}">{_esc(m.label)}</option>' for m in Metric)
        + '</select></label><span id="row-count" aria-live="polite"></span></div>')
    return (f'{controls}<div class="table-wrap"><table id="board-table"><caption class="legend">Every board and '
            "metric. Click a column heading to sort; money at risk is the value of the admissions over the plan "
            f"number if the rate holds.</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
            "</table></div>")


def _caption_spc(view: MetricView) -> str:
    spc = view.spc
    if spc is None:
        return f"{view.metric.label}: too few periods for an SPC chart yet."
    special = sum(t is not PointType.COMMON_CAUSE for t in spc.point_types)
    return (f"SPC chart of {view.metric.label.lower()}, {spc.unit}: {len(spc.values)} points, latest "
            f"{spc.values[-1]:,.2f}, {special} special-cause; latest variation {spc.variation}, assurance "
            f"{spc.assurance}. Triangles: concern; squares: improvement; dashed: process limits; red: target.")


def _caption_cumulative(view: MetricView) -> str:
    c = view.cumulative
    if c is None:
        return f"{view.metric.label}: nothing settled in the plan year yet."
    what = "share" if view.metric is Metric.REABLEMENT_91D else "cumulative count"
    return (f"Year to date, {what} ({c.unit}): {c.actual[-1]:,.1f} by {c.days[-1]} against the plan (red dashed); "
            f"projected year end {c.projected:,.1f} (90% interval {c.low:,.1f} to {c.high:,.1f}, the shaded fan) "
            f"against {c.planned_year_end:,.1f} planned.")


def _alerts_html(view: MetricView) -> str:
    if not view.alerts:
        return '<p class="legend">No alerts this year.</p>'
    unit = " points against target" if view.metric is Metric.REABLEMENT_91D else "% vs plan"
    items = "".join(f"<li>{a.day.isoformat()}: {_esc(a.state)} ({_esc(a.severity)}), {_esc(a.question)}, "
                    f"{a.variance_pct:+.1f}{unit}</li>" for a in view.alerts)
    return f'<ul class="alerts">{items}</ul>'


def board_section_html(report: BoardReport) -> str:
    metrics = []
    for metric, view in report.views.items():
        figures = "".join(
            f'<figure class="chart" data-board="{report.code}" data-metric="{metric.value}" data-chart="{kind}">'
            f'<div class="plot"></div><figcaption>{_esc(caption(view))}</figcaption></figure>'
            for kind, caption in (("spc", _caption_spc), ("cumulative", _caption_cumulative)))
        status = f'<span class="status status-{_slug(view.status)}">{_esc(view.status)}</span>'
        metrics.append(f'<div class="metric"><h4>{_esc(metric.label)}: {status}</h4>'
                       f'<p class="reason">{_esc(view.reason)}</p>'
                       f'<div class="charts">{figures}</div>{_alerts_html(view)}</div>')
    plan = report.plan
    return (f'<section class="board" id="{report.code}" aria-labelledby="h-{report.code}">'
            f'<h3 id="h-{report.code}">{_esc(report.name)} <small>{report.code}</small></h3>'
            f'<p class="legend">Plan {_esc(plan.approval_status)}; pooled fund £{plan.pooled_fund_gbp:,.0f}. '
            f'<a class="no-print" href="#all-boards">Back to the table</a></p>{"".join(metrics)}</section>')


def rollup_html(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f'<tr><th scope="row">{_esc(k)}</th><td>{_esc(v)}</td></tr>' for k, v in rows)
    return f"<table>{cells}</table>"


def national_rollup(result: BacktestResult, reports: list[BoardReport], plans: dict[str, BoardPlan],
                    plan_year_start: date, unit_cost: float) -> list[tuple[str, str]]:
    counts = result.counts
    year = counts["date"] >= plan_year_start.isoformat()
    totals = counts.drop(columns=["board", "date"]).groupby(year.map({True: "plan", False: "baseline"})).sum()
    planned_change = -sum(p.avoided_admissions for p in plans.values()) / sum(p.baseline_emergency
                                                                               for p in plans.values())
    planned_ytd = sum(r.assessment.planned_ytd for r in reports)
    actual_ytd = sum(r.assessment.actual_ytd for r in reports)
    baseline_equivalent = planned_ytd / (1 + planned_change)
    avoided = baseline_equivalent - actual_ytd
    population_65 = sum(b.population_65_plus for b in load_boards())
    rows = [
        ("Weeks judged (plan year)", f"{max(r.assessment.weeks for r in reports)}"),
        ("Emergency admissions: planned change", f"{planned_change:+.2%}"),
        ("Emergency admissions: actual change against baseline (same weeks)",
         f"{actual_ytd / baseline_equivalent - 1:+.2%}" if baseline_equivalent else "\u2014"),
        ("Emergency admissions: actual vs planned (year to date)", f"{actual_ytd:,.0f} vs {planned_ytd:,.0f}"),
        ("Admissions avoided against baseline", f"{avoided:,.0f}"),
        (f"Their value at £{unit_cost:,.0f} each", f"£{avoided * unit_cost:,.0f}"),
    ]
    for label in ("baseline", "plan"):
        if label not in totals.index:
            continue
        row = totals.loc[label]
        delayed = row["delayed_days_nhs"] + row["delayed_days_social_care"] + row["delayed_days_both"]
        rows += [
            (f"Delayed days, {label} year",
             f"{delayed:,.0f} (NHS {row['delayed_days_nhs']:,.0f}, social care "
             f"{row['delayed_days_social_care']:,.0f}, both {row['delayed_days_both']:,.0f})"),
            (f"Permanent care-home admissions 65+, {label} year",
             f"{row['care_home_admissions_65']:,.0f} ({row['care_home_admissions_65'] / population_65 * 1e5:,.1f} "
             "per 100,000 aged 65+, at the log's scale)"),
            (f"Reablement 65+: at home after 91 days, {label} year",
             f"{row['at_home_91d']:,.0f} of {row['reablement_discharges_65']:,.0f} discharges "
             "(settled ones only)"),
        ]
    for status in APPROVAL_STATUSES:
        rows.append((f"Boards {status}", str(sum(p.approval_status == status for p in plans.values()))))
    for metric in Metric:
        tally = pd.Series([r.views[metric].status.value for r in reports]).value_counts()
        rows.append((f"{metric.label}: boards by status",
                     ", ".join(f"{tally.get(s.value, 0)} {s.value}" for s in Status if tally.get(s.value, 0))))
    return rows


def _asset(name: str) -> str:
    return (files("monitors.analysis.report") / "assets" / name).read_text(encoding="utf-8")


def render_page(title: str, reports: list[BoardReport], epoch: date, rollup: list[tuple[str, str]] | None) -> str:
    """The whole page; ``rollup`` None for one board's page (no national sections)."""
    national = rollup is not None
    sections = "".join(board_section_html(r) for r in reports)
    nav = ('<nav aria-label="Contents"><ul><li><a href="#attention">Needs attention</a></li>'
           '<li><a href="#all-boards">Every board and metric</a></li>'
           + ('<li><a href="#rollup">National roll-up</a></li><li><a href="#funnel">Funnel plot</a></li>'
              if national else "") + '<li><a href="#boards">Boards</a></li></ul></nav>')
    national_html = (f'<section id="rollup"><h2>National roll-up</h2>{rollup_html(rollup)}</section>'
                     '<section id="funnel"><h2>Variance against size</h2><p class="legend">Limits from the '
                     "monitor's noise model: dotted 95%, dashed the typical alert threshold. Triangles are alerted "
                     'boards; every point links to its board.</p><div class="plot"></div></section>'
                     if rollup is not None else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title><style>{_asset("report.css")}</style></head><body>
<header><h1>{_esc(title)}</h1>
<p>Each health and wellbeing board against its Better Care Fund plan, metric by metric, judged by bcfwatch's
monitor as its alerts were raised: emergency admissions week by week on the plan number, delayed days,
care-home admissions and reablement month by month. SPC charts follow NHS "Making Data Count": triangles
(orange) are special cause for concern, squares (blue) for improvement, dashed lines the process limits, the red
line the target.</p>{nav}</header>
<main>
<section id="attention"><h2>Needs attention</h2>{attention_html(reports)}</section>
<section id="all-boards"><h2>Every board and metric</h2>{board_table_html(reports)}</section>
{national_html}
<section id="boards"><h2>Boards ({len(reports)})</h2>{sections}</section>
</main>
{_json_script(page_data(reports, epoch, national))}
<script>{_asset("report.js")}</script>
</body></html>
"""

