"""Rollup rows, execution_metrics (hours) and execution_metrics_daily (days), each an
Aggregate of one plugin's finished runs, with histogram and error types as JSON; and
bridge_state, where the algorithms keep their watermarks (JSON values)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bridge.model import Status
from bridge.storage.base import ErrorHour, Grain, Rollup, Span
from bridge.storage.mysql.records import aware, text, utc
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


def _args(start: datetime, end: datetime, plugin: str | None) -> list[Any]:
    return [utc(start), utc(end)] + ([text(plugin)] if plugin else [])


def rollups(
    cur: Any, grain: Grain, start: datetime, end: datetime, plugin: str | None
) -> list[Rollup]:
    table, column, clauses = _range(grain, plugin)
    sql = f"SELECT plugin_name, {column}, {', '.join(_FIGURES)} FROM {table} WHERE {clauses}"
    cur.execute(sql, _args(start, end, plugin))
    return [Rollup(row[0], aware(row[1]), aggregate_of(row[2:])) for row in cur.fetchall()]


def rollup_plugins(cur: Any, grain: Grain, start: datetime, end: datetime) -> set[str]:
    """Grouped with MIN() rather than DISTINCT: InnoDB then reads one entry per plugin
    from the (plugin_name, time) key ("index for group-by"), where DISTINCT read every
    row of the range (90 days on the bench's history: 3.4 -> 1.0 ms)."""
    table, column, clauses = _range(grain, None)
    cur.execute(
        f"SELECT plugin_name, MIN({column}) FROM {table} WHERE {clauses} GROUP BY plugin_name",
        _args(start, end, None),
    )
    return {row[0] for row in cur.fetchall()}


def rollup_count(cur: Any, spans: list[Span], status: Status | None, error_type: str | None) -> int:
    cur.execute(*summed(_counted(span, status, error_type) for span in spans))
    row = cur.fetchone()
    return int(row[0]) if row else 0


def _counted(span: Span, status: Status | None, error_type: str | None) -> tuple[str, list[Any]]:
    table, _, clauses = _range(span.grain, span.plugin)
    expr, args = _COUNTERS[status], []
    if error_type is not None:  # counted per error type, whatever the status
        expr = "CAST(JSON_EXTRACT(error_types, %s) AS SIGNED)"
        args.append("$." + json.dumps(text(error_type), ensure_ascii=False))
    args += _args(span.start, span.end, span.plugin)
    return f"SELECT COALESCE(SUM({expr}), 0) FROM {table} WHERE {clauses}", args


def put_rollups(cur: Any, grain: Grain, items: Iterable[Rollup]) -> None:
    table, column = TABLES[grain]
    rows = [row_of(r) for r in items]
    if not rows:
        return
    columns = ("plugin_name", column, *_FIGURES)
    cur.executemany(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in _FIGURES),
        rows,
    )


def delete_rollups(cur: Any, grain: Grain, start: datetime, end: datetime) -> None:
    table, _, clauses = _range(grain, None)
    cur.execute(f"DELETE FROM {table} WHERE {clauses}", _args(start, end, None))


def aggregate_of(row: tuple[Any, ...]) -> Aggregate:
    (total, completed, failed, timeout, canceled, dsum, dmin, dmax, histogram, errors) = row[:10]
    retried, retry_time = row[10:12]
    return Aggregate(
        total=total,
        completed=completed,
        failed=failed,
        timeout=timeout,
        canceled=canceled,
        duration_sum=dsum,
        duration_min=dmin,
        duration_max=dmax,
        histogram=histogram_of(json.loads(histogram)),
        error_types=Counter(json.loads(errors)),
        retried=retried,
        retry_time=retry_time,
    )


def row_of(rollup: Rollup) -> tuple[Any, ...]:
    a = rollup.aggregate
    return (
        text(rollup.plugin),
        utc(rollup.start),
        a.total,
        a.completed,
        a.failed,
        a.timeout,
        a.canceled,
        a.duration_sum,
        a.duration_min or 0,
        a.duration_max,
        json.dumps({str(k): v for k, v in sorted(a.histogram.items())}),
        json.dumps({text(k): v for k, v in a.error_types.items()}, ensure_ascii=False),
        a.retried,
        a.retry_time,
    )


def get_state(cur: Any, key: str) -> Any:
    """A bridge_state value (the algorithms' watermarks and last cleanup), or None."""
    cur.execute("SELECT value FROM bridge_state WHERE `key` = %s", (key,))
    row = cur.fetchone()
    return json.loads(row[0]) if row else None


def get_states(cur: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    marks = ", ".join(["%s"] * len(keys))
    cur.execute(f"SELECT `key`, value FROM bridge_state WHERE `key` IN ({marks})", keys)
    return {key: json.loads(value) for key, value in cur.fetchall()}


def set_state(cur: Any, key: str, value: Any) -> None:
    cur.execute(
        "INSERT INTO bridge_state (`key`, value) VALUES (%s, %s) "
        "ON DUPLICATE KEY UPDATE value = VALUES(value)",
        (key, json.dumps(value)),
    )


def states(cur: Any, prefix: str) -> dict[str, Any]:
    """Every bridge_state value whose key starts with `prefix`."""
    cur.execute(
        "SELECT `key`, value FROM bridge_state WHERE LEFT(`key`, %s) = %s", (len(prefix), prefix)
    )
    return {key: json.loads(value) for key, value in cur.fetchall()}


def delete_state(cur: Any, key: str) -> None:
    cur.execute("DELETE FROM bridge_state WHERE `key` = %s", (key,))


# -- error groups: error_group_hours ---------------------------------------
# An hour's UTC day, and the day's latest example (%% is the driver's escape of %).
_DAY = (
    "TIMESTAMP(DATE(hour_start))",
    "SUBSTRING(MAX(CONCAT(DATE_FORMAT(last_seen, '%%Y%%m%%d%%H%%i%%s%%f'), example_id)), 21)",
)


def error_hours(
    cur: Any, start: datetime, end: datetime, plugin: str | None, grain: Grain
) -> list[ErrorHour]:
    sql = error_hours_sql("%s", bool(plugin), _DAY if grain == "day" else None)
    args: list[Any] = [utc(start), utc(end)] + ([text(plugin)] if plugin else [])
    cur.execute(sql, args)
    return [
        ErrorHour(f, aware(h), p, et, m, int(n), aware(a), aware(b), x)  # type: ignore[arg-type]
        for f, h, p, et, m, n, a, b, x in cur.fetchall()
    ]


def put_error_hours(cur: Any, items: list[ErrorHour]) -> None:
    if not items:
        return
    cur.executemany(
        f"INSERT INTO error_group_hours ({', '.join(ERROR_HOUR_COLUMNS)}) "
        f"VALUES ({', '.join(['%s'] * len(ERROR_HOUR_COLUMNS))}) ON DUPLICATE KEY UPDATE "
        + ", ".join(f"{c} = VALUES({c})" for c in ERROR_HOUR_COLUMNS[2:]),
        [
            (
                h.fingerprint,
                utc(h.hour),
                text(h.plugin),
                text(h.error_type),
                text(h.message),
                h.count,
                utc(h.first_seen),
                utc(h.last_seen),
                h.example_id,
            )
            for h in items
        ],
    )


def first_seen(cur: Any, fingerprints: list[str]) -> dict[str, datetime]:
    seen: dict[str, datetime] = {}
    for i in range(0, len(fingerprints), 500):
        chunk = fingerprints[i : i + 500]
        marks = ", ".join(["%s"] * len(chunk))
        for sql in (
            f"SELECT fingerprint, MIN(first_seen) FROM error_group_hours "
            f"WHERE fingerprint IN ({marks}) GROUP BY fingerprint",
            f"SELECT error_group, MIN(start_time) FROM executions "
            f"WHERE error_group IN ({marks}) AND error_group <> '' GROUP BY error_group",
        ):
            cur.execute(sql, chunk)
            for fingerprint, when in cur.fetchall():
                when = aware(when)
                if when is not None and (fingerprint not in seen or when < seen[fingerprint]):
                    seen[fingerprint] = when
    return seen
