"""Grafana dashboards, generated from code into compose/grafana/dashboards/ (`python -m bcfwatch.dashboards`).

Built with grafana-foundation-sdk's typed builders and serialised with its JSON
encoder. The SDK is pinned in pyproject.toml to build ``1769699590!11.3.0``, the
build for the Grafana 11.3 that compose runs (docs/decisions.md). Every panel
query is listed by :func:`panel_queries`, which the integration test runs
against a real Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import prometheus as promql
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "compose" / "grafana" / "dashboards"

PanelBuilder = stat.Panel | timeseries.Panel | table.Panel | bargauge.Panel


def _datasource() -> model.DataSourceRef:
    return model.DataSourceRef(type_val=DATASOURCE["type"], uid=DATASOURCE["uid"])


def _panel(panel: PanelBuilder, panel_id: int, title: str, targets: list[tuple[str, str]], x: int, y: int,
           w: int = 12, h: int = 8, unit: str | None = None, description: str = "") -> PanelBuilder:
    panel.id(panel_id).title(title).description(description).datasource(_datasource())
    panel.grid_pos(model.GridPos(x=x, y=y, w=w, h=h))
    for i, (expr, legend) in enumerate(targets):
        query = promql.Dataquery().ref_id(chr(ord("A") + i)).expr(expr).legend_format(legend).datasource(_datasource())
        if isinstance(panel, table.Panel):
            query.format(PromQueryFormat.TABLE).instant()
        panel.with_target(query)
    if unit:
        panel.unit(unit)
    return panel


def _dashboard(uid: str, title: str, panels: list[PanelBuilder],
               variables: list[Builder[model.VariableModel]] | None = None) -> builder.Dashboard:
    dashboard = (builder.Dashboard(title).uid(uid).tags(["bcfwatch"]).version(1).readonly()
                 .time("now-6h", "now").refresh("30s").timezone("utc"))
    for variable in variables or []:
        dashboard.with_variable(variable)
    for panel in panels:
        dashboard.with_panel(panel)
    return dashboard


def _national_overview() -> builder.Dashboard:
    ytd = 'window="financial_year_to_date"'
    return _dashboard("bcf-national", "BCF national overview", [
        _panel(stat.Panel(), 1, "National emergency admissions vs plan (year to date)",
               [(f"bcf:emergency_admissions_variance:ratio{{{ytd}}}", "variance")], 0, 0, 6, 5, "percentunit",
               "Actual / planned - 1, all boards. Plans promised a 3.07% cut on the baseline year."),
        _panel(stat.Panel(), 2, "Boards drifting off plan", [("bcf:boards_drifting:count", "boards")], 6, 0, 6, 5),
        _panel(stat.Panel(), 3, "Money at risk", [("bcf:money_at_risk_gbp:sum", "£")], 12, 0, 6, 5, "currencyGBP"),
        _panel(timeseries.Panel(), 4, "Emergency admissions, rolling 28 days: actual and planned",
               [('bcf:emergency_admissions:sum{window="rolling_28_days"}', "actual"),
                ('bcf:emergency_admissions_planned:sum{window="rolling_28_days"}', "planned")], 18, 0, 6, 5),
        _panel(bargauge.Panel(), 5, "Year-to-date variance by board",
               [("sort_desc(bcf_emergency_admissions_variance_ratio)", "{{board}}")], 0, 5, 12, 16, "percentunit"),
        _panel(table.Panel(), 6, "SPC state and assurance by board",
               [("bcf_spc_special_cause", "special cause"), ("bcf_spc_assurance", "assurance"),
                ("bcf_open_alerts", "open alerts")], 12, 5, 12, 16, None,
               "special cause: 1 concern, 0 common cause, -1 improvement; assurance: 1 hit, 0 hit and miss, "
               "-1 missed"),
        _panel(table.Panel(), 7, "Other plan metrics: boards alerted, one row per metric",
               [("bcf:plan_metric_open_alerts:sum", "{{metric}}")], 0, 21, 12, 6, None,
               "Open plan-number alerts of delayed days, care-home admissions 65+ and reablement at 91 days."),
        _panel(bargauge.Panel(), 8, "Other plan metrics: year to date vs plan by board",
               [("sort_desc(bcf_plan_metric_variance_ratio)", "{{board}} {{metric}}")], 12, 21, 12, 16,
               "percentunit", "Year to date / plan - 1 (reablement: share at home - target)."),
    ])


def _board_drilldown() -> builder.Dashboard:
    board = 'board="$board"'
    variable = (builder.QueryVariable("board").label("Board").datasource(_datasource())
                .query({"query": "label_values(bcf_open_alerts, board)", "refId": "board"})
                .refresh(model.VariableRefresh.ON_DASHBOARD_LOAD).sort(model.VariableSort.ALPHABETICAL_ASC)
                .current(model.VariableOption(text="E08000025", value="E08000025")))
    return _dashboard("bcf-board", "BCF board drill-down", [
        _panel(timeseries.Panel(), 1, "Emergency admissions vs plan, rolling 28 days",
               [(f'bcf_emergency_admissions{{{board},window="rolling_28_days"}}', "actual"),
                (f'bcf_emergency_admissions_planned{{{board},window="rolling_28_days"}}', "planned")], 0, 0),
        _panel(timeseries.Panel(), 2, "SPC chart: weekly variance against plan",
               [(f"bcf_weekly_emergency_admissions_variance_ratio{{{board}}}", "week"),
                (f"bcf_spc_mean_ratio{{{board}}}", "mean"), (f"bcf_spc_upper_limit_ratio{{{board}}}", "upper limit"),
                (f"bcf_spc_lower_limit_ratio{{{board}}}", "lower limit")], 12, 0, unit="percentunit",
               description="Making Data Count XmR: limits from the baseline year (the board's own noise)."),
        _panel(stat.Panel(), 3, "Year-end projection",
               [(f"bcf_projected_year_end_emergency_admissions{{{board}}}", "projected"),
                (f"bcf_planned_year_end_emergency_admissions{{{board}}}", "planned")], 0, 8, 8, 5),
        _panel(stat.Panel(), 4, "Money at risk", [(f"bcf_money_at_risk_gbp{{{board}}}", "£")], 8, 8, 4, 5,
               "currencyGBP"),
        _panel(stat.Panel(), 5, "Open alerts", [(f"bcf_open_alerts{{{board}}}", "open")], 12, 8, 4, 5),
        _panel(stat.Panel(), 6, "Special cause / assurance",
               [(f"bcf_spc_special_cause{{{board}}}", "special cause"),
                (f"bcf_spc_assurance{{{board}}}", "assurance")], 16, 8, 8, 5),
        _panel(timeseries.Panel(), 7, "Year to date vs plan",
               [(f"bcf_emergency_admissions_variance_ratio{{{board}}}", "variance")], 0, 13, 24, 6, "percentunit"),
        _panel(table.Panel(), 8, "Every other plan metric, one row each: year to date, plan, z, projection, alert",
               [(f"bcf_plan_metric_year_to_date{{{board}}}", "{{metric}} year to date"),
                (f"bcf_plan_metric_planned_year_to_date{{{board}}}", "{{metric}} plan"),
                (f"bcf_plan_metric_z{{{board}}}", "{{metric}} z"),
                (f"bcf_plan_metric_projected_year_end{{{board}}}", "{{metric}} projected"),
                (f"bcf_plan_metric_open_alerts{{{board}}}", "{{metric}} open alert")], 0, 19, 24, 7, None,
               "Delayed days, care-home admissions 65+ and reablement at 91 days (reablement in % at home)."),
    ], [variable])


def _pipeline_health() -> builder.Dashboard:
    return _dashboard("bcf-pipeline", "BCF pipeline health", [
        _panel(stat.Panel(), 1, "Workers up", [('up{job="bcfwatch-worker"}', "{{instance}}")], 0, 0, 6, 5),
        _panel(timeseries.Panel(), 2, "Events processed by type",
               [("sum by (type) (rate(bcf_events_processed_total[5m]))", "{{type}}")], 6, 0, 9, 8, "ops"),
        _panel(timeseries.Panel(), 3, "Dead-lettered by reason",
               [("sum by (reason) (rate(bcf_dead_letter_events_total[5m]))", "{{reason}}")], 15, 0, 9, 8, "ops"),
        _panel(timeseries.Panel(), 4, "Late events (beyond the lateness bound)",
               [('sum(rate(bcf_events_processed_total{outcome="late"}[5m]))', "late")], 0, 8, 8, 8, "ops"),
        _panel(timeseries.Panel(), 5, "Processing latency",
               [("histogram_quantile(0.5, sum by (le) (rate(bcf_processing_latency_seconds_bucket[5m])))", "p50"),
                ("histogram_quantile(0.99, sum by (le) (rate(bcf_processing_latency_seconds_bucket[5m])))", "p99")],
               8, 8, 8, 8, "s"),
        _panel(timeseries.Panel(), 6, "Consumer lag by partition",
               [("sum by (partition) (bcf_consumer_lag_events)", "partition {{partition}}")], 16, 8, 8, 8),
        _panel(stat.Panel(), 7, "Latest event time processed",
               [("max by (type) (bcf_last_event_timestamp_seconds) * 1000", "{{type}}")], 0, 16, 24, 4,
               "dateTimeAsIso"),
    ])


BUILDERS: dict[str, Callable[[], builder.Dashboard]] = {
    "national-overview": _national_overview, "board-drilldown": _board_drilldown,
    "pipeline-health": _pipeline_health}


def _as_dict(dashboard: builder.Dashboard) -> dict[str, Any]:
    return json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))


def national_overview() -> dict[str, Any]:
    return _as_dict(_national_overview())


def board_drilldown() -> dict[str, Any]:
    return _as_dict(_board_drilldown())


def pipeline_health() -> dict[str, Any]:
    return _as_dict(_pipeline_health())


DASHBOARDS = {"national-overview": national_overview, "board-drilldown": board_drilldown,
              "pipeline-health": pipeline_health}


def render(name: str) -> str:
    return json.dumps(BUILDERS[name]().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def write_all(directory: Path = DASHBOARD_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DASHBOARDS:
        path = directory / f"{name}.json"
        path.write_text(render(name))
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_all():
        print(written_path)
