"""Grafana dashboards, generated from code into compose/grafana/dashboards/ (`python -m bcfwatch.dashboards`).

Plain dashboard JSON (schemaVersion 39), no dashboard library to pin. Every
panel query is listed by :func:`panel_queries`, which the integration test runs
against a real Prometheus.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "compose" / "grafana" / "dashboards"


def _panel(panel_id: int, title: str, kind: str, targets: list[tuple[str, str]], x: int, y: int, w: int = 12,
           h: int = 8, unit: str | None = None, description: str = "") -> dict[str, Any]:
    panel: dict[str, Any] = {
        "id": panel_id, "title": title, "type": kind, "description": description, "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
                    for i, (expr, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": []},
        "options": {},
    }
    if kind == "table":
        for target in panel["targets"]:
            target.update(format="table", instant=True)
    return panel


def _dashboard(uid: str, title: str, panels: list[dict], templating: list[dict] | None = None) -> dict[str, Any]:
    return {"uid": uid, "title": title, "tags": ["bcfwatch"], "schemaVersion": 39, "version": 1, "editable": False,
            "time": {"from": "now-6h", "to": "now"}, "refresh": "30s", "timezone": "utc",
            "templating": {"list": templating or []}, "panels": panels}


def national_overview() -> dict[str, Any]:
    ytd = 'window="financial_year_to_date"'
    return _dashboard("bcf-national", "BCF national overview", [
        _panel(1, "National emergency admissions vs plan (year to date)", "stat",
               [(f"bcf:emergency_admissions_variance:ratio{{{ytd}}}", "variance")], 0, 0, 6, 5, "percentunit",
               "Actual / planned - 1, all boards. Plans promised a 3.07% cut on the baseline year."),
        _panel(2, "Boards drifting off plan", "stat", [("bcf:boards_drifting:count", "boards")], 6, 0, 6, 5),
        _panel(3, "Money at risk", "stat", [("bcf:money_at_risk_gbp:sum", "£")], 12, 0, 6, 5, "currencyGBP"),
        _panel(4, "Emergency admissions, rolling 28 days: actual and planned", "timeseries",
               [('bcf:emergency_admissions:sum{window="rolling_28_days"}', "actual"),
                ('bcf:emergency_admissions_planned:sum{window="rolling_28_days"}', "planned")], 18, 0, 6, 5),
        _panel(5, "Year-to-date variance by board", "bargauge",
               [("sort_desc(bcf_emergency_admissions_variance_ratio)", "{{board}}")], 0, 5, 12, 16, "percentunit"),
        _panel(6, "SPC state and assurance by board", "table",
               [("bcf_spc_special_cause", "special cause"), ("bcf_spc_assurance", "assurance"),
                ("bcf_open_alerts", "open alerts")], 12, 5, 12, 16, None,
               "special cause: 1 concern, 0 common cause, -1 improvement; assurance: 1 hit, 0 hit and miss, "
               "-1 missed"),
    ])


def board_drilldown() -> dict[str, Any]:
    board = 'board="$board"'
    variable = {"name": "board", "label": "Board", "type": "query", "datasource": DATASOURCE,
                "query": {"query": "label_values(bcf_open_alerts, board)", "refId": "board"},
                "definition": "label_values(bcf_open_alerts, board)", "refresh": 1, "sort": 1,
                "current": {"text": "E08000025", "value": "E08000025"}}
    return _dashboard("bcf-board", "BCF board drill-down", [
        _panel(1, "Emergency admissions vs plan, rolling 28 days", "timeseries",
               [(f'bcf_emergency_admissions{{{board},window="rolling_28_days"}}', "actual"),
                (f'bcf_emergency_admissions_planned{{{board},window="rolling_28_days"}}', "planned")], 0, 0),
        _panel(2, "SPC chart: weekly variance against plan", "timeseries",
               [(f"bcf_weekly_emergency_admissions_variance_ratio{{{board}}}", "week"),
                (f"bcf_spc_mean_ratio{{{board}}}", "mean"), (f"bcf_spc_upper_limit_ratio{{{board}}}", "upper limit"),
                (f"bcf_spc_lower_limit_ratio{{{board}}}", "lower limit")], 12, 0, unit="percentunit",
               description="Making Data Count XmR: limits from the baseline year (the board's own noise)."),
        _panel(3, "Year-end projection", "stat",
               [(f"bcf_projected_year_end_emergency_admissions{{{board}}}", "projected"),
                (f"bcf_planned_year_end_emergency_admissions{{{board}}}", "planned")], 0, 8, 8, 5),
        _panel(4, "Money at risk", "stat", [(f"bcf_money_at_risk_gbp{{{board}}}", "£")], 8, 8, 4, 5,
               "currencyGBP"),
        _panel(5, "Open alerts", "stat", [(f"bcf_open_alerts{{{board}}}", "open")], 12, 8, 4, 5),
        _panel(6, "Special cause / assurance", "stat",
               [(f"bcf_spc_special_cause{{{board}}}", "special cause"),
                (f"bcf_spc_assurance{{{board}}}", "assurance")], 16, 8, 8, 5),
        _panel(7, "Year to date vs plan", "timeseries",
               [(f"bcf_emergency_admissions_variance_ratio{{{board}}}", "variance")], 0, 13, 24, 6, "percentunit"),
    ], [variable])


def pipeline_health() -> dict[str, Any]:
    return _dashboard("bcf-pipeline", "BCF pipeline health", [
        _panel(1, "Workers up", "stat", [('up{job="bcfwatch-worker"}', "{{instance}}")], 0, 0, 6, 5),
        _panel(2, "Events processed by type", "timeseries",
               [("sum by (type) (rate(bcf_events_processed_total[5m]))", "{{type}}")], 6, 0, 9, 8, "ops"),
        _panel(3, "Dead-lettered by reason", "timeseries",
               [("sum by (reason) (rate(bcf_dead_letter_events_total[5m]))", "{{reason}}")], 15, 0, 9, 8, "ops"),
        _panel(4, "Late events (beyond the lateness bound)", "timeseries",
               [('sum(rate(bcf_events_processed_total{outcome="late"}[5m]))', "late")], 0, 8, 8, 8, "ops"),
        _panel(5, "Processing latency", "timeseries",
               [("histogram_quantile(0.5, sum by (le) (rate(bcf_processing_latency_seconds_bucket[5m])))", "p50"),
                ("histogram_quantile(0.99, sum by (le) (rate(bcf_processing_latency_seconds_bucket[5m])))", "p99")],
               8, 8, 8, 8, "s"),
        _panel(6, "Consumer lag by partition", "timeseries",
               [("sum by (partition) (bcf_consumer_lag_events)", "partition {{partition}}")], 16, 8, 8, 8),
        _panel(7, "Latest event time processed", "stat",
               [("max by (type) (bcf_last_event_timestamp_seconds) * 1000", "{{type}}")], 0, 16, 24, 4,
               "dateTimeAsIso"),
    ])


DASHBOARDS = {"national-overview": national_overview, "board-drilldown": board_drilldown,
              "pipeline-health": pipeline_health}


def render(name: str) -> str:
    return json.dumps(DASHBOARDS[name](), indent=2, sort_keys=True) + "\n"


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
