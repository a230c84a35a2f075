"""The live pipeline's services and readers: `bcfwatch worker`, `counts export`, `monitor`, `notify`."""

from __future__ import annotations

import contextlib
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click

from bcfwatch.cli.common import (
    console,
    err_console,
    friendly_errors,
    from_settings,
    load_plan_or_fail,
    plan_year_option,
)
from streams.config import DEFAULT_SNAPSHOT_SECONDS, DEFAULT_WEB_PORT, WorkerConfig

if TYPE_CHECKING:
    from monitors.alerting.alerts import Alert

prefix_option = click.option("--topic-prefix", **from_settings("topic_prefix"),
                             help="Topic prefix; the worker's group and tables are named bcfwatch-PREFIX.")
bootstrap_option = click.option("--bootstrap", **from_settings("bootstrap"), help="Kafka bootstrap servers.")
stop_timeout_option = click.option(
    "--stop-timeout", **from_settings("stop_seconds"),
    type=click.FloatRange(min=0.5), help="On SIGTERM/SIGINT, seconds allowed for a graceful stop before the process "
                                         "is ended (BCFWATCH_STOP_SECONDS); a second signal ends it at once.")
bind_option = click.option(
    "--bind-address", **from_settings("bind_address"),
    help="Address the metrics and health endpoints (/metrics, /healthz, /readyz) listen on (BCFWATCH_BIND_ADDRESS).")


# -- worker ------------------------------------------------------------------------------------------------------
@click.command("worker")
@prefix_option
@bootstrap_option
@click.option("--partitions", **from_settings("partitions"), type=click.IntRange(1, 256),
              help="Partitions of the event topics and tables (must match the topics).")
@click.option("--lateness-days", **from_settings("lateness_days"), type=click.IntRange(0, 365),
              help="Events up to this far behind their board's stream time still count in their day.")
@click.option("--max-ahead-days", **from_settings("max_ahead_days"), type=click.IntRange(1, 3660),
              help="An event further than this ahead of its board's clock is held until a later event corroborates "
                   "it (a mistyped year cannot move the clock).")
@click.option("--web-port", default=DEFAULT_WEB_PORT, show_default=True, type=click.IntRange(1024, 65535),
              help="Port of the web view (/boards/CODE/metrics) on 127.0.0.1.")
@click.option("--datadir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the RocksDB tables live (default: the cache dir, per prefix and web port).")
@click.option("--metrics-port", default=9464, show_default=True, type=click.IntRange(0, 65535),
              help="Serve Prometheus pipeline metrics on 127.0.0.1:PORT/metrics (0: off).")
@click.option("--snapshot-seconds", default=DEFAULT_SNAPSHOT_SECONDS, show_default=True,
              type=click.FloatRange(min=0.05),
              help="How often the state is made durable; counts reach the monitor (and events are acknowledged) "
                   "with each snapshot.")
@click.option("--loglevel", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@stop_timeout_option
@bind_option
@friendly_errors
def worker_command(topic_prefix: str, bootstrap: str, partitions: int, lateness_days: int, max_ahead_days: int,
                   web_port: int, datadir: Path | None, metrics_port: int, snapshot_seconds: float,
                   loglevel: str, stop_timeout: float, bind_address: str) -> None:
    """Run a stream worker (start several to share the partitions)."""
    from bcfwatch.infra.memory import collect_cycles_less_often, freeze_start_up_objects, keep_large_blocks_mapped
    from streams.app import GracefulWorker, create_app, ensure_worker_topics

    # bcfwatch/infra/memory.py: packed records' values are freed unmapped, not kept; the cycle collector runs less
    # often and (below) leaves what start-up built alone
    keep_large_blocks_mapped()
    collect_cycles_less_often()

    config = WorkerConfig.for_worker(datadir, bootstrap=bootstrap, topic_prefix=topic_prefix, partitions=partitions,
                                     lateness_days=lateness_days, max_ahead_days=max_ahead_days, web_port=web_port,
                                     metrics_port=metrics_port or None, snapshot_seconds=snapshot_seconds,
                                     web_host=bind_address)
    replication = ensure_worker_topics(config)
    err_console.print(f"worker {config.app_id}: web view http://{bind_address}:{web_port}/boards/CODE/metrics"
                      + (f", metrics and health http://{bind_address}:{metrics_port}/metrics, /healthz, /readyz"
                         if metrics_port else ""))
    app = create_app(config, replication.factor)
    freeze_start_up_objects()
    GracefulWorker(app, loglevel=loglevel, quiet=True, stop_timeout=stop_timeout).execute_from_commandline()


# -- counts --------------------------------------------------------------------------------------------------------
@click.group()
def counts() -> None:
    """Read the live per-board per-day counts."""


@counts.command("export")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="CSV file to write (one row per board per day).")
@prefix_option
@bootstrap_option
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="First wait until the workers have processed every event on the topics.")
@click.option("--timeout", default=1800.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds to wait for the workers to catch up.")
@friendly_errors
def counts_export(out: Path, topic_prefix: str, bootstrap: str, wait: bool, timeout: float) -> None:
    """Write the committed live state as CSV (board, date, counts)."""
    from bcfwatch.infra.kafka import require_broker
    from streams.live_counts import export_counts

    require_broker(bootstrap)
    config = WorkerConfig(bootstrap=bootstrap, topic_prefix=topic_prefix)
    with err_console.status("waiting for the workers to catch up") if wait else contextlib.nullcontext() as status:
        try:
            exported = export_counts(config, out, wait, timeout,  # progress is reported only while waiting
                                     None if status is None else
                                     lambda lag: status.update(f"waiting for the workers: {lag:,} events to go"))
        except TimeoutError as error:
            raise click.ClickException(f"{error}; is `bcfwatch worker --topic-prefix {topic_prefix}` running?") \
                from None
    console.print(f"wrote {exported.board_days:,} board-days for {exported.boards} boards to {out}")


# -- monitor and notifier --------------------------------------------------------------------------------------------
@click.command("monitor")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The boards' plan file (docs/plan-format.md); required unless --sample-plan.")
@click.option("--sample-plan", is_flag=True,
              help="Judge against the shipped synthetic national-scale sample plan instead of a real one (for "
                   "trying bcfwatch out: its alerts are against invented plans).")
@plan_year_option
@prefix_option
@bootstrap_option
@click.option("--lateness-days", **from_settings("lateness_days"), type=click.IntRange(0, 365))
@click.option("--interval", default=10.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between evaluation rounds.")
@click.option("--once", is_flag=True, help="Evaluate once and exit.")
@click.option("--metrics-port", default=9465, show_default=True, type=click.IntRange(0, 65535),
              help="Serve Prometheus board metrics and /healthz, /readyz on BIND-ADDRESS:PORT (0: off).")
@stop_timeout_option
@bind_option
@friendly_errors
def monitor_command(plan_path: Path | None, sample_plan: bool, plan_year: date, topic_prefix: str, bootstrap: str,
                    lateness_days: int, interval: float, once: bool, metrics_port: int, stop_timeout: float,
                    bind_address: str) -> None:
    """Evaluate every board against its plan on a schedule; write alerts to PREFIX.alerts."""
    if plan_path is None and not sample_plan:
        raise click.UsageError("no plan: pass --plan FILE (docs/plan-format.md), or --sample-plan to judge against "
                               "the shipped synthetic sample plan (national scale, for trying bcfwatch out)")
    if plan_path is not None and sample_plan:
        raise click.UsageError("give --plan FILE or --sample-plan, not both")
    if sample_plan:
        err_console.print("[yellow]judging against the synthetic sample plan (--sample-plan): alerts are against "
                          "invented plans, not the boards' own[/yellow]")
    from bcfwatch.infra.kafka import require_broker
    from bcfwatch.infra.lifecycle import GracefulStop
    from monitors.service.processes import MonitorService
    from producers.sample_plan import sample_plan_path

    stop = GracefulStop("monitor", stop_timeout).install()
    require_broker(bootstrap)
    plans = load_plan_or_fail(plan_path or sample_plan_path())
    config = WorkerConfig(bootstrap=bootstrap, topic_prefix=topic_prefix, lateness_days=lateness_days)
    service = MonitorService(config, plans, plan_year, interval, stop)
    if metrics_port:
        try:
            service.serve_health(metrics_port, bind_address)
            console.print(f"board metrics at http://{bind_address}:{metrics_port}/metrics (health: /healthz, /readyz)")
        except OSError as error:  # keep monitoring, say why there are no metrics
            err_console.print(f"[red]metrics port {metrics_port} unavailable ({error}): pass --metrics-port[/red]")

    def report(events: list[Alert]) -> None:
        for event in events:
            console.print(f"{event.as_of}  {event.state:<8} {event.severity:<8} {event.board}  "
                          f"{event.metric}  variance {event.variance_pct:+.1f}%  "
                          f"£{event.money_at_risk_gbp:,.0f} at risk  {', '.join(event.spc_rules)}")

    service.run(report, once=once)


@click.command("notify")
@click.option("--subscriptions", "subscriptions_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Subscriptions file (TOML, docs/subscriptions.md).")
@prefix_option
@bootstrap_option
@click.option("--metrics-port", default=9467, show_default=True, type=click.IntRange(0, 65535),
              help="Serve the notifier's metrics and /healthz, /readyz on BIND-ADDRESS:PORT (0: off).")
@stop_timeout_option
@bind_option
@friendly_errors
def notify_command(subscriptions_path: Path, topic_prefix: str, bootstrap: str, metrics_port: int,
                   stop_timeout: float, bind_address: str) -> None:
    """Deliver alerts to subscribers (signed webhooks, e-mail), each exactly once, in order."""
    from bcfwatch.core.topics import Topics
    from bcfwatch.infra.kafka import require_broker
    from bcfwatch.infra.lifecycle import GracefulStop
    from monitors.alerting.subscriptions import SubscriptionError, load_subscriptions
    from monitors.service.processes import NotifierService

    stop = GracefulStop("notifier", stop_timeout).install()

    try:
        subscribers = load_subscriptions(subscriptions_path)
    except SubscriptionError as error:
        raise click.ClickException(str(error)) from None
    require_broker(bootstrap)
    service = NotifierService(bootstrap, Topics(topic_prefix), subscribers, stop)
    if metrics_port:
        try:
            service.serve_health(metrics_port, bind_address)
        except OSError as error:  # keep delivering, say why there are no metrics
            err_console.print(f"[red]metrics port {metrics_port} unavailable ({error}): pass --metrics-port[/red]")
    console.print(f"delivering {topic_prefix}.alerts to {len(subscribers)} subscriber(s); Ctrl-C to stop")

    def report(alert: Alert, outcomes: list) -> None:
        for subscriber, outcome in outcomes:
            console.print(f"{alert.event_id}  {alert.state:<8} {alert.board}  -> {subscriber}: {outcome}")

    service.run(report)


COMMANDS = (worker_command, counts, monitor_command, notify_command)
