"""Logging: one format for every line the process writes, the bridge's, the plugins',
gunicorn's and the access log's, as text or as one JSON object per line.

A line written while a run is under way carries its plugin, execution id and trace id
(`bind` sets them for the thread that runs the plugin), so a log shipper can join the
log with the run history.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

FORMATS = ("text", "json")
TEXT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s%(run)s"
CONTEXT_FIELDS = ("plugin", "execution_id", "trace_id")

_run: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "bridge_log_run", default=None
)


@contextmanager
def bind(**fields: str) -> Iterator[None]:
    """Lines logged inside the block carry these fields (plugin, execution_id, trace_id)."""
    token = _run.set({k: v for k, v in fields.items() if v})
    try:
        yield
    finally:
        _run.reset(token)


class RunContext(logging.Filter):
    """Puts the bound run fields on each record: as attributes for the JSON format, and
    as ` [plugin=... execution_id=...]` (`%(run)s`) for the text format."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _run.get() or {}
        for name in CONTEXT_FIELDS:
            if name in fields and not hasattr(record, name):
                setattr(record, name, fields[name])
        shown = [f"{n}={getattr(record, n)}" for n in CONTEXT_FIELDS if getattr(record, n, "")]
        record.run = f" [{' '.join(shown)}]" if shown else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the run's fields where
    known, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, "")
            if value:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def dict_config(level: str, fmt: str) -> dict[str, Any]:
    """A logging.config.dictConfig document: one handler on stdout for the root logger,
    which gunicorn's error and access loggers propagate to. gunicorn takes it as its
    `logconfig_dict`; the development server applies it with `configure`."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if fmt == "json" else {"format": TEXT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"run": {"()": f"{__name__}.RunContext"}},
        "formatters": {"bridge": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "bridge",
                "filters": ["run"],
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": "WARNING", "handlers": ["console"]},
        "loggers": {
            "bridge": {"level": level.upper()},
            "plugins": {"level": level.upper()},
            "gunicorn.error": {"level": "INFO", "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": True},
        },
    }


def configure(level: str, fmt: str) -> None:
    logging.config.dictConfig(dict_config(level, fmt))
