"""The `flask --app app bridge ...` commands: one click group, registered on the app
by `init_app` as Flask's tutorial registers `init-db`; each command (or small family)
in a module of its own, added to the group here. They read the same config
(`$BRIDGE_CONFIG` or config.yaml) and store as the server, and are safe to run while
it serves."""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from bridge.cli import config, history, insight, maintenance
from bridge.cli.alerts import alerts
from bridge.cli.copy import copy_history
from bridge.cli.output import logs_to_stderr
from bridge.errors import BridgeError


class BridgeGroup(AppGroup):
    """A command that meets one of the bridge's errors (no such error group, the
    database away) ends with its message on one line and exit 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BridgeError as exc:
            raise click.ClickException(exc.message) from None


@click.group(cls=BridgeGroup)
def bridge() -> None:
    """Webhook Bridge commands: history, error groups, analysis, export, replay,
    cleanup, config checks, alerts, copy-history.

    Exit codes of the history and insight commands: 0 fine, 1 a problem found (a failed
    run, findings, new or rising errors, an invalid config, no such execution), 2 a
    usage error."""
    logs_to_stderr()


bridge.add_command(alerts)
bridge.add_command(copy_history)
history.register(bridge)
insight.register(bridge)
maintenance.register(bridge)
config.register(bridge)


def init_app(app: Flask) -> None:
    app.cli.add_command(bridge)
