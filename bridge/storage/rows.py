"""What every backend writes of a run: the executions table's columns, the ones a run's
lifecycle changes after its row is written, which of its attempts get rows of their own,
and a record's JSON text turned into a value the backend can store (its own `text` rule
says which strings it can hold). And the statements that read alike on all three: the
history's row counts, the error groups' hours, the sum of several counts."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

from bridge.model import AttemptRecord, ExecutionRecord, Status

COLUMNS = (
    "id",
    "plugin_name",
    "http_method",
    "start_time",
    "end_time",
    "status",
    "input",
    "output",
    "error",
    "error_type",
    "duration",
    "attempts",
    "retry_count",
    "trace_id",
    "user_agent",
    "remote_ip",
    "tags",
    "metadata",
    "created_at",
    "updated_at",
    "worker",
    "idempotency_key",
    "error_group",
    "replay_of",
    "retry_time",
)
# What a run's lifecycle changes after its row is written. Only these are set again: an
# UPDATE rewrites every index holding a column it sets, and the identity columns
# (plugin, start time, trace id) are in most of them.
LIFECYCLE = (
    "end_time",
    "status",
    "output",
    "error",
    "error_type",
    "duration",
    "attempts",
    "retry_count",
    "updated_at",
    "worker",
    "error_group",
    "retry_time",
)


def written_attempts(record: ExecutionRecord, every: bool = False) -> list[AttemptRecord]:
    """The attempts a run's write stores as rows of execution_attempts: none for a run
    that succeeded at its first attempt (most runs), whose one attempt is the run itself
    (`implied_attempts` gives it back when it is read). That saves a row, its key and
    a foreign-key check per run. The bulk path (`every`) writes the rows it
    is given, but not an attempt that was read back that way: a copied history keeps
    the rows it had, no more and no fewer."""
    attempts = record.attempt_records
    if (
        len(attempts) == 1
        and record.status is Status.COMPLETED
        and attempts[0].status is Status.COMPLETED
        and (not every or attempts == implied_attempts(record))
    ):
        return []
    return attempts


def implied_attempts(record: ExecutionRecord) -> list[AttemptRecord]:
    """The one attempt of a run read without attempt rows that succeeded at its first
    attempt (see `written_attempts`): timed as the run, since it was all of the run."""
    if record.attempts == 1 and record.status is Status.COMPLETED and record.end_time:
        return [
            AttemptRecord(
                1, record.start_time, record.end_time, Status.COMPLETED, duration=record.duration
            )
        ]
    return []


def _finite(literal: str) -> Any:
    number = float(literal)
    return number if math.isfinite(number) else literal


# Made once: json.loads with arguments makes a decoder each call, three times the
# cost of parsing a run's metadata.
_DECODER = json.JSONDecoder(parse_constant=str, parse_float=_finite)


def _cleaned(value: Any, text: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        return {text(k): _cleaned(v, text) for k, v in value.items()}
    if isinstance(value, list):
        return [_cleaned(v, text) for v in value]
    return value


def json_value(value: str, text: Callable[[str], str]) -> Any:
    """The JSON value of a record's JSON text, every string in it made storable by
    `text`; NaN and infinities as strings; text that is not JSON as a string. Only text
    with non-ASCII characters or escapes can hold a string `text` would change."""
    try:
        parsed = _DECODER.decode(value)
    except ValueError:
        return text(value)
    return _cleaned(parsed, text) if not value.isascii() or "\\u" in value else parsed


# The tables of a run's history, as `ExecutionStore.table_counts` counts them (named
# alike on every backend; the statement is the same on all three).
HISTORY_TABLES = (
    "executions",
    "execution_attempts",
    "execution_metrics",
    "execution_metrics_daily",
    "error_group_hours",
)
COUNT_HISTORY = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in HISTORY_TABLES)


def utf8_text(value: str) -> str:
    """Text UTF-8 can hold: a lone surrogate (valid in JSON, not in UTF-8) becomes
    U+FFFD, on every backend alike, as a URL's invalid UTF-8 is decoded."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    return value


def summed(parts: Iterable[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    """One query adding up the single-value queries `parts` (SQL and its arguments)."""
    sums: list[str] = []
    args: list[Any] = []
    for sql, part_args in parts:
        sums.append(f"({sql})")
        args += part_args
    return f"SELECT {' + '.join(sums)}", args


# error_group_hours' columns, in ErrorHour's order.
ERROR_HOUR_COLUMNS = (
    "fingerprint",
    "hour_start",
    "plugin_name",
    "error_type",
    "message",
    "count",
    "first_seen",
    "last_seen",
    "example_id",
)


def error_hours_sql(mark: str, plugin: bool, per_day: tuple[str, str] | None = None) -> str:
    """error_group_hours of [start, end), of one plugin if `plugin` (`mark`: the
    backend's placeholder). With `per_day`, the backend's expressions of an hour's UTC
    day and of the example of the day's latest failure, each group's hours summed per
    day: a 30-day window and the one before it are some 27,000 hour rows at a million
    runs, and a few thousand days."""
    rows = f"FROM error_group_hours WHERE hour_start >= {mark} AND hour_start < {mark}" + (
        f" AND plugin_name = {mark}" if plugin else ""
    )
    if per_day is None:
        return f"SELECT {', '.join(ERROR_HOUR_COLUMNS)} {rows}"
    day, latest_example = per_day
    return (
        f"SELECT fingerprint, {day}, max(plugin_name), max(error_type), max(message), "
        f"sum(count), min(first_seen), max(last_seen), {latest_example} {rows} "
        f"GROUP BY fingerprint, {day}"
    )
