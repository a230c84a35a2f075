"""`bcfwatch demo`: the main job on a real local broker, end to end."""

from __future__ import annotations

import socket
import tempfile
import time
from datetime import date
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from bcfwatch.core.boards import load_boards
from bcfwatch.core.calendar import financial_years
from bcfwatch.core.plans import BoardPlan, load_plan
from bcfwatch.demo.worker_process import WorkerProcess
from bcfwatch.infra.broker import KAFKA_VERSION, Broker
from monitors.alerting.alerts import Alert
from monitors.alerting.timeline import daily_emergency_admissions
from monitors.analysis.backtest import backtest, timeline_key
from monitors.analysis.report import write_report
from monitors.rules.drift import Assessment
from producers.generate import Drift, GeneratorSpec, generate_frame, write_log
from producers.pseudonym import Pseudonymiser, load_key
from producers.replay import replay
from producers.sample_plan import write_sample_plan
from streams.config import WorkerConfig
from streams.live_counts import export_counts

# Large enough to stand out from the noise of a 1%-scale log (small boards see a few admissions a day); one drift
# on each other plan metric, on large boards (Kent's delayed days, Essex's care-home admissions, Hampshire's
# reablement), so their alerts show too.
DEMO_DRIFTS = ("E08000025:+30%", "E09000012:+40%", "E10000016:creep+30%", "E10000016:delayed_days+100%",
               "E10000012:care_home_admissions_65+100%", "E10000014:reablement-30pt")
PLAN_YEAR = date(2015, 4, 1)


def port_or_free(preferred: int) -> int:
    """``preferred`` if nothing listens on it on loopback, else a free port (the demo never fails on a busy port)."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]


WEBHOOK_PORT = port_or_free(8765)
WORKER_METRICS_PORT = port_or_free(9464)
MONITOR_METRICS_PORT = port_or_free(9465)
WEB_PORT = port_or_free(6066)
PARTITIONS = 8


def year_on_year(daily: pd.DataFrame, plans: dict[str, BoardPlan], latest: dict[str, Assessment]) -> pd.DataFrame:
    """Per board: 2014-15 as counted (``daily``: days x boards), the plan number (the plan file's), and the
    monitor's own plan-number assessment of 2015-16 (year to date against the plan trajectory, z,
    projection), furthest above first."""
    counted = daily[financial_years(pd.DatetimeIndex(daily.index)) == 2014].sum()
    rows = []
    for board, assessment in latest.items():
        rows.append({"board": board, "counted_2014": float(counted.get(board, 0)),
                     "plan_number": plans[board].planned_emergency, "actual_ytd": assessment.actual_ytd,
                     "planned_ytd": assessment.planned_ytd, "variance_pct": assessment.variance_pct,
                     "z": assessment.z, "projected": assessment.projected_year_end,
                     "projected_low": assessment.projected_year_end_low,
                     "projected_high": assessment.projected_year_end_high, "drifting": assessment.drifting})
    frame = pd.DataFrame(rows, columns=["board", "counted_2014", "plan_number", "actual_ytd", "planned_ytd",
                                        "variance_pct", "z", "projected", "projected_low", "projected_high",
                                        "drifting"])
    return frame.set_index("board").sort_values("z", ascending=False)


def print_variance_table(console: Console, counts: pd.DataFrame, plans: dict[str, BoardPlan],
                         latest: dict[str, Assessment], top: int = 12) -> None:
    names = {b.code: b.name for b in load_boards()}
    table = Table(title=f"Emergency admissions 2015-16 against each board's plan number: the {top} boards "
                        f"furthest above it (the monitor's figures; z in the fitted noise of the plan year)")
    for column in ("board", "name", "2014-15 counted", "plan number", "2015-16 to date", "vs plan to date", "z",
                   "projected year end (90%)", "alert"):
        table.add_column(column, justify="left" if column in ("board", "name", "alert") else "right")
    for board, row in year_on_year(daily_emergency_admissions(counts), plans, latest).head(top).iterrows():
        table.add_row(board, names[board], f"{row.counted_2014:,.0f}", f"{row.plan_number:,.0f}",
                      f"{row.actual_ytd:,.0f}", f"{row.variance_pct:+.1f}%", f"{row.z:+.1f}",
                      f"{row.projected:,.0f} ({row.projected_low:,.0f}-{row.projected_high:,.0f})",
                      "expected to miss" if row.drifting else "within noise")
    console.print(table)


def alert_and_deliver(console: Console, config: WorkerConfig, plans: dict,
                      plan_path: Path) -> tuple[list[Alert], dict[str, Assessment]]:
    """Run the monitor over the live counts and deliver its alerts to a local signed-webhook receiver; the
    alert events and each board's latest plan-number assessment."""
    import base64
    import secrets

    from prometheus_client import start_http_server

    from bcfwatch.demo.webhook_receiver import WebhookReceiver
    from monitors.alerting.delivery import Notifier
    from monitors.alerting.subscriptions import Subscriber
    from monitors.service.monitor import Monitor

    monitor = Monitor(config, plans, PLAN_YEAR)
    start_http_server(MONITOR_METRICS_PORT, addr="127.0.0.1")
    console.print(f"board metrics exporter: http://127.0.0.1:{MONITOR_METRICS_PORT}/metrics")
    try:
        events = monitor.evaluate()
        latest = dict(monitor.latest)
    finally:
        monitor.close()
    table = Table(title=f"Alerts written to {config.topics.alerts} (plan {plan_path.name})")
    for column in ("week ending", "state", "question", "severity", "board", "YTD variance", "projected year end",
                   "money at risk", "SPC"):
        table.add_column(column, justify="right" if column in ("YTD variance", "money at risk") else "left")
    for event in events:
        table.add_row(event.as_of.isoformat(), event.state.value, event.question.value.replace("_", " "),
                      event.severity.value, event.board,
                      f"{event.variance_pct:+.1f}%",
                      f"{event.projected_year_end:,.0f} vs {event.planned_year_end:,.0f}",
                      f"£{event.money_at_risk_gbp:,.0f}", ", ".join(event.spc_rules) or event.spc_variation.value)
    console.print(table)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    receiver = WebhookReceiver(secret, WEBHOOK_PORT).start()
    notifier = Notifier(config.bootstrap, config.topics,
                        [Subscriber("demo-ops", None, None, "webhook", url=receiver.url, secret=secret,
                                    questions=None)])
    deadline = time.monotonic() + 120
    try:
        while len(receiver.accepted) < len(events) and time.monotonic() < deadline:
            notifier.poll(timeout_ms=500)
    finally:
        notifier.close()
        receiver.stop()
    console.print(f"delivered {len(receiver.accepted)} signed webhooks to {receiver.url} "
                  f"(signatures verified, {receiver.bad_signatures} rejected)")
    return events, latest


def run_demo(console: Console, port: int, scale: float, out_dir: Path | None, keep_running: bool) -> None:
    broker = Broker(port=port)
    started_broker = broker.pid() is None
    console.rule("[bold]bcfwatch demo")
    with console.status(f"starting Kafka {KAFKA_VERSION} on {broker.bootstrap}"):
        broker.start()
    console.print(f"Kafka {KAFKA_VERSION} is up at {broker.bootstrap}")
    work = out_dir or Path(tempfile.mkdtemp(prefix="bcfwatch-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    prefix = f"demo{int(time.time())}"
    config = WorkerConfig(bootstrap=broker.bootstrap, topic_prefix=prefix, partitions=PARTITIONS,
                          datadir=work / "worker", web_port=WEB_PORT, metrics_port=WORKER_METRICS_PORT)
    worker = WorkerProcess(config, work / "worker.log")
    try:
        log = work / "events.jsonl"
        spec = GeneratorSpec(date(2014, 4, 1), date(2016, 3, 31), scale=scale, seed=2015,
                             drifts=[Drift.parse(d) for d in DEMO_DRIFTS], malformed_share=0.001)
        with console.status("generating two financial years (2014-15 baseline, 2015-16 plan year)"):
            lines = write_log(generate_frame(spec), log)
        console.print(f"generated {lines:,} events at scale {scale} into {log} (drifting: {', '.join(DEMO_DRIFTS)})")
        worker.start()
        console.print(f"worker started (log {worker.log}); web view http://127.0.0.1:{config.web_port}"
                      f"/boards/E08000025/metrics; pipeline metrics http://127.0.0.1:{WORKER_METRICS_PORT}/metrics")
        with console.status(f"replaying into Kafka topics {prefix}.*"):
            report = replay(log, broker.bootstrap, config.topics, Pseudonymiser(load_key(dev=True)), PARTITIONS)
        console.print(
            f"replayed {report.lines:,} lines in {report.seconds:.1f} s ({report.events_per_second:,.0f} events/s): "
            + ", ".join(f"{n:,} {t}" for t, n in report.produced.items())
            + f", {len(report.rejected):,} dead-lettered"
        )
        with console.status("waiting for the worker to catch up") as status:
            exported = export_counts(config, work / "counts.csv", timeout=1800,
                                     on_progress=lambda behind: status.update(f"worker: {behind:,} events to go"))
        counts = exported.table
        console.print(f"per-board daily counts: {exported.path} ({exported.board_days:,} board-days)")
        plan_path = work / "plan.csv"
        write_sample_plan(plan_path, scale=scale)
        plans = load_plan(plan_path)
        live_alerts, latest = alert_and_deliver(console, config, plans, plan_path)
        print_variance_table(console, counts, plans, latest)
        with console.status("backtesting the same log offline and drawing the report"):
            result = backtest(log, plans, PLAN_YEAR, config.lateness_days, max_ahead_days=config.max_ahead_days)
            report_path = write_report(result, plans, PLAN_YEAR, work / "report.html")
        same_counts = result.counts.reset_index(drop=True).equals(counts.reset_index(drop=True))
        same_alerts = sorted(result.alerts, key=timeline_key) == sorted(live_alerts, key=timeline_key)
        console.print(f"offline backtest: {result.events:,} events in {result.seconds:.1f} s; counts "
                      f"{'identical to' if same_counts else 'DIFFERENT from'} the live export, alert timeline "
                      f"{'identical to' if same_alerts else 'DIFFERENT from'} the live monitor's")
        console.print(f"[bold]report: {report_path.resolve()}")
    finally:
        worker.stop()
        if started_broker and not keep_running:
            broker.stop()
            console.print("Kafka stopped (use --keep-running to leave it up)")
