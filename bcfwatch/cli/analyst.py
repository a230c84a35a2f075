"""Analyst tools that need no broker: `bcfwatch evaluate`, `backtest`, `report`."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import click

from bcfwatch.cli.common import (
    console,
    err_console,
    friendly_errors,
    from_settings,
    load_plan_or_fail,
    plan_option,
    plan_year_option,
    print_measures,
    print_table,
    progress_bar,
)
from bcfwatch.core.settings import current


@click.command("evaluate")
@click.option("--years", default=6, show_default=True, type=click.IntRange(1, 200),
              help="Simulated national years per noise setting.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--setting", "setting_names", multiple=True,
              help="Only these noise settings (mild, typical, harsh; held out: slow, nb-days, big-winter), "
                   "or all; default the first three.")
@click.option("--markdown", "markdown_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the table and summary as markdown (e.g. for docs/evaluation.md).")
@click.option("--metric", "metric_names", multiple=True,
              help="Evaluate the rule of another plan metric instead (delayed_days, care_home_admissions_65, "
                   "reablement_91d, or all); its settings are typical and heavy.")
def evaluate_command(years: int, seed: int, setting_names: tuple[str, ...], markdown_out: Path | None,
                     metric_names: tuple[str, ...]) -> None:
    """Benchmark the drift rule on simulated years it was not fitted to (not a pass/fail test)."""
    if metric_names:
        _evaluate_metrics(years, seed, setting_names, markdown_out, metric_names)
        return
    from monitors.analysis.evaluate import (
        HELD_OUT_SETTINGS,
        SETTINGS,
        evaluate,
        formatted,
        markdown,
        targets_table,
        tidy_table,
    )

    known = SETTINGS + HELD_OUT_SETTINGS
    unknown = [name for name in setting_names if name not in {s.name for s in known} | {"all"}]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: choose from {', '.join(s.name for s in known)}",
                                 param_hint="--setting")
    chosen = tuple(s for s in known if "all" in setting_names or s.name in setting_names) if setting_names \
        else SETTINGS
    started = time.monotonic()
    with err_console.status("simulating") as status:
        outcomes = evaluate(years, seed, chosen, progress=status.update)
    table, targets = tidy_table(outcomes), targets_table(outcomes)
    for title, frame in ((f"Drift rule on {years} simulated years per setting (seed {seed})", table),
                         ("Both questions against the targets (issue 23)", targets)):
        shown = formatted(frame)
        print_table(title, list(shown.columns), [list(row) for row in shown.itertuples(index=False)],
                    right=[c for c in shown.columns if c not in ("setting", "scenario", "size", "measure")])
    console.print(f"time {time.monotonic() - started:.0f} s")
    if markdown_out is not None:
        markdown_out.write_text(markdown(table) + "\n\n" + markdown(targets) + "\n")
        console.print(f"markdown written to {markdown_out}")


def _run_backtest(log: Path, plans: dict, plan_year: date, lateness_days: int, max_ahead_days: int):
    """The backtest with a progress bar over the log (MB read), then a status line for each later step."""
    from monitors.analysis.backtest import backtest

    progress = progress_bar("MB")
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
                        max_ahead_days=max_ahead_days)
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
        print_table(f"Rejected lines of {log.name} (all written to {rejected_path}, NHS numbers redacted)",
                    ("reason", "lines"), [(reason, f"{lines:,}") for reason, lines in by_reason.items()],
                    right=("lines",))
    if len(result.held):
        console.print(f"{len(result.held):,} event(s) held far ahead of their board's clock and never corroborated "
                      f"(a mistyped date?), not counted: {held_path}")
    if result.events == 0:
        raise click.ClickException(f"no line of {log} was accepted ({sum(by_reason.values()):,} rejected, "
                                   f"reasons in {rejected_path}); see docs/log-format.md for the format")


def _evaluate_metrics(years: int, seed: int, setting_names: tuple[str, ...], markdown_out: Path | None,
                      metric_names: tuple[str, ...]) -> None:
    """`evaluate --metric`: the delayed days, care-home and reablement rules (monitors/rules/plan_metrics.py)."""
    from monitors.analysis.evaluate import formatted, markdown
    from monitors.analysis.evaluate_metrics import SETTINGS, evaluate_metrics, metric_table, metric_targets
    from monitors.rules.plan_metrics import PlanMetric

    names = {m.value for m in PlanMetric}
    unknown = [name for name in metric_names if name not in names | {"all"}]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: choose from {', '.join(sorted(names))} or all",
                                 param_hint="--metric")
    wrong = [name for name in setting_names if name not in {s.name for s in SETTINGS} | {"all"}]
    if wrong:
        raise click.BadParameter(f"{', '.join(wrong)}: with --metric choose from "
                                 f"{', '.join(s.name for s in SETTINGS)}", param_hint="--setting")
    metrics = tuple(m for m in PlanMetric if "all" in metric_names or m.value in metric_names)
    settings = tuple(s for s in SETTINGS if not setting_names or "all" in setting_names or s.name in setting_names)
    started = time.monotonic()
    with progress_bar("years") as progress:
        task = progress.add_task("simulating", total=len(metrics) * len(settings) * years, rate="")
        frame = evaluate_metrics(metrics, years, seed, settings, progress=lambda: progress.update(task, advance=1))
    table, targets = metric_table(frame), metric_targets(frame)
    for title, shown in ((f"Plan-metric rules on {years} simulated years per setting (seed {seed})",
                          formatted(table)), ("Against the targets (issue 24)", formatted(targets))):
        print_table(title, list(shown.columns), [list(row) for row in shown.itertuples(index=False)],
                    right=[c for c in shown.columns if c not in ("metric", "setting", "scenario", "size", "drift",
                                                                  "target", "met")])
    console.print(f"time {time.monotonic() - started:.0f} s")
    if markdown_out is not None:
        markdown_out.write_text(markdown(table) + "\n\n" + markdown(targets) + "\n")
        console.print(f"markdown written to {markdown_out}")


@click.command("backtest")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@plan_option
@plan_year_option
@click.option("--lateness-days", **from_settings("lateness_days"), type=click.IntRange(0, 365))
@click.option("--max-ahead-days", **from_settings("max_ahead_days"), type=click.IntRange(1, 3660),
              help="Events further than this ahead of their board's clock are held until corroborated.")
@click.option("--out", "out_dir", default=Path("backtest"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for counts.csv, alerts.jsonl, rejected.jsonl and held.jsonl.")
@friendly_errors
def backtest_command(log: Path, plan_path: Path | None, plan_year: date, lateness_days: int, max_ahead_days: int,
                     out_dir: Path) -> None:
    """Recompute the counts and the alert timeline offline (pandas, no Kafka)."""
    from monitors.analysis.backtest import write_outputs, write_side_outputs
    from producers.sample_plan import sample_plan_path

    plans = load_plan_or_fail(plan_path or sample_plan_path())
    result = _run_backtest(log, plans, plan_year, lateness_days, max_ahead_days)
    counts_path, alerts_path = write_outputs(result, out_dir)
    rejected_path, held_path = write_side_outputs(result, out_dir)
    print_measures(f"Backtest of {log.name}", [
        ("valid events", f"{result.events:,}"),
        ("rejected lines", f"{result.rejected.num_rows:,} -> {rejected_path}"),
        ("held (never corroborated)", f"{len(result.held):,} -> {held_path}"),
        ("board-days", f"{len(result.counts):,} -> {counts_path}"),
        ("alert events", f"{len(result.alerts):,} -> {alerts_path}"),
        ("boards alerted", ", ".join(result.alerted_boards) or "none"),
        ("time", f"{result.seconds:.1f} s ({result.events / max(result.seconds, 1e-9):,.0f} events/s)"),
    ])
    _account_for_lines(log, result, rejected_path, held_path)


@click.command("report")
@click.argument("log", type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@plan_option
@plan_year_option
@click.option("--out", "out", default=Path("report.html"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="report.html, or a .png of one board's charts (with --board).")
@click.option("--board", default=None, help="Only this board's page (ONS code); required for PNG output.")
@friendly_errors
def report_command(log: Path, plan_path: Path | None, plan_year: date, out: Path, board: str | None) -> None:
    """Write a self-contained HTML report: what needs attention, every board and metric in one sortable table,
    a page per board (or one board's page, HTML or PNG)."""
    from bcfwatch.core.boards import load_boards
    from monitors.analysis.report import write_report
    from producers.sample_plan import sample_plan_path

    if board is not None and board not in load_boards().boards:
        raise click.BadParameter(f"{board} is not a plan board code (see `bcfwatch boards`)", param_hint="--board")
    if out.suffix.lower() == ".png" and board is None:
        raise click.BadParameter("a PNG holds one board's chart: add --board CODE", param_hint="--out")
    plans = load_plan_or_fail(plan_path or sample_plan_path())
    settings = current()  # the report has no options for these: the environment's, as the live pipeline's
    result = _run_backtest(log, plans, plan_year, settings.lateness_days, settings.max_ahead_days)
    from monitors.analysis.backtest import write_side_outputs

    rejected_path, held_path = write_side_outputs(result, out.parent, stem=f"{out.stem}.")
    _account_for_lines(log, result, rejected_path, held_path)
    # Nothing to chart (no valid events, or none settled in the plan year) would crash the report's arithmetic.
    from monitors.analysis.report import board_years, has_settled_week

    years = board_years(result, plans, plan_year)
    if not has_settled_week(years, board):
        raise click.ClickException(f"{log} has no settled week of the plan year starting {plan_year} "
                                   f"{'for ' + board if board else 'for any board'} ({result.events:,} valid events)")
    with err_console.status("drawing charts"):
        written = write_report(result, plans, plan_year, out, board, years,  # the assessments judged above
                               lateness_days=settings.lateness_days)
    console.print(f"report written to {written.resolve()}")


COMMANDS = (evaluate_command, backtest_command, report_command)
