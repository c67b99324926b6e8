"""`flask --app app bridge …`: the bridge's commands, one module each, on one group."""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

bridge = AppGroup("bridge", help="Webhook Bridge commands.")


def init_app(app: Flask) -> None:
    from bridge.cli import alerts

    bridge.add_command(alerts.alerts)
    app.cli.add_command(bridge)
