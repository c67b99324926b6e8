"""The `flask --app app bridge ...` commands: one click group, registered on the app
by `init_app` as Flask's tutorial registers `init-db`; each command in a module of its
own, added to the group here."""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

from bridge.cli.alerts import alerts
from bridge.cli.copy import copy_history

bridge = AppGroup("bridge", help="Webhook Bridge commands.")
bridge.add_command(alerts)
bridge.add_command(copy_history)


def init_app(app: Flask) -> None:
    app.cli.add_command(bridge)
