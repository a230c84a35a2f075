"""The ``bcfwatch`` command line."""

from __future__ import annotations

import functools
import sys
import time
from datetime import date
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bcfwatch.core import settings

# Tables a person reads: the terminal's width, or 140 columns when output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)


def friendly_errors(command):
    """Turn expected failures into one clear line and exit code 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from kafka.errors import KafkaError

        from bcfwatch.core.plans import PlanError
        from bcfwatch.infra.broker import BrokerError
        from producers.generate import GenerateError
        from producers.logformat import LogFormatError
        from producers.pseudonym import PseudonymKeyError

        try:
            return command(*args, **kwargs)
        except (BrokerError, GenerateError, LogFormatError, PlanError, PseudonymKeyError, KafkaError) as error:
            raise click.ClickException(str(error)) from None

    return wrapper


def _progress(unit: str) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err_console, transient=False,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bcfwatch")
def main() -> None:
    """bcfwatch: watch Better Care Fund outcomes as events happen."""


# -- kafka -------------------------------------------------------------------
@main.group()
def kafka() -> None:
    """Run the local single-node Kafka broker (KRaft) fetched from Maven Central."""


port_option = click.option("--port", default=9092, show_default=True, type=click.IntRange(1024, 65535),
                           help="Broker port on 127.0.0.1 (the controller uses port + 1000).")


secure_option = click.option("--secure", is_flag=True,
                              help="SASL_SSL (TLS + SCRAM-SHA-512) with ACLs per service (docs/security.md).")


@kafka.command("start")
@port_option
@click.option("--fresh", is_flag=True, help="Delete the broker's data first.")
@secure_option
@click.option("--topic-prefix", default=settings.topic_prefix, show_default="bcf",
              help="With --secure: create this prefix's topics and grant each service its ACLs on them.")
@click.option("--partitions", default=settings.partitions, type=click.IntRange(1, 1024), show_default="8",
              help="With --secure: partitions of the event and state topics created for the prefix.")
@friendly_errors
def kafka_start(port: int, fresh: bool, secure: bool, topic_prefix: str, partitions: int) -> None:
    """Fetch (once), format (once) and start the broker; wait until it serves."""
    from bcfwatch.infra.broker import KAFKA_VERSION, Broker

    broker = Broker(port=port, secure=secure)
    if broker.pid() is not None and not secure:
        console.print(f"Kafka {KAFKA_VERSION} is already running at {broker.bootstrap} (pid {broker.pid()})")
        return
    if broker.pid() is None:
        with console.status(f"starting Kafka {KAFKA_VERSION} on {broker.bootstrap}"):
            broker.start(fresh=fresh)
    mode = "SASL_SSL, SCRAM-SHA-512, ACLs" if secure else "plaintext"
    console.print(f"Kafka {KAFKA_VERSION} is up at {broker.bootstrap} ({mode}; pid {broker.pid()}, "
                  f"data {broker.home})")
    if secure:
        from bcfwatch.infra.kafka_admin import authorise_prefix

        acls = authorise_prefix(broker.bootstrap, topic_prefix, partitions, broker.client_security("admin"))
        console.print(f"topics for prefix {topic_prefix!r} created; {acls} ACLs for "
                      "replay, worker, monitor and notifier. Client settings: "
                      "`bcfwatch kafka env --secure --service NAME`")


@kafka.command("env")
@port_option
@secure_option
@click.option("--service", type=click.Choice(["replay", "worker", "monitor", "notifier", "admin"]),
              default="admin", show_default=True, help="The principal whose settings to print.")
@friendly_errors
def kafka_env(port: int, secure: bool, service: str) -> None:
    """Print a service's client settings as shell `export` lines (eval "$(bcfwatch kafka env ...)")."""
    import shlex

    from bcfwatch.infra.broker import Broker

    broker = Broker(port=port, secure=secure)
    security = broker.client_security(service)
    for name, value in {"BCFWATCH_BOOTSTRAP": broker.bootstrap, **security.env()}.items():
        click.echo(f"export {name}={shlex.quote(value)}")


@kafka.command("stop")
@port_option
@friendly_errors
def kafka_stop(port: int) -> None:
    """Stop the broker started by `bcfwatch kafka start`."""
    from bcfwatch.infra.broker import Broker

    stopped = Broker(port=port).stop()
    console.print("Kafka stopped" if stopped else f"no bcfwatch broker was running on port {port}")


@kafka.command("status")
@port_option
def kafka_status(port: int) -> None:
    """Say whether the broker is running; exit 1 when it is not."""
    from bcfwatch.infra.broker import Broker

    broker = Broker(port=port)
    pid = broker.pid()
    if pid is not None and broker.accepts_connections():
        console.print(f"running at {broker.bootstrap} (pid {pid})")
        return
    console.print(f"not running on port {port}")
    sys.exit(1)


@kafka.command("fetch")
@friendly_errors
def kafka_fetch() -> None:
    """Download the broker jars from Maven Central into the cache (done by start too)."""
    from bcfwatch.infra.broker import Broker

    with console.status("fetching Kafka from Maven Central"):
        libs = Broker().fetch()
    console.print(f"Kafka jars in {libs}")


# -- reference data ----------------------------------------------------------
@main.command("boards")
def boards_command() -> None:
    """List the 151 BCF plan boards with their populations."""
    from bcfwatch.core.boards import load_boards

    table = Table(title="Health and wellbeing boards with BCF plans, 2015-16 (mid-2014 population)")
    for column in ("code", "board", "population", "18+", "65+"):
        table.add_column(column, justify="right" if column[0].isdigit() or column == "population" else "left")
    for board in load_boards():
        table.add_row(board.code, board.name, f"{board.population:,}", f"{board.population_18_plus:,}",
                      f"{board.population_65_plus:,}")
    console.print(table)


# -- generate ----------------------------------------------------------------
def _iso_date(_ctx, param, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2014-04-01", param=param) from None


plan_option = click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                           help="Plan file (default: the shipped sample plan).")
plan_year_option = click.option("--plan-year", default="2015-04-01", show_default=True, callback=_iso_date,
                                help="First day of the plan year (the year before is the baseline).")


def _print_measures(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column table: what, and its value."""
    table = Table(title=title)
    table.add_column("what")
    table.add_column("value", justify="right")
    for what, value in rows:
        table.add_row(what, value)
    console.print(table)


@main.command("generate")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Log file to write (.jsonl, or .csv for CSV).")
@click.option("--from", "start", default="2014-04-01", show_default=True, callback=_iso_date,
              help="First day (the first financial year is the baseline).")
@click.option("--to", "end", default="2016-03-31", show_default=True, callback=_iso_date, help="Last day.")
@click.option("--scale", default=0.01, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="1.0 is national volume (~5.5M emergency admissions a year).")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed (same seed, same file).")
@click.option("--drift", "drifts", multiple=True, metavar="BOARD:[creep]+N%[@DATE]",
              help="Make a board drift off plan in the plan years: BOARD:+N% a step of +N% (or -N%) from the "
                   "start of the plan year; BOARD:+N%@YYYY-MM-DD the step from that date (a date in the baseline "
                   "year is refused); BOARD:creep+N% a linear ramp from 0 to +N% over 365 days from the start "
                   "of the plan year (or from @DATE), held after. Repeatable.")
@click.option("--dispersion", default=1.0, show_default=True, type=click.FloatRange(min=1), metavar="PHI",
              help="Overdispersion: variance/mean ratio of each board's daily (and so weekly) emergency "
                   "admissions around their expected value, by gamma-Poisson mixing; 1 is Poisson.")
@click.option("--weekly-noise", default=0.0, show_default=True, type=click.FloatRange(min=0), metavar="SD",
              help="Local pressure: each board's admissions in each week (Monday-Sunday) are multiplied by a "
                   "lognormal factor with mean 1 and log standard deviation SD (0.03: swings of about 3%).")
@click.option("--weekly-persistence", default=0.0, show_default=True,
              type=click.FloatRange(0, 1, max_open=True), metavar="RHO",
              help="AR(1) coefficient of the local pressure from one week to the next (its spread stays SD).")
@click.option("--weekday-profile", default="1,1,1,1,1,0.82,0.82", show_default=True, metavar="MON,...,SUN",
              help="Seven multipliers, Monday to Sunday, rescaled to average 1 over a week.")
@click.option("--winter-peak", default=5.0, show_default=True, type=click.FloatRange(0, 100, max_open=True),
              metavar="PCT", help="Seasonal swing: the peak day PCT% above the yearly mean, the summer trough "
                                  "PCT% below (a cosine).")
@click.option("--winter-peak-on", default="01-15", show_default=True, metavar="MM-DD",
              help="Day of the year of the winter peak.")
@click.option("--winter-varies", default=0.0, show_default=True, type=click.FloatRange(min=0), metavar="PP",
              help="Standard deviation, in percentage points, of each winter's peak: half of the variance "
                   "shared by every board that winter, half each board's own (never below 0).")
@click.option("--bank-holidays/--no-bank-holidays", default=False, show_default=True,
              help="England's bank holidays (holidays package, GB subdivision ENG, Monday-Friday, so Easter "
                   "and substitute days fall on the right dates) --bank-holiday-drop below the same weekday.")
@click.option("--bank-holiday-drop", default=27.5, show_default=True,
              type=click.FloatRange(0, 100, max_open=True), metavar="PCT",
              help="How much lower a bank holiday is than the same weekday otherwise (admissions are lost, "
                   "not moved); only with --bank-holidays.")
@click.option("--late-share", default=0.05, show_default=True, type=click.FloatRange(0, 1),
              help="Share of events that arrive out of order (late).")
@click.option("--duplicate-share", default=0.01, show_default=True, type=click.FloatRange(0, 1),
              help="Share of events sent twice.")
@click.option("--malformed-share", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of extra malformed lines mixed in (for testing the dead-letter path).")
@friendly_errors
def generate_command(out: Path, start: date, end: date, scale: float, seed: int, drifts: tuple[str, ...],
                     late_share: float, duplicate_share: float, malformed_share: float, dispersion: float,
                     weekly_noise: float, weekly_persistence: float, weekday_profile: str, winter_peak: float,
                     winter_peak_on: str, winter_varies: float, bank_holidays: bool,
                     bank_holiday_drop: float) -> None:
    """Write a synthetic national event log.

    By default admissions have the shape the plan trajectories assume (weekends 18% lower, a 5% winter
    peak on 15 January) and Poisson noise, and a seed always gives the same file. The shape and noise
    options make data the drift rules were not fitted to; in Python they are
    producers.generate.AdmissionsModel (GeneratorSpec.admissions).
    """
    import time

    from producers.generate import (
        AdmissionsModel,
        Drift,
        GeneratorSpec,
        generate_frame,
        parse_peak_day,
        parse_weekday_profile,
        write_log,
    )

    admissions = AdmissionsModel(
        weekday_profile=parse_weekday_profile(weekday_profile), winter_peak=winter_peak / 100,
        winter_peak_day=parse_peak_day(winter_peak_on), winter_varies=winter_varies / 100,
        bank_holidays=bank_holidays, bank_holiday_factor=1 - bank_holiday_drop / 100,
        weekly_noise=weekly_noise, weekly_persistence=weekly_persistence, dispersion=dispersion)
    spec = GeneratorSpec(start=start, end=end, scale=scale, seed=seed, drifts=[Drift.parse(d) for d in drifts],
                         late_share=late_share, duplicate_share=duplicate_share, malformed_share=malformed_share,
                         admissions=admissions)
    started = time.monotonic()
    with err_console.status("generating") as status:
        events = generate_frame(spec, progress=lambda step: status.update(f"generating {step}"))
    with _progress("lines") as progress:
        task = progress.add_task("writing", total=len(events), rate="")

        def advance(lines: int) -> None:
            elapsed = time.monotonic() - started
            done = progress.tasks[task].completed + lines
            progress.update(task, advance=lines, rate=f"{done / max(elapsed, 1e-9):,.0f} lines/s")

        written = write_log(events, out, progress=advance)
    elapsed = time.monotonic() - started
    console.print(f"wrote {written:,} lines to {out} in {elapsed:.1f} s ({written / elapsed:,.0f} lines/s)")


# -- replay ------------------------------------------------------------------
def _speed(_ctx, param, value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        speed = -1.0
    if speed <= 0:
        raise click.BadParameter(f"{value!r} is neither 'max' nor a positive number of events per second",
                                 param=param)
    return speed


@main.command("replay")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--speed", default="max", show_default=True, callback=_speed,
              help="Events per second, or 'max' for as fast as the broker takes them.")
@click.option("--topic-prefix", default=settings.topic_prefix, show_default="bcf",
              help="Topics are PREFIX.admission, PREFIX.discharge, PREFIX.care_home_placement, PREFIX.dead_letter.")
@click.option("--bootstrap", default=settings.bootstrap_servers, show_default="127.0.0.1:9092",
              help="Kafka bootstrap servers.")
@click.option("--partitions", default=settings.partitions, show_default="8", type=click.IntRange(1, 256),
              help="Partitions for topics this replay creates.")
@click.option("--dev-key", is_flag=True, help="Use a generated development pseudonymisation key if none is set.")
@click.option("--resume", is_flag=True,
              help="Continue after the last line the broker acknowledged in an earlier run of this log (same file, "
                   "size and modification time, prefix and bootstrap); lines re-sent around the checkpoint count "
                   "once (duplicates). Without a checkpoint, replays from the start.")
@click.option("--delivery-timeout", default=120.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds the broker may acknowledge nothing (an outage) before the replay gives up with exit "
                   "code 1; outages are reported as they happen.")
@click.option("--packed", is_flag=True,
              help="Publish packed records: one Kafka record per board and event type per batch (at most 1,000 "
                   "events or 256 KB), header content-type: application/vnd.bcfwatch.events+json "
                   "(docs/wire-format.md). Many times faster; workers read packed and single records alike.")
@friendly_errors
def replay_command(log: Path, speed: float | None, topic_prefix: str, bootstrap: str, partitions: int,
                   dev_key: bool, resume: bool, delivery_timeout: float, packed: bool) -> None:
    """Replay a historic event log (JSON Lines or CSV) into Kafka.

    The last line the broker has acknowledged is kept in a checkpoint (in the cache dir), so a replay that
    was killed or gave up continues with --resume.
    """
    import time

    from producers.logformat import count_lines
    from producers.pseudonym import Pseudonymiser, load_key
    from producers.replay import ReplayError, checkpoint_path, read_checkpoint, replay

    pseudonymiser = Pseudonymiser(load_key(dev=dev_key))
    if resume:
        checkpoint = read_checkpoint(checkpoint_path(log, topic_prefix, bootstrap))
        if checkpoint is None:
            err_console.print(f"no checkpoint for {log} (as it is now) under prefix {topic_prefix} at {bootstrap}: "
                              "replaying from the start")
        elif not checkpoint.complete:
            err_console.print(f"resuming after line {checkpoint.acknowledged_through_line:,}, the last one the "
                              f"broker acknowledged (checkpoint of {checkpoint.updated_at})")
    total = count_lines(log)
    started = time.monotonic()
    with _progress("events") as progress:
        task = progress.add_task(f"replaying {log.name}", total=total, rate="")

        def advance(lines: int) -> None:
            done = progress.tasks[task].completed + lines
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=lines, rate=f"{rate:,.0f} events/s")

        def warn(message: str) -> None:
            progress.console.print(f"[yellow]{message}[/yellow]")

        try:
            report = replay(log, bootstrap, settings.Topics(topic_prefix), pseudonymiser, partitions,
                            events_per_second=speed, on_progress=advance, resume=resume,
                            delivery_timeout=delivery_timeout, on_warning=warn, packed=packed)
        except ReplayError as error:
            progress.stop()
            raise click.ClickException(str(error)) from None
    if report.already_complete:
        console.print(f"{log} was already replayed completely under prefix {topic_prefix} "
                      f"({report.acknowledged_through_line:,} lines acknowledged, checkpoint {report.checkpoint}); "
                      "nothing to do")
        return
    _print_measures(f"Replay of {log}", [
        *[(f"produced to {topic_prefix}.{t}", f"{report.produced[t]:,}") for t in settings.EVENT_TYPES],
        (f"dead-lettered to {topic_prefix}.dead_letter", f"{len(report.rejected):,}"),
        ("lines read", f"{report.lines:,}"
         + (f" (after line {report.resumed_after_line:,}, resumed)" if report.resumed_after_line else "")),
        ("throughput", f"{report.events_per_second:,.0f} events/s"),
        *([("packed records", f"{report.packed_records:,}")] if packed else []),
        *([("broker outages ridden out", ", ".join(f"{s:.0f} s" for s in report.outages))] if report.outages else []),
    ])
    if report.rejected:
        by_reason = Table(title=f"Rejected lines by reason (each on {topic_prefix}.dead_letter)")
        by_reason.add_column("reason")
        by_reason.add_column("lines", justify="right")
        for code, lines in report.rejected_by_reason.most_common():
            by_reason.add_row(code, f"{lines:,}")
        console.print(by_reason)
        rejected = Table(title=f"Rejected lines (first 20 of {len(report.rejected):,})")
        rejected.add_column("line", justify="right")
        rejected.add_column("reason")
        for number, reason in report.rejected[:20]:
            rejected.add_row(str(number), reason)
        console.print(rejected)
    if report.lines and not sum(report.produced.values()):
        raise click.ClickException(f"no line of {log} was accepted; reasons above and on {topic_prefix}.dead_letter "
                                   "(see docs/log-format.md for the format)")


# -- worker and counts ---------------------------------------------------------
prefix_option = click.option("--topic-prefix", default=settings.topic_prefix, show_default="bcf",
                             help="Topic prefix; the worker's group and tables are named bcfwatch-PREFIX.")
bootstrap_option = click.option("--bootstrap", default=settings.bootstrap_servers, show_default="127.0.0.1:9092",
                                help="Kafka bootstrap servers.")


def _stop_seconds() -> float:
    from bcfwatch.infra.lifecycle import stop_seconds

    return stop_seconds()


def _bind_address() -> str:
    from bcfwatch.infra.lifecycle import bind_address

    return bind_address()


stop_timeout_option = click.option(
    "--stop-timeout", default=_stop_seconds, show_default="10",
    type=click.FloatRange(min=0.5), help="On SIGTERM/SIGINT, seconds allowed for a graceful stop before the process "
                                         "is ended (BCFWATCH_STOP_SECONDS); a second signal ends it at once.")
bind_option = click.option(
    "--bind-address", default=_bind_address,
    show_default="127.0.0.1", help="Address the metrics and health endpoints (/metrics, /healthz, /readyz) listen "
                                   "on (BCFWATCH_BIND_ADDRESS).")


def _worker_config(topic_prefix: str, bootstrap: str, **extra):
    from streams.app import WorkerConfig

    return WorkerConfig(bootstrap=bootstrap, topic_prefix=topic_prefix, **extra)


@main.command("worker")
@prefix_option
@bootstrap_option
@click.option("--partitions", default=settings.partitions, show_default="8", type=click.IntRange(1, 256),
              help="Partitions of the event topics and tables (must match the topics).")
@click.option("--lateness-days", default=settings.lateness_days, show_default="14", type=click.IntRange(0, 365),
              help="Events up to this far behind their board's stream time still count in their day.")
@click.option("--max-ahead-days", default=settings.max_ahead_days, show_default="31", type=click.IntRange(1, 3660),
              help="An event further than this ahead of its board's clock is held until a later event corroborates "
                   "it (a mistyped year cannot move the clock).")
@click.option("--web-port", default=6066, show_default=True, type=click.IntRange(1024, 65535),
              help="Port of the web view (/boards/CODE/metrics) on 127.0.0.1.")
@click.option("--datadir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the RocksDB tables live (default: the cache dir, per prefix and web port).")
@click.option("--metrics-port", default=9464, show_default=True, type=click.IntRange(0, 65535),
              help="Serve Prometheus pipeline metrics on 127.0.0.1:PORT/metrics (0: off).")
@click.option("--snapshot-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0.05),
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
    from bcfwatch.core.settings import cache_dir
    from streams.app import GracefulWorker, create_app, ensure_worker_topics

    datadir = datadir or cache_dir() / f"worker-{topic_prefix}-{web_port}"
    config = _worker_config(topic_prefix, bootstrap, partitions=partitions, lateness_days=lateness_days,
                            max_ahead_days=max_ahead_days, datadir=datadir, web_port=web_port,
                            metrics_port=metrics_port or None, snapshot_seconds=snapshot_seconds,
                            web_host=bind_address)
    ensure_worker_topics(config)
    err_console.print(f"worker {config.app_id}: web view http://{bind_address}:{web_port}/boards/CODE/metrics"
                      + (f", metrics and health http://{bind_address}:{metrics_port}/metrics, /healthz, /readyz"
                         if metrics_port else ""))
    GracefulWorker(create_app(config), loglevel=loglevel, quiet=True,
                   stop_timeout=stop_timeout).execute_from_commandline()


@main.group()
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
    from bcfwatch.infra.kafka_admin import require_broker
    from streams.daily_table import from_state, write_csv
    from streams.state_reader import day_counts, latest_snapshots, wait_until_caught_up

    require_broker(bootstrap)
    config = _worker_config(topic_prefix, bootstrap)
    snapshots = None
    if wait:
        with err_console.status("waiting for the workers to catch up") as status:
            try:
                snapshots = wait_until_caught_up(config, timeout,
                                     lambda lag: status.update(f"waiting for the workers: {lag:,} events to go"))
            except TimeoutError as error:
                raise click.ClickException(
                    f"{error}; is `bcfwatch worker --topic-prefix {topic_prefix}` running?") from None
    table = from_state(day_counts(snapshots if snapshots is not None else latest_snapshots(config)))
    write_csv(table, out)
    console.print(f"wrote {len(table):,} board-days for {table['board'].nunique() if len(table) else 0} boards "
                  f"to {out}")


@main.command("monitor")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The boards' plan file (docs/plan-format.md); required unless --sample-plan.")
@click.option("--sample-plan", is_flag=True,
              help="Judge against the shipped synthetic national-scale sample plan instead of a real one (for "
                   "trying bcfwatch out: its alerts are against invented plans).")
@plan_year_option
@prefix_option
@bootstrap_option
@click.option("--lateness-days", default=settings.lateness_days, show_default="14", type=click.IntRange(0, 365))
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
    from bcfwatch.infra.kafka_admin import require_broker
    from bcfwatch.infra.lifecycle import BrokerProbe, GracefulStop, Health, serve_health
    from monitors.monitor import Monitor
    from producers.sample_plan import sample_plan_path

    stop = GracefulStop("monitor", stop_timeout).install()
    require_broker(bootstrap)
    plans = _load_plan_or_fail(plan_path or sample_plan_path())
    probe = BrokerProbe(bootstrap, "monitor").start()
    monitor = Monitor(_worker_config(topic_prefix, bootstrap, lateness_days=lateness_days), plans, plan_year)
    monitor.stop = stop.requested
    health = Health("monitor", probe, stop.requested, live_within=max(120.0, 3 * interval),
                    lag=lambda: monitor.live.lag)
    if metrics_port:
        try:
            serve_health(health, metrics_port, bind_address)
            console.print(f"board metrics at http://{bind_address}:{metrics_port}/metrics (health: /healthz, /readyz)")
        except OSError as error:  # keep monitoring, say why there are no metrics
            err_console.print(f"[red]metrics port {metrics_port} unavailable ({error}): pass --metrics-port[/red]")

    def report(events: list[dict]) -> None:
        health.beat()
        for event in events:
            console.print(f"{event['as_of']}  {event['state']:<8} {event['severity']:<8} {event['board']}  "
                          f"{event['metric']}  variance {event['variance_pct']:+.1f}%  "
                          f"£{event['money_at_risk_gbp']:,.0f} at risk  {', '.join(event['spc_rules'])}")

    try:
        monitor.run(interval, report, rounds=1 if once else None)
    finally:
        monitor.close()
        probe.stop()
    if stop.requested.is_set():
        stop.done()


@main.command("notify")
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
    from bcfwatch.infra.kafka_admin import require_broker
    from bcfwatch.infra.lifecycle import BrokerProbe, GracefulStop, Health, serve_health
    from monitors.delivery import Notifier
    from monitors.subscriptions import SubscriptionError, load_subscriptions

    stop = GracefulStop("notifier", stop_timeout).install()

    try:
        subscribers = load_subscriptions(subscriptions_path)
    except SubscriptionError as error:
        raise click.ClickException(str(error)) from None
    require_broker(bootstrap)
    probe = BrokerProbe(bootstrap, "notifier").start()
    notifier = Notifier(bootstrap, settings.Topics(topic_prefix), subscribers)
    notifier.stop = stop.requested
    health = Health("notifier", probe, stop.requested, lag=notifier.lag)
    if metrics_port:
        try:
            serve_health(health, metrics_port, bind_address)
        except OSError as error:  # keep delivering, say why there are no metrics
            err_console.print(f"[red]metrics port {metrics_port} unavailable ({error}): pass --metrics-port[/red]")
    console.print(f"delivering {topic_prefix}.alerts to {len(subscribers)} subscriber(s); Ctrl-C to stop")

    def report(alert: dict, outcomes: list) -> None:
        for subscriber, outcome in outcomes:
            console.print(f"{alert['event_id']}  {alert['state']:<8} {alert['board']}  -> {subscriber}: {outcome}")

    try:
        while not stop.requested.is_set():
            notifier.poll(on_delivery=report)
            health.beat()
    finally:
        notifier.close()
        probe.stop()
    stop.done()


# -- plans -------------------------------------------------------------------
@main.group()
def plan() -> None:
    """Check and summarise BCF plan files (docs/plan-format.md)."""


plan_file = click.argument("plan_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))


def _load_plan_or_fail(plan_path: Path):
    from bcfwatch.core.plans import PlanError, load_plan

    try:
        return load_plan(plan_path)
    except PlanError as error:
        raise click.ClickException(f"{error}\nFix those rows and run `bcfwatch plan check` again.") from None


@plan.command("check")
@plan_file
def plan_check(plan_path: Path) -> None:
    """Validate a plan file: every problem with its row, column and reason."""
    plans = _load_plan_or_fail(plan_path)
    console.print(f"{plan_path}: OK, plans for all {len(plans)} boards")


@plan.command("summary")
@plan_file
@click.option("--unit-cost", default=1550.0, show_default=True, type=click.FloatRange(min=0),
              help="£ per avoided emergency admission.")
def plan_summary(plan_path: Path, unit_cost: float) -> None:
    """The national roll-up: pool, planned savings, avoided admissions, boards by approval status."""
    from bcfwatch.core.plans import national_summary

    summary = national_summary(_load_plan_or_fail(plan_path), unit_cost)
    delayed_change = summary.planned_delayed_days / max(summary.baseline_delayed_days, 1) - 1
    _print_measures(f"National roll-up of {summary.boards} BCF plans ({plan_path.name})", [
        ("pooled funds", f"£{summary.pooled_fund_gbp / 1e9:,.2f}bn"),
        ("baseline emergency admissions (a year)", f"{summary.baseline_emergency:,}"),
        ("planned reduction", f"{summary.planned_reduction:.2%}"),
        ("avoided emergency admissions", f"{summary.avoided_admissions:,.0f}"),
        (f"their value at £{unit_cost:,.0f} each", f"£{summary.avoided_admissions_value_gbp / 1e6:,.1f}m"),
        ("delayed days: baseline -> planned",
         f"{summary.baseline_delayed_days:,} -> {summary.planned_delayed_days:,} ({delayed_change:+.1%})"),
        *[(f"boards {status}", str(count)) for status, count in summary.by_status.items()],
    ])


@plan.command("sample")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Baselines at this share of national volume (match the generator's --scale).")
@click.option("--seed", default=2015, show_default=True, type=int)
def plan_sample(out: Path, scale: float, seed: int) -> None:
    """Write a synthetic plan for every board (national planned reduction 3.07%)."""
    from producers.sample_plan import write_sample_plan

    write_sample_plan(out, scale, seed)
    console.print(f"wrote a sample plan for every board to {out}")


# -- analyst tools ---------------------------------------------------------------
@main.command("evaluate")
@click.option("--years", default=6, show_default=True, type=click.IntRange(1, 200),
              help="Simulated national years per noise setting.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--setting", "setting_names", multiple=True,
              help="Only these noise settings (mild, typical, harsh); default all.")
@click.option("--markdown", "markdown_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the table and summary as markdown (e.g. for docs/evaluation.md).")
def evaluate_command(years: int, seed: int, setting_names: tuple[str, ...], markdown_out: Path | None) -> None:
    """Benchmark the drift rule on simulated years it was not fitted to (not a pass/fail test)."""
    from monitors.evaluate import SETTINGS, evaluate, markdown, summary, tidy_table

    chosen = tuple(s for s in SETTINGS if not setting_names or s.name in setting_names)
    if not chosen:
        raise click.BadParameter(f"choose from {', '.join(s.name for s in SETTINGS)}", param_hint="--setting")
    started = time.monotonic()
    with err_console.status("simulating") as status:
        outcomes = evaluate(years, seed, chosen, progress=status.update)
    table = tidy_table(outcomes)
    shown = Table(title=f"Drift rule on {years} simulated years per setting (seed {seed})")
    for column in table.columns:
        shown.add_column(column, justify="left" if column in ("setting", "scenario", "size") else "right")
    for row in table.itertuples(index=False):
        shown.add_row(*["" if pd_isna(v) else (f"{v:.1f}" if isinstance(v, float) else str(v)) for v in row])
    console.print(shown)
    totals = summary(outcomes)
    _print_measures("Summary", [(name, f"{value:.2f}" if isinstance(value, float) else str(value))
                                for name, value in totals.items()]
                    + [("time", f"{time.monotonic() - started:.0f} s")])
    if markdown_out is not None:
        lines = [markdown(table), "", *[f"- {name}: {value:.2f}" if isinstance(value, float) else
                                        f"- {name}: {value}" for name, value in totals.items()]]
        markdown_out.write_text("\n".join(lines) + "\n")
        console.print(f"markdown written to {markdown_out}")


def pd_isna(value: object) -> bool:
    return isinstance(value, float) and value != value


def _run_backtest(log: Path, plans: dict, plan_year: date, lateness_days: int,
                  max_ahead_days: int | None = None):
    """The backtest with a progress bar over the log (MB read), then a status line for each later step."""
    from monitors.backtest import backtest

    progress = _progress("MB")
    task = progress.add_task(f"reading {log.name}", total=max(log.stat().st_size // 1_000_000, 1), rate="")
    started, status = time.monotonic(), None

    def advance(done: int, total: int) -> None:
        rate = done / 1e6 / max(time.monotonic() - started, 1e-9)
        progress.update(task, completed=done // 1_000_000, rate=f"{rate:,.0f} MB/s")

    def say(step: str) -> None:
        nonlocal status
        if status is None:
            progress.stop()
            status = err_console.status(step)
            status.start()
        status.update(step)

    progress.start()
    try:
        return backtest(log, plans, plan_year, lateness_days, say=say, progress=advance,
                        max_ahead_days=max_ahead_days or settings.max_ahead_days())
    finally:
        progress.stop()
        if status is not None:
            status.stop()


def _account_for_lines(log: Path, result, rejected_path: Path, held_path: Path) -> None:
    """Say where every line went: rejected lines by reason, held events; fail when nothing was accepted."""
    if result.ignored_columns:
        err_console.print(f"[yellow]ignored CSV columns (not log columns): {', '.join(result.ignored_columns)}")
    by_reason = result.rejected_by_reason
    if by_reason:
        table = Table(title=f"Rejected lines of {log.name} (all written to {rejected_path}, NHS numbers redacted)")
        table.add_column("reason")
        table.add_column("lines", justify="right")
        for reason, lines in by_reason.items():
            table.add_row(reason, f"{lines:,}")
        console.print(table)
    if len(result.held):
        console.print(f"{len(result.held):,} event(s) held far ahead of their board's clock and never corroborated "
                      f"(a mistyped date?), not counted: {held_path}")
    if result.events == 0:
        raise click.ClickException(f"no line of {log} was accepted ({sum(by_reason.values()):,} rejected, "
                                   f"reasons in {rejected_path}); see docs/log-format.md for the format")


@main.command("backtest")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@plan_option
@plan_year_option
@click.option("--lateness-days", default=settings.lateness_days, show_default="14", type=click.IntRange(0, 365))
@click.option("--max-ahead-days", default=settings.max_ahead_days, show_default="31", type=click.IntRange(1, 3660),
              help="Events further than this ahead of their board's clock are held until corroborated.")
@click.option("--out", "out_dir", default=Path("backtest"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for counts.csv, alerts.jsonl, rejected.jsonl and held.jsonl.")
@friendly_errors
def backtest_command(log: Path, plan_path: Path | None, plan_year: date, lateness_days: int, max_ahead_days: int,
                     out_dir: Path) -> None:
    """Recompute the counts and the alert timeline offline (pandas, no Kafka)."""
    from monitors.backtest import write_outputs, write_side_outputs
    from producers.sample_plan import sample_plan_path

    plans = _load_plan_or_fail(plan_path or sample_plan_path())
    result = _run_backtest(log, plans, plan_year, lateness_days, max_ahead_days)
    counts_path, alerts_path = write_outputs(result, out_dir)
    rejected_path, held_path = write_side_outputs(result, out_dir)
    raised = sorted({a["board"] for a in result.alerts if a["state"] == "raised"})
    _print_measures(f"Backtest of {log.name}", [
        ("valid events", f"{result.events:,}"),
        ("rejected lines", f"{result.rejected.num_rows:,} -> {rejected_path}"),
        ("held (never corroborated)", f"{len(result.held):,} -> {held_path}"),
        ("board-days", f"{len(result.counts):,} -> {counts_path}"),
        ("alert events", f"{len(result.alerts):,} -> {alerts_path}"),
        ("boards alerted", ", ".join(raised) if raised else "none"),
        ("time", f"{result.seconds:.1f} s ({result.events / max(result.seconds, 1e-9):,.0f} events/s)"),
    ])
    _account_for_lines(log, result, rejected_path, held_path)


@main.command("report")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@plan_option
@plan_year_option
@click.option("--out", "out", default=Path("report.html"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="report.html, or a .png for one board's chart.")
@click.option("--board", default=None, help="Only this board (ONS code); required for PNG output.")
@friendly_errors
def report_command(log: Path, plan_path: Path | None, plan_year: date, out: Path, board: str | None) -> None:
    """Write a self-contained HTML report (or one board's SPC chart as PNG)."""
    from bcfwatch.core.boards import load_boards
    from monitors.report import write_report
    from producers.sample_plan import sample_plan_path

    if board is not None and board not in load_boards().boards:
        raise click.BadParameter(f"{board} is not a plan board code (see `bcfwatch boards`)", param_hint="--board")
    if out.suffix.lower() == ".png" and board is None:
        raise click.BadParameter("a PNG holds one board's chart: add --board CODE", param_hint="--out")
    plans = _load_plan_or_fail(plan_path or sample_plan_path())
    result = _run_backtest(log, plans, plan_year, settings.lateness_days())
    from monitors.backtest import write_side_outputs

    rejected_path, held_path = write_side_outputs(result, out.parent, stem=f"{out.stem}.")
    _account_for_lines(log, result, rejected_path, held_path)
    # Nothing to chart (no valid events, or none settled in the plan year) would crash the report's arithmetic.
    from monitors.report import board_years

    years = board_years(result, plans, plan_year)
    if (board not in years) if board is not None else not any(y.assessment.weeks for y in years.values()):
        raise click.ClickException(f"{log} has no settled week of the plan year starting {plan_year} "
                                   f"{'for ' + board if board else 'for any board'} ({result.events:,} valid events)")
    with err_console.status("drawing charts"):
        written = write_report(result, plans, plan_year, out, board, years)  # the assessments judged above
    console.print(f"report written to {written.resolve()}")


@main.command("demo")
@port_option
@click.option("--scale", default=0.01, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Volume of the generated national log (1.0 is national).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the generated log and outputs (default: a new temporary folder).")
@click.option("--keep-running", is_flag=True, help="Leave the broker running afterwards.")
@friendly_errors
def demo_command(port: int, scale: float, out_dir: Path | None, keep_running: bool) -> None:
    """Bring up a broker, generate two financial years and replay them through bcfwatch."""
    from bcfwatch.demo import run_demo

    run_demo(console, port, scale, out_dir, keep_running)


if __name__ == "__main__":
    main()
