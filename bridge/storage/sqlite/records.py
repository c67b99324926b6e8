"""The executions and execution_attempts tables: each function takes the connection; the
caller owns the transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from bridge.model import OPEN_STATUSES, AttemptRecord, ExecutionFilter, ExecutionRecord, Status
from bridge.storage.base import Failure, RunGroup
from bridge.storage.cursors import decode_cursor, encode_cursor
from bridge.storage.rollups import BASE_NS, BUCKETS_PER_DOUBLING
from bridge.storage.rows import COLUMNS, LIFECYCLE, implied_attempts, utf8_text, written_attempts
from bridge.storage.sqlite.connection import from_us, to_us

OPEN = tuple(s.value for s in OPEN_STATUSES)

SELECT = f"SELECT seq, replays, {', '.join(COLUMNS)} FROM executions"
INSERT = f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
UPSERT = f"{INSERT} ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in LIFECYCLE
)
ATTEMPT = "INSERT OR REPLACE INTO execution_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
TAG = (
    "INSERT OR IGNORE INTO execution_tags (key, value, start_time, execution_id) "
    "VALUES (?, ?, ?, ?)"
)
TAGGED = "id IN (SELECT execution_id FROM execution_tags WHERE key = ? AND value = ?)"


def values(r: ExecutionRecord) -> tuple[Any, ...]:
    return (
        r.id,
        r.plugin_name,
        r.http_method,
        to_us(r.start_time),
        to_us(r.end_time),
        r.status.value,
        r.input,
        r.output,
        r.error,
        r.error_type,
        r.duration,
        r.attempts,
        r.retry_count,
        r.trace_id,
        r.user_agent,
        r.remote_ip,
        r.tags,
        r.metadata,
        to_us(r.created_at or r.start_time),
        to_us(r.updated_at or r.start_time),
        r.worker,
        r.idempotency_key,
        r.error_group,
        r.replay_of,
        r.retry_time,
    )


def tag_values(r: ExecutionRecord) -> list[tuple[Any, ...]]:
    """The run's tags as rows of execution_tags (none for the usual untagged run)."""
    if r.tags in ("", "{}"):
        return []
    try:
        tags = json.loads(r.tags)
    except ValueError:
        return []
    if not isinstance(tags, dict):
        return []
    start = to_us(r.start_time)
    return [(_storable(str(k)), _storable(str(v)), start, r.id) for k, v in tags.items()]


_storable = utf8_text  # a tag's text, as the server backends store it


def write_tags(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> None:
    if len(rows) == 1:
        conn.execute(TAG, rows[0])
    elif rows:
        conn.executemany(TAG, rows)


def attempt_values(r: ExecutionRecord, every: bool = False) -> list[tuple[Any, ...]]:
    """The rows of the run's attempts that are stored (rows.written_attempts)."""
    return [
        (
            r.id,
            a.number,
            to_us(a.start_time),
            to_us(a.end_time),
            a.status.value,
            a.error,
            a.error_type,
            a.duration,
        )
        for a in written_attempts(r, every)
    ]


def record_of(row: sqlite3.Row) -> ExecutionRecord:
    data = {key: row[key] for key in COLUMNS}
    for key in ("start_time", "end_time", "created_at", "updated_at"):
        data[key] = from_us(data[key])
    data["status"] = Status(data["status"])
    return ExecutionRecord(**data, replays=row["replays"])


def get(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
    row = conn.execute(f"{SELECT} WHERE id = ?", (execution_id,)).fetchone()
    if row is None:
        return None
    record = record_of(row)
    record.attempt_records = [
        AttemptRecord(
            number=a["number"],
            start_time=from_us(a["start_time"]),
            end_time=from_us(a["end_time"]),
            status=Status(a["status"]),
            error=a["error"],
            error_type=a["error_type"],
            duration=a["duration"],
        )
        for a in conn.execute(
            "SELECT * FROM execution_attempts WHERE execution_id = ? ORDER BY number",
            (execution_id,),
        )
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
            clauses.append(f"{column} = ?")
            params.append(value)
    # Spelled out, so that the partial indexes on them (non-empty values only) apply.
    for column in ("error_group", "replay_of"):
        if getattr(flt, column) is not None:
            clauses.append(f"{column} <> ''")
    if flt.since is not None:
        clauses.append("start_time >= ?")
        params.append(to_us(flt.since))
    if flt.until is not None:
        clauses.append("start_time < ?")
        params.append(to_us(flt.until))
    for key, value in flt.tags:
        clauses.append(
            "id IN (SELECT execution_id FROM execution_tags WHERE key = ? AND value = ?)"
        )
        params += [key, value]
    return clauses, params


def page(
    conn: sqlite3.Connection,
    flt: ExecutionFilter,
    limit: int,
    offset: int,
    cursor: str | None,
) -> tuple[list[ExecutionRecord], str | None]:
    """Newest first; `cursor` (keyset) replaces `offset` for deep pages."""
    clauses, params = where(flt)
    if cursor:
        start_us, seq = decode_cursor(cursor)
        # Spelled out (not a row value) so the start_time index bounds the scan.
        clauses.append("start_time <= ? AND (start_time < ? OR seq < ?)")
        params += [start_us, start_us, seq]
        offset = 0
    sql = SELECT
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY start_time DESC, seq DESC LIMIT ? OFFSET ?"
    rows = conn.execute(sql, [*params, limit + 1, offset]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]["start_time"], rows[-1]["seq"]) if more and rows else None
    return [record_of(r) for r in rows], next_cursor


def count(conn: sqlite3.Connection, flt: ExecutionFilter, cap: int | None = None) -> int:
    clauses, params = where(flt)
    sql = "SELECT 1 FROM executions"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if cap is None:
        return conn.execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0]
    return conn.execute(f"SELECT count(*) FROM ({sql} LIMIT ?)", [*params, cap]).fetchone()[0]


def oldest_start(conn: sqlite3.Connection, open_only: bool = False) -> datetime | None:
    if open_only:
        sql = "SELECT min(start_time) FROM executions WHERE status IN (?, ?)"
        return from_us(conn.execute(sql, OPEN).fetchone()[0])
    return from_us(conn.execute("SELECT min(start_time) FROM executions").fetchone()[0])


# A run's duration bucket (rollups.bucket_of), in floating point as Python works it out.
BUCKET = (
    f"CASE WHEN duration <= {BASE_NS} THEN 0 ELSE CAST(log2(duration / {BASE_NS}e0) "
    f"* {BUCKETS_PER_DOUBLING} AS INTEGER) END"
)


def run_groups(
    conn: sqlite3.Connection,
    start: datetime,
    end: datetime | None,
    step: timedelta,
    plugin: str | None,
    tags: tuple[tuple[str, str], ...] = (),
) -> list[RunGroup]:
    slot_us = int(step.total_seconds()) * 1_000_000
    clauses, args = where(ExecutionFilter(tags=tags))
    clauses.append("start_time >= ?")
    args.append(to_us(start))
    if end is not None:
        clauses.append("start_time < ?")
        args.append(to_us(end))
    clauses.append("status NOT IN (?, ?)")
    args += OPEN
    if plugin is not None:
        clauses.append("plugin_name = ?")
        args.append(plugin)
    sql = (
        f"SELECT plugin_name, start_time / {slot_us} * {slot_us}, status, error_type, "
        f"{BUCKET}, count(*), sum(duration), min(duration), max(duration), "
        "sum(retry_count > 0), sum(CASE WHEN retry_count > 0 THEN retry_time ELSE 0 END), "
        f"max(start_time) FROM executions WHERE {' AND '.join(clauses)} GROUP BY 1, 2, 3, 4, 5"
    )
    return [
        RunGroup(row[0], from_us(row[1]), *row[2:11], from_us(row[11]))  # type: ignore[arg-type]
        for row in conn.execute(sql, args)
    ]


def open_runs(conn: sqlite3.Connection, worker: str | None) -> list[ExecutionRecord]:
    """Runs still `running` or `pending` (of one worker, or all), without attempts."""
    sql = f"{SELECT} WHERE status IN (?, ?)"
    args: list[Any] = list(OPEN)
    if worker is not None:
        sql += " AND worker = ?"
        args.append(worker)
    return [record_of(r) for r in conn.execute(sql, args)]


def failures(conn: sqlite3.Connection, start: datetime, end: datetime) -> Iterator[Failure]:
    sql = (
        "SELECT id, plugin_name, start_time, error_type, error_group, error FROM executions "
        "WHERE start_time >= ? AND start_time < ? AND error_group != '' AND status NOT IN (?, ?)"
    )
    for row in conn.execute(sql, (to_us(start), to_us(end), *OPEN)):
        yield Failure(row[0], row[1], from_us(row[2]), row[3], row[4], row[5])
