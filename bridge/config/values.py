"""Values in config: Go-style durations, `env:NAME` secrets, and how long a run can last."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bridge.errors import ConfigError

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def resolve_env(value: str, where: str, environ: Mapping[str, str]) -> str:
    """`env:NAME` read from `environ`, anything else as written: secrets and keys stay
    out of config.yaml. An error names the variable, never a value."""
    if not value.startswith("env:"):
        return value
    name = value[4:].strip()
    resolved = environ.get(name, "") if name else ""
    if not resolved:
        raise ConfigError(where, name, "unset or empty environment variable")
    return resolved


def parse_duration(value: Any) -> float:
    """Seconds from a Go-style duration (`1h30m`, `500ms`) or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}")
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError(f"invalid duration {value!r}")
        return seconds
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r}")
    return total


def retry_delay(backoff: float, max_backoff: float, failed_attempt: int) -> float:
    """The longest wait after attempt `failed_attempt` (1, 2, ...): the backoff doubled
    each time, capped at `max_backoff` (the runner waits between half of it and all)."""
    return min(max_backoff, backoff * 2.0 ** min(failed_attempt - 1, 62))


def longest_run(timeout: float, attempts: int, backoff: float, max_backoff: float) -> float:
    """Seconds a run can take at most: every attempt's timeout and the waits between
    them. gunicorn's worker timeout, stale-run detection and the idempotency wait all
    start from it."""
    waits = sum(retry_delay(backoff, max_backoff, n) for n in range(1, attempts))
    return timeout * attempts + waits


class Duration(float):
    """A number of seconds read from a duration string."""


MYSQL_SCHEMES = ("mysql", "mariadb")


def redact_url(url: str) -> str:
    """A database URL or libpq text as it may be shown: any password replaced by ***."""
    if "://" in url:  # user:password@ before the host, or ?password= among the query
        url = re.sub(r"(://[^:/?#@]*):[^/?#]*@", r"\1:***@", url)
        return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)
