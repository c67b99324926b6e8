"""Rollup rows, execution_metrics (hours) and execution_metrics_daily (days), each an
Aggregate of one plugin's finished runs (times in whole seconds since the epoch); and
bridge_state, where the algorithms keep their watermarks beside them."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bridge.model import Status
from bridge.storage.base import ErrorHour, Grain, Rollup, Span
from bridge.storage.rollups import Aggregate, histogram_of
from bridge.storage.rows import ERROR_HOUR_COLUMNS, error_hours_sql, summed
from bridge.storage.sqlite.connection import from_us, to_us

TABLES: dict[str, tuple[str, str]] = {
    "hour": ("execution_metrics", "hour_start"),
    "day": ("execution_metrics_daily", "day_start"),
}
_COUNTERS = {
    None: "total",
    Status.COMPLETED: "completed",
    Status.FAILED: "failed",
    Status.TIMEOUT: "timeout",
    Status.CANCELED: "canceled",
}


def _s(value: datetime) -> int:
    return int(value.timestamp())


def _range(grain: Grain, plugin: str | None) -> tuple[str, str, str]:
    table, column = TABLES[grain]
    clauses = f"{column} >= ? AND {column} < ?" + (" AND plugin_name = ?" if plugin else "")
    return table, column, clauses


def rollups(
    conn: sqlite3.Connection, grain: Grain, start: datetime, end: datetime, plugin: str | None
) -> list[Rollup]:
    table, column, clauses = _range(grain, plugin)
    args: list[Any] = [_s(start), _s(end)] + ([plugin] if plugin else [])
    return [
        Rollup(
            row["plugin_name"],
            datetime.fromtimestamp(row[column], UTC),
            aggregate_of(row),
        )
        for row in conn.execute(f"SELECT * FROM {table} WHERE {clauses}", args)
    ]


def rollup_plugins(
    conn: sqlite3.Connection, grain: Grain, start: datetime, end: datetime
) -> set[str]:
    table, _, clauses = _range(grain, None)
    sql = f"SELECT DISTINCT plugin_name FROM {table} WHERE {clauses}"
    return {row[0] for row in conn.execute(sql, (_s(start), _s(end)))}


def rollup_count(
    conn: sqlite3.Connection, spans: list[Span], status: Status | None, error_type: str | None
) -> int:
    sql, args = summed(_counted(span, status, error_type) for span in spans)
    return int(conn.execute(sql, args).fetchone()[0])


def _counted(span: Span, status: Status | None, error_type: str | None) -> tuple[str, list[Any]]:
    table, _, clauses = _range(span.grain, span.plugin)
    expr, args = _COUNTERS[status], []
    if error_type is not None:  # counted per error type, whatever the status
        expr = "json_extract(error_types, ?)"
        args.append(f'$."{error_type}"')
    # The covering index sums hours without reading their histograms.
    indexed = " INDEXED BY ix_execution_metrics_counts" if span.grain == "hour" else ""
    args += [_s(span.start), _s(span.end)] + ([span.plugin] if span.plugin else [])
    return f"SELECT coalesce(sum({expr}), 0) FROM {table}{indexed} WHERE {clauses}", args


def put_rollups(conn: sqlite3.Connection, grain: Grain, items: Iterable[Rollup]) -> None:
    table, column = TABLES[grain]
    conn.executemany(
        f"INSERT OR REPLACE INTO {table} (plugin_name, {column}, total, completed, failed, "
        "timeout, canceled, duration_sum, duration_min, duration_max, histogram, error_types, "
        "retried, retry_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [row_of(r) for r in items],
    )


def delete_rollups(conn: sqlite3.Connection, grain: Grain, start: datetime, end: datetime) -> None:
    table, _, clauses = _range(grain, None)
    conn.execute(f"DELETE FROM {table} WHERE {clauses}", (_s(start), _s(end)))


def aggregate_of(row: sqlite3.Row) -> Aggregate:
    return Aggregate(
        total=row["total"],
        completed=row["completed"],
        failed=row["failed"],
        timeout=row["timeout"],
        canceled=row["canceled"],
        duration_sum=row["duration_sum"],
        duration_min=row["duration_min"],
        duration_max=row["duration_max"],
        histogram=histogram_of(json.loads(row["histogram"])),
        error_types=Counter(json.loads(row["error_types"])),
        retried=row["retried"],
        retry_time=row["retry_time"],
    )


def row_of(rollup: Rollup) -> tuple[Any, ...]:
    a = rollup.aggregate
    return (
        rollup.plugin,
        _s(rollup.start),
        a.total,
        a.completed,
        a.failed,
        a.timeout,
        a.canceled,
        a.duration_sum,
        a.duration_min or 0,
        a.duration_max,
        json.dumps({str(k): v for k, v in sorted(a.histogram.items())}),
        json.dumps(dict(a.error_types)),
        a.retried,
        a.retry_time,
    )


def get_state(conn: sqlite3.Connection, key: str) -> Any:
    """A bridge_state value (the algorithms' watermarks and last cleanup), or None."""
    row = conn.execute("SELECT value FROM bridge_state WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def get_states(conn: sqlite3.Connection, keys: tuple[str, ...]) -> dict[str, Any]:
    marks = ", ".join("?" * len(keys))
    rows = conn.execute(f"SELECT key, value FROM bridge_state WHERE key IN ({marks})", keys)
    return {key: json.loads(value) for key, value in rows}


def set_state(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO bridge_state (key, value) VALUES (?, ?)", (key, json.dumps(value))
    )


def states(conn: sqlite3.Connection, prefix: str) -> dict[str, Any]:
    """Every bridge_state value whose key starts with `prefix`."""
    rows = conn.execute(
        "SELECT key, value FROM bridge_state WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
    )
    return {key: json.loads(value) for key, value in rows}


def delete_state(conn: sqlite3.Connection, key: str) -> None:
    conn.execute("DELETE FROM bridge_state WHERE key = ?", (key,))


# -- error groups: error_group_hours (hour_start in seconds, first/last seen in µs) --
# An hour's UTC day, and the example of the day's latest failure (last_seen: 16 digits).
_DAY = (
    "hour_start - hour_start % 86400",
    "substr(max(printf('%016d', last_seen) || example_id), 17)",
)


def error_hours(
    conn: sqlite3.Connection, start: datetime, end: datetime, plugin: str | None, grain: Grain
) -> list[ErrorHour]:
    """Read as plain tuples, each hour's (or day's) start converted once for all of its
    groups."""
    sql = error_hours_sql("?", bool(plugin), _DAY if grain == "day" else None)
    args: list[Any] = [_s(start), _s(end)] + ([plugin] if plugin else [])
    cursor = conn.cursor()
    cursor.row_factory = None
    hours: dict[int, datetime] = {}
    items = []
    for fingerprint, hour, name, error_type, message, count, first, last, example in cursor.execute(
        sql, args
    ):
        when = hours.get(hour)
        if when is None:
            when = hours[hour] = datetime.fromtimestamp(hour, UTC)
        items.append(
            ErrorHour(
                fingerprint,
                when,
                name,
                error_type,
                message,
                count,
                from_us(first),  # type: ignore[arg-type]
                from_us(last),  # type: ignore[arg-type]
                example,
            )
        )
    return items


def put_error_hours(conn: sqlite3.Connection, items: list[ErrorHour]) -> None:
    conn.executemany(
        f"INSERT OR REPLACE INTO error_group_hours ({', '.join(ERROR_HOUR_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(ERROR_HOUR_COLUMNS))})",
        [
            (
                h.fingerprint,
                _s(h.hour),
                h.plugin,
                h.error_type,
                h.message,
                h.count,
                to_us(h.first_seen),
                to_us(h.last_seen),
                h.example_id,
            )
            for h in items
        ],
    )


def first_seen(conn: sqlite3.Connection, fingerprints: list[str]) -> dict[str, datetime]:
    seen: dict[str, datetime] = {}
    for i in range(0, len(fingerprints), 500):
        chunk = fingerprints[i : i + 500]
        marks = ", ".join("?" * len(chunk))
        for sql in (
            f"SELECT fingerprint, min(first_seen) FROM error_group_hours "
            f"WHERE fingerprint IN ({marks}) GROUP BY fingerprint",
            f"SELECT error_group, min(start_time) FROM executions "
            f"WHERE error_group IN ({marks}) AND error_group <> '' GROUP BY error_group",
        ):
            for fingerprint, us in conn.execute(sql, chunk):
                when = from_us(us)
                if when is not None and (fingerprint not in seen or when < seen[fingerprint]):
                    seen[fingerprint] = when
    return seen
