"""The executions, execution_attempts and execution_tags tables: each function takes the
connection; the caller owns the transaction.

A record carries its tags and metadata as JSON text; here they become `jsonb` and are
read back as text (`::text`). What jsonb cannot hold is changed on the way in, as
PostgreSQL's text cannot hold it either: NUL and lone surrogates become U+FFFD, NaN and
infinities become strings, text that is not JSON is kept as a JSON string, and "" is
stored as NULL. jsonb also orders an object's keys its own way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bridge.model import OPEN_STATUSES, AttemptRecord, ExecutionFilter, ExecutionRecord, Status
from bridge.storage.base import Failure, RunGroup
from bridge.storage.cursors import decode_time_cursor, encode_cursor, to_us
from bridge.storage.rollups import BASE_NS, BUCKETS_PER_DOUBLING
from bridge.storage.rows import (
    COLUMNS,
    LIFECYCLE,
    implied_attempts,
    json_value,
    utf8_text,
    written_attempts,
)

OPEN = [s.value for s in OPEN_STATUSES]

_TEXT = {"tags": "tags::text AS tags", "metadata": "metadata::text AS metadata"}
SELECT = f"SELECT seq, replays, {', '.join(_TEXT.get(c, c) for c in COLUMNS)} FROM executions"
INSERT = (
    f"INSERT INTO executions ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
)
UPSERT = f"{INSERT} ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in LIFECYCLE
)
ATTEMPT = (
    "INSERT INTO execution_attempts (execution_id, number, start_time, end_time, status, "
    "error, error_type, duration) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (execution_id, number) DO UPDATE SET start_time = excluded.start_time, "
    "end_time = excluded.end_time, status = excluded.status, error = excluded.error, "
    "error_type = excluded.error_type, duration = excluded.duration"
)
TAG = (
    "INSERT INTO execution_tags (key, value, start_time, execution_id) "
    "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


def text(value: str) -> str:
    """Text PostgreSQL can store: NUL and lone surrogates become U+FFFD."""
    return utf8_text(value.replace("\x00", "\ufffd") if "\x00" in value else value)


# The usual run's tags and metadata, "{}": one value, never parsed (nor written, see
# writer._jsonb) again.
EMPTY_OBJECT = Jsonb({})


def jsonb(value: str) -> Jsonb | None:
    if value == "":
        return None
    if value == "{}":
        return EMPTY_OBJECT
    return Jsonb(parse_json(value))


def values(r: ExecutionRecord) -> tuple[Any, ...]:
    return (
        r.id,
        text(r.plugin_name),
        r.http_method,
        r.start_time,
        r.end_time,
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
        jsonb(r.tags),
        jsonb(r.metadata),
        r.created_at or r.start_time,
        r.updated_at or r.start_time,
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
    return [(k, text(str(v)), r.start_time, r.id) for k, v in tags.items()]


def attempt_values(r: ExecutionRecord, every: bool = False) -> list[tuple[Any, ...]]:
    """The rows of the run's attempts that are stored (rows.written_attempts)."""
    return [
        (
            r.id,
            a.number,
            a.start_time,
            a.end_time,
            a.status.value,
            text(a.error),
            text(a.error_type),
            a.duration,
        )
        for a in written_attempts(r, every)
    ]


def write(
    conn: psycopg.Connection[Any],
    sql: str,
    rows: Sequence[tuple[Any, ...]],
    attempts: Sequence[tuple[Any, ...]] = (),
    tags: Sequence[tuple[Any, ...]] = (),
) -> None:
    """Runs (inserted or upserted by `sql`), then their attempts and tags."""
    with conn.cursor() as cur:
        for sql_, batch in ((sql, rows), (ATTEMPT, attempts), (TAG, tags)):
            if len(batch) == 1:
                cur.execute(sql_, batch[0])
            elif batch:
                cur.executemany(sql_, batch)


def record_of(row: dict[str, Any]) -> ExecutionRecord:
    data = {key: row[key] for key in COLUMNS}
    data["status"] = Status(data["status"])
    data["tags"] = data["tags"] or ""
    data["metadata"] = data["metadata"] or ""
    return ExecutionRecord(**data, replays=row["replays"])


def get(conn: psycopg.Connection[Any], execution_id: str) -> ExecutionRecord | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"{SELECT} WHERE id = %s", (execution_id,)).fetchone()
        if row is None:
            return None
        record = record_of(row)
        cur.execute(
            "SELECT number, start_time, end_time, status, error, error_type, duration "
            "FROM execution_attempts WHERE execution_id = %s ORDER BY number",
            (execution_id,),
        )
        record.attempt_records = [
            AttemptRecord(**{**a, "status": Status(a["status"])}) for a in cur.fetchall()
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
        params.append(flt.since)
    if flt.until is not None:
        clauses.append("start_time < %s")
        params.append(flt.until)
    for key, value in flt.tags:
        clauses.append(
            "id IN (SELECT execution_id FROM execution_tags WHERE key = %s AND value = %s)"
        )
        params += [text(key), text(value)]
    return clauses, params


def page(
    conn: psycopg.Connection[Any],
    flt: ExecutionFilter,
    limit: int,
    offset: int,
    cursor: str | None,
) -> tuple[list[ExecutionRecord], str | None]:
    """Newest first; `cursor` (keyset on start_time, seq) replaces `offset`."""
    clauses, params = where(flt)
    if cursor:
        start, seq = decode_time_cursor(cursor)
        clauses.append("(start_time, seq) < (%s, %s)")
        params += [start, seq]
        offset = 0
    sql = SELECT
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += " ORDER BY start_time DESC, seq DESC LIMIT %s OFFSET %s"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, [*params, limit + 1, offset]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(to_us(rows[-1]["start_time"]), rows[-1]["seq"]) if more and rows else None
    )
    return [record_of(r) for r in rows], next_cursor


def count(conn: psycopg.Connection[Any], flt: ExecutionFilter, cap: int | None = None) -> int:
    clauses, params = where(flt)
    sql = "SELECT 1 FROM executions"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    if cap is not None:
        sql += " LIMIT %s"
        params.append(cap)
    row = conn.execute(f"SELECT count(*) FROM ({sql}) AS matches", params).fetchone()
    return int(row[0]) if row else 0


def oldest_start(conn: psycopg.Connection[Any], open_only: bool = False) -> datetime | None:
    if open_only:
        sql = "SELECT min(start_time) FROM executions WHERE status = ANY(%s)"
        row = conn.execute(sql, (OPEN,)).fetchone()
    else:
        row = conn.execute("SELECT min(start_time) FROM executions").fetchone()
    return row[0] if row else None


# A run's duration bucket (rollups.bucket_of), in float8 as Python works it out
# (PostgreSQL has no float log2: ln(x) / ln(2)).
BUCKET = (
    f"CASE WHEN duration <= {BASE_NS} THEN 0 ELSE floor(ln(duration::float8 / {BASE_NS}) "
    f"/ ln(2::float8) * {BUCKETS_PER_DOUBLING})::int END"
)


def run_groups(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime | None,
    step: timedelta,
    plugin: str | None,
    tags: tuple[tuple[str, str], ...] = (),
) -> list[RunGroup]:
    seconds = int(step.total_seconds())
    clauses, args = where(ExecutionFilter(tags=tags))
    clauses += ["start_time >= %s", "status <> ALL(%s)"]
    args += [start, OPEN]
    if end is not None:
        clauses.append("start_time < %s")
        args.append(end)
    if plugin is not None:
        clauses.append("plugin_name = %s")
        args.append(text(plugin))
    sql = (
        "SELECT plugin_name, "
        f"to_timestamp(floor(extract(epoch FROM start_time) / {seconds}) * {seconds}), "
        f"status, error_type, {BUCKET}, count(*), sum(duration), min(duration), "
        "max(duration), count(*) FILTER (WHERE retry_count > 0), "
        "coalesce(sum(retry_time) FILTER (WHERE retry_count > 0), 0), "
        f"max(start_time) FROM executions WHERE {' AND '.join(clauses)} GROUP BY 1, 2, 3, 4, 5"
    )
    return [  # sums are numeric (Decimal): a bigint could overflow
        RunGroup(p, slot, st, et, b, n, int(total), lo, hi, retried, int(retry_time), last)
        for p, slot, st, et, b, n, total, lo, hi, retried, retry_time, last in conn.execute(
            sql, args
        )
    ]


def open_runs(conn: psycopg.Connection[Any], worker: str | None) -> list[ExecutionRecord]:
    """Runs still `running` or `pending` (of one worker, or all), without attempts."""
    sql = f"{SELECT} WHERE status = ANY(%s)"
    args: list[Any] = [OPEN]
    if worker is not None:
        sql += " AND worker = %s"
        args.append(text(worker))
    with conn.cursor(row_factory=dict_row) as cur:
        return [record_of(r) for r in cur.execute(sql, args)]


def parse_json(value: str) -> Any:
    """The JSON value of a record's JSON text, with only strings this backend stores."""
    return json_value(value, text)


def failures(conn: psycopg.Connection[Any], start: datetime, end: datetime) -> Iterator[Failure]:
    """Failed runs of an hour range, for the error groups' rollup (a day at most)."""
    sql = (
        "SELECT id, plugin_name, start_time, error_type, error_group, error FROM executions "
        "WHERE start_time >= %s AND start_time < %s AND error_group <> '' "
        "AND status <> ALL(%s)"
    )
    for row in conn.execute(sql, (start, end, OPEN)).fetchall():
        yield Failure(*row)
