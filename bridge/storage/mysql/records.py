"""The executions, execution_attempts and execution_tags tables: each function takes a
cursor; the caller owns the transaction.

Times go in as naive UTC (the session's time zone is UTC) and come out as aware UTC.
A record carries tags and metadata as JSON text, stored in JSON columns. What UTF-8 or
JSON cannot hold is changed on the way in: a lone surrogate becomes U+FFFD, NaN and
infinities become strings, text that is not JSON is kept as a JSON string, and "" is
stored as NULL. MariaDB keeps valid JSON text as written; MySQL normalizes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.model import OPEN_STATUSES, AttemptRecord, ExecutionFilter, ExecutionRecord, Status
from bridge.storage.base import Failure, RunGroup
from bridge.storage.cursors import EPOCH, ONE_US, decode_time_cursor, encode_cursor
from bridge.storage.rollups import BASE_NS, BUCKETS_PER_DOUBLING
from bridge.storage.rows import (
    COLUMNS,
    LIFECYCLE,
    implied_attempts,
    json_value,
    utf8_text,
    written_attempts,
)

OPEN = tuple(s.value for s in OPEN_STATUSES)
_OPEN_IN = ", ".join(f"'{s}'" for s in OPEN)

_TIMES = ("start_time", "end_time", "created_at", "updated_at")
# The times as microseconds since the epoch: PyMySQL decodes a DATETIME in Python
# (~2.5 µs each, four a row), a quarter of reading a list page of 50 runs. Named
# apart from the columns: ORDER BY would take the name for the expression.
SELECT = (
    "SELECT seq, replays, "
    + ", ".join(
        f"TIMESTAMPDIFF(MICROSECOND, '1970-01-01', {c}) AS {c}_us" if c in _TIMES else c
        for c in COLUMNS
    )
    + " FROM executions"
)
INSERT = (
    f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
)
UPSERT = f"{INSERT} ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in LIFECYCLE)
ATTEMPT = (
    "INSERT INTO execution_attempts (execution_id, number, start_time, end_time, status, "
    "error, error_type, duration) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON DUPLICATE KEY UPDATE start_time = VALUES(start_time), end_time = VALUES(end_time), "
    "status = VALUES(status), error = VALUES(error), error_type = VALUES(error_type), "
    "duration = VALUES(duration)"
)
TAG = (
    "INSERT IGNORE INTO execution_tags (`key`, value, start_time, execution_id) "
    "VALUES (%s, %s, %s, %s)"
)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def utc(value: datetime | None) -> datetime | None:
    """A time as the naive UTC the columns hold."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


text = utf8_text  # MySQL's utf8mb4 holds any other text


def json_text(value: str) -> str | None:
    """JSON text a JSON column takes: `value` itself when it is valid, storable JSON."""
    if value == "":
        return None
    if (
        text(value) is value
        and not _SURROGATE_ESCAPE.search(value)
        and not any(c in value for c in ("NaN", "Infinity"))
    ):
        try:
            json.loads(value)
            return value
        except ValueError:
            pass
    return json.dumps(parse_json(value), ensure_ascii=False)


def values(r: ExecutionRecord) -> tuple[Any, ...]:
    return (
        r.id,
        text(r.plugin_name),
        r.http_method,
        utc(r.start_time),
        utc(r.end_time),
        r.status.value,
        text(r.input),
        text(r.output),
        text(r.error),
        text(r.error_type),
        r.duration,
        r.attempts,
        r.retry_count,
        text(r.trace_id),
        text(r.user_agent),
        text(r.remote_ip),
        json_text(r.tags),
        json_text(r.metadata),
        utc(r.created_at or r.start_time),
        utc(r.updated_at or r.start_time),
        text(r.worker),
        text(r.idempotency_key),
        r.error_group,
        r.replay_of,
        r.retry_time,
    )


def tag_values(r: ExecutionRecord) -> list[tuple[Any, ...]]:
    """The run's tags as rows of execution_tags (none for the usual untagged run)."""
    if r.tags in ("", "{}"):
        return []
    tags = parse_json(r.tags)
    if not isinstance(tags, dict):
        return []
    return [(k, text(str(v)), utc(r.start_time), r.id) for k, v in tags.items()]


def attempt_values(r: ExecutionRecord, every: bool = False) -> list[tuple[Any, ...]]:
    """The rows of the run's attempts that are stored (rows.written_attempts)."""
    return [
        (
            r.id,
            a.number,
            utc(a.start_time),
            utc(a.end_time),
            a.status.value,
            text(a.error),
            text(a.error_type),
            a.duration,
        )
        for a in written_attempts(r, every)
    ]


def write(
    cur: Any,
    sql: str,
    rows: Sequence[tuple[Any, ...]],
    attempts: Sequence[tuple[Any, ...]] = (),
    tags: Sequence[tuple[Any, ...]] = (),
) -> None:
    """Runs (inserted or upserted by `sql`), then their attempts and tags; the driver
    sends each batch as one multi-row INSERT."""
    for sql_, batch in ((sql, rows), (ATTEMPT, attempts), (TAG, tags)):
        if len(batch) == 1:
            cur.execute(sql_, batch[0])
        elif batch:
            cur.executemany(sql_, batch)


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def record_of(row: dict[str, Any]) -> ExecutionRecord:
    data = {key: row[key] for key in COLUMNS if key not in _TIMES}
    for key in _TIMES:
        us = row[f"{key}_us"]
        data[key] = None if us is None else EPOCH + us * ONE_US
    data["status"] = Status(data["status"])
    data["tags"] = data["tags"] or ""
    data["metadata"] = data["metadata"] or ""
    return ExecutionRecord(**data, replays=row["replays"])


def get(cur: Any, execution_id: str) -> ExecutionRecord | None:
    cur.execute(f"{SELECT} WHERE id = %s", (execution_id,))
    rows = _dicts(cur)
    if not rows:
        return None
    record = record_of(rows[0])
    cur.execute(
        "SELECT number, start_time, end_time, status, error, error_type, duration "
        "FROM execution_attempts WHERE execution_id = %s ORDER BY number",
        (execution_id,),
    )
    record.attempt_records = [
        AttemptRecord(n, aware(s), aware(e), Status(st), err, et, d)
        for n, s, e, st, err, et, d in cur.fetchall()
    ] or implied_attempts(record)
    return record


def where(flt: ExecutionFilter) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("plugin_name", flt.plugin),
        ("status", flt.status.value if flt.status else None),
        ("error_type", flt.error_type),
        ("trace_id", flt.trace_id),
        ("error_group", flt.error_group),
        ("replay_of", flt.replay_of),
    ):
        if value is not None:
            clauses.append(f"{column} = %s")
            params.append(text(value))
    # Spelled out, so that the partial indexes on them (non-empty values only) apply.
    for column in ("error_group", "replay_of"):
        if getattr(flt, column) is not None:
            clauses.append(f"{column} <> ''")
    if flt.since is not None:
        clauses.append("start_time >= %s")
        params.append(utc(flt.since))
    if flt.until is not None:
        clauses.append("start_time < %s")
        params.append(utc(flt.until))
    for key, value in flt.tags:
        clauses.append(
            "id IN (SELECT execution_id FROM execution_tags WHERE `key` = %s AND value = %s)"
        )
        params += [text(key), text(value)]
    return clauses, params


def page(
    cur: Any, flt: ExecutionFilter, limit: int, offset: int, cursor: str | None
) -> tuple[list[ExecutionRecord], str | None]:
    """Newest first; `cursor` (keyset on start_time, seq) replaces `offset`."""
    clauses, params = where(flt)
    if cursor:
        start, seq = decode_time_cursor(cursor)
        clauses.append("(start_time < %s OR (start_time = %s AND seq < %s))")
        params += [utc(start), utc(start), seq]
        offset = 0
    sql = SELECT
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY start_time DESC, seq DESC LIMIT %s OFFSET %s"
    cur.execute(sql, [*params, limit + 1, offset])
    rows = _dicts(cur)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(rows[-1]["start_time_us"], rows[-1]["seq"]) if more and rows else None
    )
    return [record_of(r) for r in rows], next_cursor


def count(cur: Any, flt: ExecutionFilter, cap: int | None = None) -> int:
    clauses, params = where(flt)
    sql = "SELECT 1 FROM executions"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if cap is not None:
        sql += " LIMIT %s"
        params.append(cap)
    cur.execute(f"SELECT COUNT(*) FROM ({sql}) AS matches", params)
    row = cur.fetchone()
    return int(row[0]) if row else 0


def oldest_start(cur: Any, open_only: bool = False) -> datetime | None:
    sql = "SELECT MIN(start_time) FROM executions"
    cur.execute(sql + (f" WHERE status IN ({_OPEN_IN})" if open_only else ""))
    row = cur.fetchone()
    return aware(row[0]) if row else None


# A run's duration bucket (rollups.bucket_of), in DOUBLE as Python works it out.
BUCKET = (
    f"CASE WHEN duration <= {BASE_NS} THEN 0 ELSE FLOOR(LOG2(duration / {BASE_NS}e0) "
    f"* {BUCKETS_PER_DOUBLING}) END"
)


def run_groups(
    cur: Any,
    start: datetime,
    end: datetime | None,
    step: timedelta,
    plugin: str | None,
    tags: tuple[tuple[str, str], ...] = (),
) -> list[RunGroup]:
    slot_us = int(step.total_seconds()) * 1_000_000
    clauses, args = where(ExecutionFilter(tags=tags))
    clauses += ["start_time >= %s", f"status NOT IN ({_OPEN_IN})"]
    args += [utc(start)]
    if end is not None:
        clauses.append("start_time < %s")
        args.append(utc(end))
    if plugin is not None:
        clauses.append("plugin_name = %s")
        args.append(text(plugin))
    since_epoch = "TIMESTAMPDIFF(MICROSECOND, '1970-01-01', start_time)"
    cur.execute(
        f"SELECT plugin_name, {since_epoch} DIV {slot_us} * {slot_us}, status, error_type, "
        f"{BUCKET}, COUNT(*), SUM(duration), MIN(duration), MAX(duration), "
        "SUM(retry_count > 0), SUM(IF(retry_count > 0, retry_time, 0)), "
        f"MAX({since_epoch}) FROM executions WHERE {' AND '.join(clauses)} "
        "GROUP BY 1, 2, 3, 4, 5",
        args,
    )
    return [  # sums are DECIMAL; times microseconds since the epoch
        RunGroup(
            p,
            EPOCH + slot * ONE_US,
            st,
            et,
            int(b),
            n,
            int(total),
            lo,
            hi,
            int(retried),
            int(retry),
            EPOCH + last * ONE_US,
        )
        for p, slot, st, et, b, n, total, lo, hi, retried, retry, last in cur.fetchall()
    ]


def open_runs(cur: Any, worker: str | None) -> list[ExecutionRecord]:
    """Runs still `running` or `pending` (of one worker, or all), without attempts."""
    sql = f"{SELECT} WHERE status IN ({_OPEN_IN})"
    args: list[Any] = []
    if worker is not None:
        sql += " AND worker = %s"
        args.append(text(worker))
    cur.execute(sql, args)
    return [record_of(r) for r in _dicts(cur)]


def parse_json(value: str) -> Any:
    """The JSON value of a record's JSON text, with only strings this backend stores."""
    return json_value(value, text)


def failures(cur: Any, start: datetime, end: datetime) -> Iterator[Failure]:
    """Failed runs of an hour range, for the error groups' rollup (a day at most)."""
    cur.execute(
        "SELECT id, plugin_name, start_time, error_type, error_group, error FROM executions "
        f"WHERE start_time >= %s AND start_time < %s AND error_group <> '' "
        f"AND status NOT IN ({_OPEN_IN})",
        (utc(start), utc(end)),
    )
    for run_id, plugin, started, error_type, group, error in cur.fetchall():
        yield Failure(run_id, plugin, aware(started), error_type, group, error)
