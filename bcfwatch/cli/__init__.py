"""The ``bcfwatch`` command line: parse the options, call the layer that does the work, print what it says.

One module per command group, each listing its commands in ``COMMANDS``:

- ``broker``: ``kafka start|env|stop|status|fetch`` (the local broker);
- ``data``: ``boards``, ``generate``, ``replay``, ``plan check|summary|sample``;
- ``live``: ``worker``, ``counts export``, ``monitor``, ``notify``;
- ``analyst``: ``evaluate``, ``backtest``, ``report``;
- ``demo``: ``demo``;
- ``common``: the consoles, error handling, shared options, progress bars and tables.

Option defaults that are environment settings come from :class:`bcfwatch.core.settings.Settings` (read when
a command runs; the help shows the documented defaults); a bad ``BCFWATCH_*`` value is one line naming the
variable, exit code 1.
"""

from __future__ import annotations

import click

from bcfwatch.cli import analyst, broker, data, demo, live
from bcfwatch.core.settings import SettingsError


class BcfwatchGroup(click.Group):
    """The top-level group: a bad ``BCFWATCH_*`` environment value (met while reading an option's default or
    inside a command) is a usage-level error naming the variable, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SettingsError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=BcfwatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bcfwatch")
def main() -> None:
    """bcfwatch: watch Better Care Fund outcomes as events happen."""


for _module in (broker, data, live, analyst, demo):
    for _command in _module.COMMANDS:
        main.add_command(_command)
