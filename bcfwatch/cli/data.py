"""Data in and out of the pipeline: `bcfwatch boards`, `generate`, `replay`, `plan check|summary|sample`."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import click

from bcfwatch.cli.common import (
    console,
    err_console,
    friendly_errors,
    from_settings,
    iso_date,
    load_plan_or_fail,
    print_measures,
    print_table,
    progress_bar,
)
from bcfwatch.core.national import GENERATOR_BANK_HOLIDAY_FACTOR
from bcfwatch.core.topics import EVENT_TYPES, Topics


# -- reference data ----------------------------------------------------------
@click.command("boards")
def boards_command() -> None:
    """List the 151 BCF plan boards with their populations."""
    from bcfwatch.core.boards import load_boards

    print_table("Health and wellbeing boards with BCF plans, 2015-16 (mid-2014 population)",
                ("code", "board", "population", "18+", "65+"),
                [(board.code, board.name, f"{board.population:,}", f"{board.population_18_plus:,}",
                  f"{board.population_65_plus:,}") for board in load_boards()],
                right=("population", "18+", "65+"))


# -- generate ----------------------------------------------------------------
@click.command("generate")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Log file to write (.jsonl, or .csv for CSV).")
@click.option("--from", "start", default="2014-04-01", show_default=True, callback=iso_date,
              help="First day (the first financial year is the baseline).")
@click.option("--to", "end", default="2016-03-31", show_default=True, callback=iso_date, help="Last day.")
@click.option("--scale", default=0.01, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="1.0 is national volume (~5.5M emergency admissions a year).")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed (same seed, same file).")
@click.option("--drift", "drifts", multiple=True, metavar="BOARD:[creep]+N%[@DATE]",
              help="Make a board drift off plan in the plan years: BOARD:+N% a step of +N% (or -N%) from the "
                   "start of the plan year; BOARD:+N%@YYYY-MM-DD the step from that date (a date in the baseline "
                   "year is refused); BOARD:creep+N% a linear ramp from 0 to +N% over 365 days from the start "
                   "of the plan year (or from @DATE), held after. Another metric: BOARD:delayed_days+20%, "
                   "BOARD:care_home_admissions_65+15%, BOARD:reablement-5pt (points at home after 91 days). "
                   "Repeatable.")
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
@click.option("--bank-holiday-drop", default=round((1 - GENERATOR_BANK_HOLIDAY_FACTOR) * 100, 1), show_default=True,
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
    with progress_bar("lines") as progress:
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


@click.command("replay")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("--speed", default="max", show_default=True, callback=_speed,
              help="Events per second, or 'max' for as fast as the broker takes them.")
@click.option("--topic-prefix", **from_settings("topic_prefix"),
              help=f"Topics are {', '.join(f'PREFIX.{name}' for name in (*EVENT_TYPES, 'dead_letter'))}.")
@click.option("--bootstrap", **from_settings("bootstrap"),
              help="Kafka bootstrap servers.")
@click.option("--partitions", **from_settings("partitions"), type=click.IntRange(1, 256),
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
@click.option("--packers", type=click.IntRange(min=1), default=None,
              help="With --packed: processes packing an unpaced JSON Lines log's columns [default: one per core, "
                   "at most one per 16 MiB chunk]; a paced or CSV replay packs line by line in its own process. "
                   "On a machine that also runs the worker, 1 leaves the worker a core.")
@friendly_errors
def replay_command(log: Path, speed: float | None, topic_prefix: str, bootstrap: str, partitions: int,
                   dev_key: bool, resume: bool, delivery_timeout: float, packed: bool, packers: int | None) -> None:
    """Replay a historic event log (JSON Lines or CSV) into Kafka.

    The last line the broker has acknowledged is kept in a checkpoint (in the cache dir), so a replay that
    was killed or gave up continues with --resume.
    """
    import time

    if packers is not None and not packed:
        raise click.UsageError("--packers sets the packing processes of a packed replay: add --packed, or leave "
                               "--packers out")
    from producers.eventlog.logformat import count_lines
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
    with progress_bar("events") as progress:
        task = progress.add_task(f"replaying {log.name}", total=total, rate="")

        def advance(lines: int) -> None:
            done = progress.tasks[task].completed + lines
            rate = done / max(time.monotonic() - started, 1e-9)
            progress.update(task, advance=lines, rate=f"{rate:,.0f} events/s")

        def warn(message: str) -> None:
            progress.console.print(f"[yellow]{message}[/yellow]")

        try:
            report = replay(log, bootstrap, Topics(topic_prefix), pseudonymiser, partitions,
                            events_per_second=speed, on_progress=advance, resume=resume,
                            delivery_timeout=delivery_timeout, on_warning=warn, packed=packed, processes=packers)
        except ReplayError as error:
            progress.stop()
            raise click.ClickException(str(error)) from None
    if report.already_complete:
        console.print(f"{log} was already replayed completely under prefix {topic_prefix} "
                      f"({report.acknowledged_through_line:,} lines acknowledged, checkpoint {report.checkpoint}); "
                      "nothing to do")
        return
    print_measures(f"Replay of {log}", [
        *[(f"produced to {topic_prefix}.{t}", f"{report.produced[t]:,}") for t in EVENT_TYPES],
        (f"dead-lettered to {topic_prefix}.dead_letter", f"{len(report.rejected):,}"),
        ("lines read", f"{report.lines:,}"
         + (f" (after line {report.resumed_after_line:,}, resumed)" if report.resumed_after_line else "")),
        ("throughput", f"{report.events_per_second:,.0f} events/s"),
        *([("packed records", f"{report.packed_records:,}")] if packed else []),
        *([("broker outages ridden out", ", ".join(f"{s:.0f} s" for s in report.outages))] if report.outages else []),
    ])
    if report.rejected:
        print_table(f"Rejected lines by reason (each on {topic_prefix}.dead_letter)", ("reason", "lines"),
                    [(code, f"{lines:,}") for code, lines in report.rejected_by_reason.most_common()],
                    right=("lines",))
        print_table(f"Rejected lines (first 20 of {len(report.rejected):,})", ("line", "reason"),
                    [(str(number), reason) for number, reason in report.rejected[:20]], right=("line",))
    if report.lines and not sum(report.produced.values()):
        raise click.ClickException(f"no line of {log} was accepted; reasons above and on {topic_prefix}.dead_letter "
                                   "(see docs/log-format.md for the format)")


# -- plans -------------------------------------------------------------------
@click.group()
def plan() -> None:
    """Check and summarise BCF plan files (docs/plan-format.md)."""


plan_file = click.argument("plan_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))


@plan.command("check")
@plan_file
def plan_check(plan_path: Path) -> None:
    """Validate a plan file: every problem with its row, column and reason."""
    plans = load_plan_or_fail(plan_path)
    console.print(f"{plan_path}: OK, plans for all {len(plans)} boards")


@plan.command("summary")
@plan_file
@click.option("--unit-cost", default=1550.0, show_default=True, type=click.FloatRange(min=0),
              help="£ per avoided emergency admission.")
def plan_summary(plan_path: Path, unit_cost: float) -> None:
    """The national roll-up: pool, planned savings, avoided admissions, boards by approval status."""
    from bcfwatch.core.plans import national_summary

    summary = national_summary(load_plan_or_fail(plan_path), unit_cost)
    print_measures(f"National roll-up of {summary.boards} BCF plans ({plan_path.name})", [
        ("pooled funds", f"£{summary.pooled_fund_gbp / 1e9:,.2f}bn"),
        ("baseline emergency admissions (a year)", f"{summary.baseline_emergency:,}"),
        ("planned reduction", f"{summary.planned_reduction:.2%}"),
        ("avoided emergency admissions", f"{summary.avoided_admissions:,.0f}"),
        (f"their value at £{unit_cost:,.0f} each", f"£{summary.avoided_admissions_value_gbp / 1e6:,.1f}m"),
        ("delayed days: baseline -> planned",
         f"{summary.baseline_delayed_days:,} -> {summary.planned_delayed_days:,} ({summary.delayed_days_change:+.1%})"),
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


COMMANDS = (boards_command, generate_command, replay_command, plan)
