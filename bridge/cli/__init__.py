"""`flask --app app bridge ...`: the history, insight and maintenance on the command
line, reading the same config (`$BRIDGE_CONFIG` or config.yaml) and store as the
server, and safe to run while it serves. Each command (or small family) is a module
here, registered below one line each."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from bridge.cli.output import logs_to_stderr


@click.group(cls=AppGroup)
def bridge() -> None:
    """Webhook Bridge: history, error groups, analysis, export, replay, cleanup.

    Exit codes: 0 fine, 1 a problem found (a failed run, findings, new or rising
    errors, an invalid config, no such execution), 2 a usage error."""
    logs_to_stderr()


def init_app(app: Flask) -> None:
    from bridge.cli import config, history, insight, maintenance

    for module in (history, insight, maintenance, config):
        module.register(bridge)
    app.cli.add_command(bridge)
