"""How the commands print: a table for people, `--json` for scripts, and what the
exit codes mean. Log lines go to stderr, so that stdout holds only the answer."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

import click
from flask import current_app

from bridge import clock
from bridge.storage.base import ExecutionStore

OK, PROBLEM = 0, 1

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="JSON for scripts.")


def logs_to_stderr() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def store() -> ExecutionStore:
    """The app's store, or exit 1 saying why there is none."""
    storage = current_app.extensions["bridge.storage"]
    if storage.store is None:
        raise click.ClickException(f"Execution tracking is unavailable: {storage.disabled_reason}")
    return storage.store


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return clock.rfc3339(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(plain(value), indent=2, ensure_ascii=False, default=str))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Columns padded to their widest cell; an empty table says so."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[str(plain(c)) if c is not None else "" for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line: Callable[[Sequence[str]], str] = lambda r: "  ".join(  # noqa: E731
        c.ljust(w) for c, w in zip(r, widths, strict=True)
    ).rstrip()
    click.echo(line(headers))
    click.echo(line(["-" * w for w in widths]))
    for row in cells:
        click.echo(line(row))


def ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"
