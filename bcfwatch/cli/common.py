"""What every command group shares: the consoles, error handling, shared options, progress bars, tables."""

from __future__ import annotations

import functools
import sys
from collections.abc import Collection, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bcfwatch.core.settings import DEFAULTS, current, shown

# Tables a person reads: the terminal's width, or 140 columns when output goes to a file or a pipe.
console = Console(width=None if sys.stdout.isatty() else 140)
err_console = Console(stderr=True)


def friendly_errors(command):
    """Turn expected failures into one clear line and exit code 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own: it reports them
        except Exception as error:
            if isinstance(error, _expected_errors()):
                raise click.ClickException(str(error)) from None
            raise

    return wrapper


def _expected_errors() -> tuple[type[Exception], ...]:
    """The failures a command reports in one line. Imported only once one happened: importing them up front
    loaded pandas (``producers.generate``) into every command's process, the worker's included (~100 MiB)."""
    from kafka.errors import KafkaError

    from bcfwatch.core.plans import PlanError
    from bcfwatch.infra.errors import BrokerError
    from producers.eventlog.logformat import LogFormatError
    from producers.generate import GenerateError
    from producers.pseudonym import PseudonymKeyError

    return BrokerError, GenerateError, LogFormatError, PlanError, PseudonymKeyError, KafkaError


# -- option defaults from the environment settings ----------------------------------------------------------
class SettingDefault:
    """An option's default: the environment setting ``name`` (``bcfwatch.core.settings.Settings``), read when the
    command runs; the help shows the documented default, the dataclass's own."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self) -> Any:
        return getattr(current(), self.name)

    @property
    def shown(self) -> str:
        return shown(getattr(DEFAULTS, self.name))

    def __repr__(self) -> str:
        return f"SettingDefault({self.name!r})"


def from_settings(name: str) -> dict[str, Any]:
    """``default=`` and ``show_default=`` of an option whose default is an environment setting."""
    default = SettingDefault(name)
    return {"default": default, "show_default": default.shown}


# -- shared options ---------------------------------------------------------------------------------------------
port_option = click.option("--port", default=9092, show_default=True, type=click.IntRange(1024, 65535),
                           help="Broker port on 127.0.0.1 (the controller uses port + 1000).")


def iso_date(_ctx, param, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2014-04-01", param=param) from None


plan_option = click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                           help="Plan file (default: the shipped sample plan).")
plan_year_option = click.option("--plan-year", default="2015-04-01", show_default=True, callback=iso_date,
                                help="First day of the plan year (the year before is the baseline).")


def load_plan_or_fail(plan_path: Path):
    from bcfwatch.core.plans import PlanError, load_plan

    try:
        return load_plan(plan_path)
    except PlanError as error:
        raise click.ClickException(f"{error}\nFix those rows and run `bcfwatch plan check` again.") from None


# -- progress and tables ------------------------------------------------------------------------------------------
def progress_bar(unit: str) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err_console, transient=False,
    )


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]],
                right: Collection[str] = ()) -> None:
    """A table of strings; the ``right`` columns right-justified."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def print_measures(title: str, rows: list[tuple[str, str]]) -> None:
    """A two-column table: what, and its value."""
    print_table(title, ("what", "value"), rows, right=("value",))
