"""`flask bridge check-config [FILE]`: validate a config file and print the settings it
would give, secrets hidden; exit 1 naming the bad key."""

from __future__ import annotations

import dataclasses
import re
import sys
from typing import Any

import click
from flask.cli import AppGroup

from bridge.cli.output import JSON_OPTION, OK, PROBLEM, emit_json
from bridge.config import load
from bridge.errors import ConfigError

# Keys whose values are secrets: those the bridge's own redact_fields names, and where
# its settings keep them (a URL may hold a token in its path: an alert webhook's).
SECRET = re.compile(
    r"passw(or)?d|secret|key|token|sha256|dsn|url|authorization|cookie|credential",
    re.IGNORECASE,
)
HIDDEN = "***"


def hidden(value: Any, key: str = "") -> Any:
    """The settings with every secret-looking value (and any password in a URL) hidden."""
    if isinstance(value, dict):
        return {k: hidden(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [hidden(v, key) for v in value]
    if isinstance(value, str) and value and SECRET.search(key) and not key.endswith("headers"):
        return HIDDEN
    if isinstance(value, float):  # a Duration is a float with a unit of its own
        return float(value)
    if isinstance(value, str):
        return re.sub(r"(://[^:/@\s]+:)[^@\s]+@", rf"\1{HIDDEN}@", value)
    return value


def register(group: AppGroup) -> None:
    @group.command("check-config", with_appcontext=False)
    @click.argument("path", required=False, type=click.Path(dir_okay=False))
    @JSON_OPTION
    def check_config(path: str | None, as_json: bool) -> None:
        """Validate FILE (default: $BRIDGE_CONFIG or config.yaml), with the environment's
        BRIDGE_* overrides, and print what the bridge would use."""
        try:
            config = load(path)
        except ConfigError as exc:
            click.echo(f"Invalid configuration: {exc}", err=True)
            sys.exit(PROBLEM)
        settings = hidden(dataclasses.asdict(config))
        if as_json:
            emit_json(settings)
        else:
            click.echo(_yaml(settings))
            click.echo("Configuration is valid.", err=True)
        sys.exit(OK)


def _yaml(settings: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(settings, sort_keys=False, allow_unicode=True).rstrip()
