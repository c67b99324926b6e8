"""gunicorn's logger, with secrets taken out of the query strings in access lines.

A webhook's query parameters are its data, and senders put tokens there
(`?token=...`): the access log would keep what the execution record redacts. Each
parameter whose name `execution_tracking.redact_fields` hides, and each tag
(`tag=name:value`) whose name it hides, is logged as `[REDACTED]`, by the same
Redactor as stored input.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from gunicorn.glogging import Logger

from bridge.tracking.redact import MASK, Redactor


def redact_query(query: str, redactor: Redactor) -> str:
    """`query` as it came, but with every value the redactor hides masked."""
    if not redactor.needles or not redactor.might_match(unquote_plus(query)):
        return query
    parts = query.split("&")
    for i, part in enumerate(parts):
        name, eq, value = part.partition("=")
        key = unquote_plus(name)
        if eq and redactor.sensitive(key):
            parts[i] = f"{name}={MASK}"
        elif eq and key == "tag":
            tag = unquote_plus(value)
            cut = min((tag.find(c) for c in ":=" if c in tag), default=-1)
            if cut > 0 and redactor.sensitive(tag[:cut].strip()):
                parts[i] = f"{name}={tag[: cut + 1]}{MASK}"
    return "&".join(parts)


class AccessLogger(Logger):
    """gunicorn's `logger_class`; `access_logger(fields)` makes one for a config."""

    redactor = Redactor([])

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        query = atoms.get("q")
        if query:
            redacted = redact_query(query, self.redactor)
            if redacted != query:
                path = environ["RAW_URI"].partition("?")[0]
                atoms["q"] = redacted
                atoms["r"] = f"{atoms['m']} {path}?{redacted} {atoms['H']}"
        return atoms


def access_logger(redact_fields: list[str]) -> type[AccessLogger]:
    """The logger class for gunicorn.conf.py, hiding `redact_fields`."""
    return type("AccessLogger", (AccessLogger,), {"redactor": Redactor(redact_fields)})
