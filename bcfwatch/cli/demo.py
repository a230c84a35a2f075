"""`bcfwatch demo`: the whole pipeline on a local broker (``bcfwatch/demo``)."""

from __future__ import annotations

from pathlib import Path

import click

from bcfwatch.cli.common import console, friendly_errors, port_option


@click.command("demo")
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


COMMANDS = (demo_command,)
