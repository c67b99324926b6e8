"""Rollup rows, execution_metrics (hours) and execution_metrics_daily (days), each an
Aggregate of one plugin's finished runs, with histogram and error types as jsonb; and
bridge_state, where the algorithms keep their watermarks (jsonb values)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bridge.model import Status
from bridge.storage.base import ErrorHour, Grain, Rollup, Span
from bridge.storage.postgresql.records import text
from bridge.storage.rollups import Aggregate, histogram_of
from bridge.storage.rows import ERROR_HOUR_COLUMNS, error_hours_sql, summed

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
_FIGURES = (
    "total",
    "completed",
    "failed",
    "timeout",
    "canceled",
    "duration_sum",
    "duration_min",
    "duration_max",
    "histogram",
    "error_types",
    "retried",
    "retry_time",
)


def _range(grain: Grain, plugin: str | None) -> tuple[str, str, str]:
    table, column = TABLES[grain]
    clauses = f"{column} >= %s AND {column} < %s" + (" AND plugin_name = %s" if plugin else "")
    return table, column, clauses


def rollups(
    conn: psycopg.Connection[Any],
    grain: Grain,
    start: datetime,
    end: datetime,
    plugin: str | None,
) -> list[Rollup]:
    table, column, clauses = _range(grain, plugin)
    args: list[Any] = [start, end] + ([plugin] if plugin else [])
    sql = f"SELECT plugin_name, {column} AS start, {', '.join(_FIGURES)} FROM {table} WHERE "
    with conn.cursor(row_factory=dict_row) as cur:
        return [
            Rollup(row["plugin_name"], row["start"], aggregate_of(row))
            for row in cur.execute(sql + clauses, args)
        ]


def rollup_plugins(
    conn: psycopg.Connection[Any], grain: Grain, start: datetime, end: datetime
) -> set[str]:
    table, _, clauses = _range(grain, None)
    sql = f"SELECT DISTINCT plugin_name FROM {table} WHERE {clauses}"
    return {row[0] for row in conn.execute(sql, (start, end))}


def rollup_count(
    conn: psycopg.Connection[Any],
    spans: list[Span],
    status: Status | None,
    error_type: str | None,
) -> int:
    row = conn.execute(*summed(_counted(span, status, error_type) for span in spans)).fetchone()
    return int(row[0]) if row else 0


def _counted(span: Span, status: Status | None, error_type: str | None) -> tuple[str, list[Any]]:
    table, _, clauses = _range(span.grain, span.plugin)
    expr, args = _COUNTERS[status], []
    if error_type is not None:  # counted per error type, whatever the status
        expr = "(error_types ->> %s)::bigint"
        args.append(text(error_type))
    args += [span.start, span.end] + ([span.plugin] if span.plugin else [])
    return f"SELECT coalesce(sum({expr}), 0) FROM {table} WHERE {clauses}", args


def put_rollups(conn: psycopg.Connection[Any], grain: Grain, items: Iterable[Rollup]) -> None:
    table, column = TABLES[grain]
    rows = [row_of(r) for r in items]
    if not rows:
        return
    columns = ("plugin_name", column, *_FIGURES)
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        f" ON CONFLICT (plugin_name, {column}) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _FIGURES)
    )
    with conn.cursor() as cur:
        cur.executemany(sql, rows)


def delete_rollups(
    conn: psycopg.Connection[Any], grain: Grain, start: datetime, end: datetime
) -> None:
    table, _, clauses = _range(grain, None)
    conn.execute(f"DELETE FROM {table} WHERE {clauses}", (start, end))


def aggregate_of(row: dict[str, Any]) -> Aggregate:
    return Aggregate(
        total=row["total"],
        completed=row["completed"],
        failed=row["failed"],
        timeout=row["timeout"],
        canceled=row["canceled"],
        duration_sum=row["duration_sum"],
        duration_min=row["duration_min"],
        duration_max=row["duration_max"],
        histogram=histogram_of(row["histogram"]),
        error_types=Counter(row["error_types"]),
        retried=row["retried"],
        retry_time=row["retry_time"],
    )


def row_of(rollup: Rollup) -> tuple[Any, ...]:
    a = rollup.aggregate
    return (
        text(rollup.plugin),
        rollup.start,
        a.total,
        a.completed,
        a.failed,
        a.timeout,
        a.canceled,
        a.duration_sum,
        a.duration_min or 0,
        a.duration_max,
        Jsonb({str(k): v for k, v in sorted(a.histogram.items())}),
        Jsonb({text(k): v for k, v in a.error_types.items()}),
        a.retried,
        a.retry_time,
    )


def get_state(conn: psycopg.Connection[Any], key: str) -> Any:
    """A bridge_state value (the algorithms' watermarks and last cleanup), or None."""
    row = conn.execute("SELECT value FROM bridge_state WHERE key = %s", (key,)).fetchone()
    return row[0] if row else None


def get_states(conn: psycopg.Connection[Any], keys: tuple[str, ...]) -> dict[str, Any]:
    rows = conn.execute("SELECT key, value FROM bridge_state WHERE key = ANY(%s)", (list(keys),))
    return dict(rows.fetchall())


def set_state(conn: psycopg.Connection[Any], key: str, value: Any) -> None:
    conn.execute(
        "INSERT INTO bridge_state (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, Jsonb(value)),
    )


def states(conn: psycopg.Connection[Any], prefix: str) -> dict[str, Any]:
    """Every bridge_state value whose key starts with `prefix`."""
    rows = conn.execute(
        "SELECT key, value FROM bridge_state WHERE left(key, %s) = %s", (len(prefix), prefix)
    )
    return dict(rows.fetchall())


def delete_state(conn: psycopg.Connection[Any], key: str) -> None:
    conn.execute("DELETE FROM bridge_state WHERE key = %s", (key,))


# -- error groups: error_group_hours ---------------------------------------
# An hour's UTC day (whatever the session's time zone), and the day's latest example.
_DAY = (
    "date_trunc('day', hour_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
    "(array_agg(example_id ORDER BY last_seen DESC))[1]",
)


def error_hours(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    plugin: str | None,
    grain: Grain,
) -> list[ErrorHour]:
    sql = error_hours_sql("%s", bool(plugin), _DAY if grain == "day" else None)
    args: list[Any] = [start, end] + ([text(plugin)] if plugin else [])
    return [
        ErrorHour(f, h, p, et, m, int(n), a, b, x)
        for f, h, p, et, m, n, a, b, x in conn.execute(sql, args).fetchall()
    ]


def put_error_hours(conn: psycopg.Connection[Any], items: list[ErrorHour]) -> None:
    if not items:
        return
    sql = (
        f"INSERT INTO error_group_hours ({', '.join(ERROR_HOUR_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(ERROR_HOUR_COLUMNS))}) "
        "ON CONFLICT (fingerprint, hour_start) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in ERROR_HOUR_COLUMNS[2:])
    )
    rows = [
        (
            h.fingerprint,
            h.hour,
            text(h.plugin),
            text(h.error_type),
            text(h.message),
            h.count,
            h.first_seen,
            h.last_seen,
            h.example_id,
        )
        for h in items
    ]
    with conn.cursor() as cur:
        cur.executemany(sql, rows)


def first_seen(conn: psycopg.Connection[Any], fingerprints: list[str]) -> dict[str, datetime]:
    seen: dict[str, datetime] = {}
    for sql in (
        "SELECT fingerprint, min(first_seen) FROM error_group_hours "
        "WHERE fingerprint = ANY(%s) GROUP BY fingerprint",
        "SELECT error_group, min(start_time) FROM executions "
        "WHERE error_group = ANY(%s) AND error_group <> '' GROUP BY error_group",
    ):
        for fingerprint, when in conn.execute(sql, (fingerprints,)).fetchall():
            if when is not None and (fingerprint not in seen or when < seen[fingerprint]):
                seen[fingerprint] = when
    return seen
