"""The SQLite backend: the embedded default store's queries.

Its schema and migrations are in sqlite_schema.py. Writes are group-committed on one
connection (writer.py); reads use a small bounded pool of connections, each held by one
thread at a time.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bridge.clock import rfc3339
from bridge.config import Config
from bridge.errors import InvalidCursor, StorageError
from bridge.model import (
    AttemptRecord,
    CleanupResult,
    DeliveryClaim,
    ExecutionFilter,
    ExecutionRecord,
    Page,
    Status,
)
from bridge.storage.rollups import Aggregate, build_stats, day_range
from bridge.storage.sqlite.connection import (
    ReadPool,
    connect,
    from_us,
    to_us,
    tune_for_writing,
)
from bridge.storage.sqlite.locks import WriteLock
from bridge.storage.sqlite.migrations import migrate
from bridge.storage.sqlite.writer import GroupCommitWriter, WriteFailed

log = logging.getLogger(__name__)

CLEANUP_BATCH = 150  # rows per delete transaction: a webhook may wait for one (~30 ms)
VACUUM_PAGES = 500  # pages freed per incremental-vacuum write: keeps each write short
VACUUM_BUDGET_S = 30.0  # longest a cleanup spends handing pages back to the OS
EXACT_COUNT_LIMIT = 10_000  # above this many matches, the list's total is an estimate
ALL_PLUGINS = "*"  # execution_metrics_daily's row for every plugin together
OPEN_STATUSES = (Status.RUNNING.value, Status.PENDING.value)

_COLUMNS = (
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
)
_SELECT = f"SELECT seq, replays, {', '.join(_COLUMNS)} FROM executions"
_INSERT = (
    f"INSERT INTO executions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
# What a run's lifecycle changes after its row is written. Only these are set on conflict:
# an UPDATE rewrites every index holding a column it sets, and the identity columns
# (plugin, start time, trace id) are in most of them.
_LIFECYCLE = (
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
)
_UPSERT = f"{_INSERT} ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _LIFECYCLE
)
_ATTEMPT = "INSERT OR REPLACE INTO execution_attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def _hour(us: int) -> int:
    """Start of the UTC hour holding `us`, in seconds."""
    return (us // 3_600_000_000) * 3600


def _day_start(seconds: int) -> int:
    return seconds - seconds % 86400


class SQLiteStore:
    """The ExecutionStore for SQLite."""

    kind = "sqlite"

    def __init__(self, config: Config, on_error: Callable[[str, BaseException], None]) -> None:
        self.config = config
        self.path = config.database_path
        self.retention_days = config.retention_days
        self.exact_count_limit = EXACT_COUNT_LIMIT
        self._pid = os.getpid()
        self._on_error = on_error
        self._lock = threading.Lock()
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path, self.config)
            try:
                self.schema_version = migrate(conn)
                conn.execute("SELECT count(*) FROM executions WHERE 0").fetchall()
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            # Say why where the error does not: SQLite answers "unable to open database
            # file" for a read-only mount, mkdir "File exists" for a file in the way.
            reason = str(exc)
            if isinstance(exc, FileExistsError):
                reason = f"{exc.filename} is a file, not a folder"
            elif any(
                p.exists() and not os.access(p, os.W_OK) for p in (self.path, self.path.parent)
            ):
                reason += " (the database file or its folder is read-only)"
            raise StorageError(f"failed to open database {self.path}: {reason}") from exc
        size = max(1, self.config.storage.sqlite.max_connections - 1)
        self._writer = GroupCommitWriter(
            self._connect_writer,
            self._on_error,
            WriteLock(Path(f"{self.path}.write.lock")),
            checkpoint=lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall(),
        )
        self._reads = ReadPool(lambda: connect(self.path, self.config), size)

    def _connect_writer(self) -> sqlite3.Connection:
        return tune_for_writing(connect(self.path, self.config))

    def _check_fork(self) -> None:
        """A forked child must not use its parent's connections or writer thread."""
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self._pid = os.getpid()
                    self._open()

    def _write(
        self,
        op: Callable[[sqlite3.Connection], Any],
        wait: bool = True,
        bulk: bool = False,
        key: str | None = None,
    ) -> Any:
        self._check_fork()
        try:
            return self._writer.submit(
                op,
                wait=wait,
                bulk=bulk,
                key=key,
                timeout=float(self.config.storage.sqlite.busy_timeout) + 25,
            )
        except WriteFailed as exc:
            raise StorageError(f"database write failed: {exc}") from exc

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        self._check_fork()
        try:
            with self._reads.connection() as conn:
                return fn(conn)
        except (sqlite3.Error, WriteFailed) as exc:
            raise StorageError(f"database read failed: {exc}") from exc

    # -- records -----------------------------------------------------------
    @staticmethod
    def _values(r: ExecutionRecord) -> tuple[Any, ...]:
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
        )

    @staticmethod
    def _attempt_values(r: ExecutionRecord) -> list[tuple[Any, ...]]:
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
            for a in r.attempt_records
        ]

    def insert(self, record: ExecutionRecord, *, wait: bool = False) -> None:
        values = self._values(record)
        # Keyed by the record: the run's final upsert replaces it if both share a commit.
        self._write(lambda c: c.execute(_INSERT, values), wait, key=record.id)

    def insert_many(self, records: Iterable[ExecutionRecord]) -> int:
        """Bulk path (imports, the benchmark's generator): the records and their attempts
        in one transaction; returns how many were written."""
        rows, attempts = [], []
        for r in records:
            rows.append(self._values(r))
            attempts += self._attempt_values(r)

        def op(conn: sqlite3.Connection) -> int:
            conn.executemany(_INSERT, rows)
            conn.executemany(_ATTEMPT, attempts)
            return len(rows)

        return self._write(op, bulk=True)

    def update(self, record: ExecutionRecord, *, wait: bool = True) -> None:
        """Write the record's current state (inserting it if its start was lost)."""
        values = self._values(record)
        attempts = self._attempt_values(record)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(_UPSERT, values)
            if len(attempts) == 1:
                conn.execute(_ATTEMPT, attempts[0])
            elif attempts:
                conn.executemany(_ATTEMPT, attempts)

        self._write(op, wait, key=record.id)

    @staticmethod
    def _record(row: sqlite3.Row) -> ExecutionRecord:
        data = {key: row[key] for key in _COLUMNS}
        for key in ("start_time", "end_time", "created_at", "updated_at"):
            data[key] = from_us(data[key])
        data["status"] = Status(data["status"])
        return ExecutionRecord(**data, replays=row["replays"])

    def get(self, execution_id: str) -> ExecutionRecord | None:
        def fn(conn: sqlite3.Connection) -> ExecutionRecord | None:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (execution_id,)).fetchone()
            if row is None:
                return None
            record = self._record(row)
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
            ]
            return record

        return self._read(fn)

    @staticmethod
    def _where(flt: ExecutionFilter) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("plugin_name", flt.plugin),
            ("status", flt.status.value if flt.status else None),
            ("error_type", flt.error_type),
            ("trace_id", flt.trace_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if flt.since is not None:
            clauses.append("start_time >= ?")
            params.append(to_us(flt.since))
        if flt.until is not None:
            clauses.append("start_time < ?")
            params.append(to_us(flt.until))
        return clauses, params

    @staticmethod
    def encode_cursor(start_us: int, seq: int) -> str:
        return base64.urlsafe_b64encode(f"{start_us}:{seq}".encode()).decode().rstrip("=")

    @staticmethod
    def decode_cursor(cursor: str) -> tuple[int, int]:
        """`(start_us, seq)` from a cursor `encode_cursor` made; anything else is invalid."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise InvalidCursor(cursor) from None
        start_text, _, seq_text = raw.partition(":")
        # Plain ASCII digits only (int() would take "1_0", " 1" and "+1"), and no more
        # of them than SQLite's 64-bit INTEGER holds.
        if not (
            start_text.removeprefix("-").isdigit()
            and seq_text.isdigit()
            and len(start_text) <= 19
            and len(seq_text) <= 19
        ):
            raise InvalidCursor(cursor)
        start_us, seq = int(start_text), int(seq_text)
        if not (-(2**63) <= start_us < 2**63 and seq < 2**63):
            raise InvalidCursor(cursor)
        return start_us, seq

    def list(self, flt: ExecutionFilter, limit: int, offset: int, cursor: str | None) -> Page:
        """Newest first; `cursor` (keyset) replaces `offset` for deep pages. `total` is
        exact up to `exact_count_limit` matches, above it an estimate from the rollups
        (counting a million index entries takes longer than the whole page should)."""
        clauses, params = self._where(flt)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        count_sql = f"SELECT count(*) FROM (SELECT 1 FROM executions{where} LIMIT ?)"
        page_clauses, page_params = list(clauses), list(params)
        if cursor:
            start_us, seq = self.decode_cursor(cursor)
            # Spelled out (not a row value) so the start_time index bounds the scan.
            page_clauses.append("start_time <= ? AND (start_time < ? OR seq < ?)")
            page_params += [start_us, start_us, seq]
            offset = 0
        sql = _SELECT
        if page_clauses:
            sql += " WHERE " + " AND ".join(page_clauses)
        sql += " ORDER BY start_time DESC, seq DESC LIMIT ? OFFSET ?"
        cap = self.exact_count_limit

        def fn(conn: sqlite3.Connection) -> Page:
            with _snapshot(conn):
                rows = conn.execute(sql, [*page_params, limit + 1, offset]).fetchall()
                total = conn.execute(count_sql, [*params, cap + 1]).fetchone()[0]
                estimate = total > cap
                if estimate:
                    total = max(total, self._estimate(conn, flt) or 0)
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = (
                self.encode_cursor(rows[-1]["start_time"], rows[-1]["seq"])
                if more and rows
                else None
            )
            return Page([self._record(r) for r in rows], total, estimate, next_cursor)

        return self._read(fn)

    def _estimate(self, conn: sqlite3.Connection, flt: ExecutionFilter) -> int | None:
        """Matches counted from rollups before the watermark plus raw rows after it; None
        for what rollups do not count (trace ids, open runs)."""
        if flt.trace_id is not None or (flt.status is not None and not flt.status.is_final):
            return None
        expr = {
            None: "total",
            Status.COMPLETED: "completed",
            Status.FAILED: "failed",
            Status.TIMEOUT: "timeout",
            Status.CANCELED: "canceled",
        }[flt.status]
        args: list[Any] = []
        if flt.error_type is not None:  # counted per error type, whatever the status
            expr = "json_extract(error_types, ?)"
            args.append(f'$."{flt.error_type}"')
        watermark = self._state(conn, "rollup_watermark") or 0
        oldest = conn.execute("SELECT min(start_time) FROM executions").fetchone()[0]
        if oldest is None:
            return 0
        lo = _hour(oldest)  # rollups outlive raw rows: count only hours still held
        if flt.since is not None:
            lo = max(lo, -(-(to_us(flt.since) or 0) // 3_600_000_000) * 3600)
        hi = watermark
        if flt.until is not None:
            hi = min(hi, _hour(to_us(flt.until) or 0))
        rolled = self._rolled_sum(conn, expr, args, flt.plugin, lo, hi) if lo < hi else 0
        raw_clauses, raw_params = self._where(flt)
        raw_clauses.append("start_time >= ?")
        raw_params.append(watermark * 1_000_000)
        raw = conn.execute(
            "SELECT count(*) FROM executions WHERE " + " AND ".join(raw_clauses), raw_params
        ).fetchone()[0]
        return rolled + raw

    def _rolled_sum(
        self,
        conn: sqlite3.Connection,
        expr: str,
        args: list[Any],
        plugin: str | None,
        lo: int,
        hi: int,
    ) -> int:
        """sum(expr) over [lo, hi) seconds: daily rows for whole days, hourly at the edges."""
        daily_upto = self._state(conn, "daily_watermark") or 0
        first_day = -(-lo // 86400) * 86400
        last_day = min(_day_start(hi), _day_start(daily_upto))
        spans = [(lo, hi)]
        total = 0
        if first_day < last_day:
            total += conn.execute(
                f"SELECT coalesce(sum({expr}), 0) FROM execution_metrics_daily "
                "WHERE plugin_name = ? AND day_start >= ? AND day_start < ?",
                [*args, plugin or ALL_PLUGINS, first_day, last_day],
            ).fetchone()[0]
            spans = [(lo, first_day), (last_day, hi)]
        for a, b in spans:
            if a < b:
                total += conn.execute(
                    f"SELECT coalesce(sum({expr}), 0) FROM execution_metrics "
                    "INDEXED BY ix_execution_metrics_counts WHERE hour_start >= ? AND "
                    "hour_start < ?" + (" AND plugin_name = ?" if plugin else ""),
                    [*args, a, b, *([plugin] if plugin else [])],
                ).fetchone()[0]
        return int(total)

    # -- stats and rollups -------------------------------------------------
    def _state(self, conn: sqlite3.Connection, key: str) -> Any:
        row = conn.execute("SELECT value FROM bridge_state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    @staticmethod
    def _set_state(conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO bridge_state (key, value) VALUES (?, ?)",
            (key, json.dumps(value)),
        )

    def stats(self, days: int, plugin: str | None, now: datetime) -> dict[str, Any]:
        """Daily rollups, then hourly ones past them, then raw rows after the watermark."""
        window = day_range(days, now)
        start_s = int(
            datetime(window[0].year, window[0].month, window[0].day, tzinfo=UTC).timestamp()
        )

        def fn(conn: sqlite3.Connection) -> dict[str, Any]:
            per_day: dict[date, Aggregate] = defaultdict(Aggregate)
            plugins: set[str] = set()
            with _snapshot(conn):
                watermark = self._state(conn, "rollup_watermark") or 0
                daily_upto = min(self._state(conn, "daily_watermark") or 0, watermark)
                hourly_from = max(start_s, daily_upto)
                if start_s < daily_upto:
                    for row in conn.execute(
                        "SELECT * FROM execution_metrics_daily WHERE plugin_name = ? AND "
                        "day_start >= ? AND day_start < ?",
                        (plugin or ALL_PLUGINS, start_s, daily_upto),
                    ):
                        _merge_day(
                            per_day, _day(row["day_start"] * 1_000_000), _aggregate_from_row(row)
                        )
                    plugins.update(
                        r[0]
                        for r in conn.execute(
                            "SELECT DISTINCT plugin_name FROM execution_metrics_daily WHERE "
                            "plugin_name != ? AND day_start >= ? AND day_start < ?"
                            + (" AND plugin_name = ?" if plugin else ""),
                            [ALL_PLUGINS, start_s, daily_upto] + ([plugin] if plugin else []),
                        )
                    )
                sql = "SELECT * FROM execution_metrics WHERE hour_start >= ? AND hour_start < ?" + (
                    " AND plugin_name = ?" if plugin else ""
                )
                args: list[Any] = [hourly_from, watermark] + ([plugin] if plugin else [])
                for row in conn.execute(sql, args):
                    _merge_day(
                        per_day, _day(row["hour_start"] * 1_000_000), _aggregate_from_row(row)
                    )
                    plugins.add(row["plugin_name"])
                raw_from = max(start_s, watermark) * 1_000_000
                sql = (
                    "SELECT plugin_name, start_time, status, error_type, duration "
                    "FROM executions WHERE start_time >= ? AND status NOT IN (?, ?)"
                    + (" AND plugin_name = ?" if plugin else "")
                )
                args = [raw_from, *OPEN_STATUSES] + ([plugin] if plugin else [])
                for row in conn.execute(sql, args):
                    per_day[_day(row["start_time"])].add(
                        row["status"], row["error_type"], row["duration"]
                    )
                    plugins.add(row["plugin_name"])
            return build_stats(per_day, window, len(plugins))

        return self._read(fn)

    def rollup(self, now: datetime) -> int:
        """Roll closed hours up into execution_metrics; returns how many rows it wrote."""
        now_us = to_us(now) or 0

        def plan(conn: sqlite3.Connection) -> tuple[int, int]:
            oldest_open = conn.execute(
                "SELECT min(start_time) FROM executions WHERE status IN (?, ?)", OPEN_STATUSES
            ).fetchone()[0]
            upto = _hour(now_us)
            if oldest_open is not None:
                upto = min(upto, _hour(oldest_open))
            watermark = self._state(conn, "rollup_watermark")
            if watermark is None:
                first = conn.execute("SELECT min(start_time) FROM executions").fetchone()[0]
                watermark = _hour(first) if first is not None else upto
            # Re-roll the hour before the watermark: a run may commit just after a rollup.
            return max(0, min(watermark, upto) - 3600), upto

        start_s, upto_s = self._read(plan)
        written = 0
        day = 86400
        chunk_start = start_s
        while chunk_start < upto_s:
            chunk_end = min(upto_s, chunk_start + day)
            rows = self._read(lambda c, a=chunk_start, b=chunk_end: _hourly_aggregates(c, a, b))
            if rows:
                self._write(
                    lambda c, rows=rows: c.executemany(
                        "INSERT OR REPLACE INTO execution_metrics VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                )
                written += len(rows)
            chunk_start = chunk_end

        def finish(conn: sqlite3.Connection) -> None:
            daily_upto = self._state(conn, "daily_watermark")
            if daily_upto is None:  # first rollup since the daily table came: every day
                daily_upto = (
                    conn.execute("SELECT min(hour_start) FROM execution_metrics").fetchone()[0]
                    or start_s
                )
            _rebuild_days(conn, _day_start(min(start_s, daily_upto)), upto_s)
            self._set_state(conn, "daily_watermark", upto_s)
            self._set_state(conn, "rollup_watermark", upto_s)

        self._write(finish)
        return written

    # -- maintenance -------------------------------------------------------
    def cleanup(self, older_than_days: int, now: datetime) -> CleanupResult:
        """Delete finished runs older than the cutoff in small batches, then free space."""
        t0 = time.perf_counter()
        self.rollup(now)  # stats must outlive the raw rows
        cutoff = now - timedelta(days=older_than_days)
        cutoff_us = to_us(cutoff)

        # One statement per table and batch, not one per row: under load every statement
        # costs the committing thread a wait for the GIL.
        expired = (
            "SELECT seq FROM executions WHERE start_time < ? AND status NOT IN (?, ?) "
            "ORDER BY start_time LIMIT ?"
        )
        args = (cutoff_us, *OPEN_STATUSES, CLEANUP_BATCH)

        def batch(conn: sqlite3.Connection) -> int:
            conn.execute(
                "DELETE FROM execution_attempts WHERE execution_id IN "
                f"(SELECT id FROM executions WHERE seq IN ({expired}))",
                args,
            )
            return conn.execute(f"DELETE FROM executions WHERE seq IN ({expired})", args).rowcount

        deleted = 0
        while True:
            n = self._write(batch, bulk=True)
            deleted += n
            if n < CLEANUP_BATCH:
                break
        log.info("Cleanup deleted %d executions in %.1fs", deleted, time.perf_counter() - t0)
        # Hand freed pages back a few at a time: one big vacuum would hold the write lock
        # (and every webhook waiting on it) for seconds. Moving pages is slow (~1,000/s
        # under load), so it stops after a budget: pages still free are reused by new
        # rows, and the next cleanup carries on.
        deadline = time.perf_counter() + VACUUM_BUDGET_S
        while (
            self._write(lambda c: _vacuum_step(c, VACUUM_PAGES), bulk=True)
            and time.perf_counter() < deadline
        ):
            pass
        self._checkpoint()
        finished = datetime.now(UTC)
        result = CleanupResult(deleted, cutoff, finished, (time.perf_counter() - t0) * 1000)
        self._write(
            lambda c: self._set_state(
                c,
                "last_cleanup",
                {
                    "at": rfc3339(finished),
                    "deleted": deleted,
                    "cutoff": rfc3339(cutoff),
                    "duration_ms": round(result.duration_ms, 1),
                },
            )
        )
        return result

    def _checkpoint(self) -> None:
        """Hand the WAL back to the main file and truncate it (outside any transaction)."""

        def fn(conn: sqlite3.Connection) -> None:
            with self._writer.lock.held():  # it needs the write lock: queue for it
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

        try:
            self._read(fn)
        except StorageError as exc:
            log.warning("WAL checkpoint skipped: %s", exc)

    def open_runs(self, worker: str | None = None) -> list[ExecutionRecord]:
        """Runs still `running` or `pending` (of one worker, or all), without attempts."""
        sql = f"{_SELECT} WHERE status IN (?, ?)"
        args: list[Any] = list(OPEN_STATUSES)
        if worker is not None:
            sql += " AND worker = ?"
            args.append(worker)
        return self._read(lambda c: [self._record(r) for r in c.execute(sql, args)])

    # -- idempotency -------------------------------------------------------
    def claim_delivery(
        self, plugin: str, key: str, execution_id: str, now: datetime, window_s: float
    ) -> DeliveryClaim | None:
        now_us = to_us(now) or 0
        expired_before = now_us - int(window_s * 1_000_000)

        def op(conn: sqlite3.Connection) -> DeliveryClaim | None:
            conn.execute(
                "INSERT INTO deliveries (plugin_name, key, execution_id, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (plugin_name, key) DO UPDATE SET "
                "execution_id = excluded.execution_id, created_at = excluded.created_at "
                "WHERE deliveries.created_at < ?",
                (plugin, key, execution_id, now_us, expired_before),
            )
            holder, created = conn.execute(
                "SELECT execution_id, created_at FROM deliveries WHERE plugin_name = ? AND key = ?",
                (plugin, key),
            ).fetchone()
            if holder == execution_id:
                return None
            return DeliveryClaim(holder, max(0.0, (now_us - created) / 1e6))

        return self._write(op)

    def take_over_delivery(
        self, plugin: str, key: str, holder: str, execution_id: str, now: datetime
    ) -> bool:
        return self._write(
            lambda c: (
                c.execute(
                    "UPDATE deliveries SET execution_id = ?, created_at = ? WHERE plugin_name = ? "
                    "AND key = ? AND execution_id = ?",
                    (execution_id, to_us(now), plugin, key, holder),
                ).rowcount
                == 1
            )
        )

    def release_delivery(self, plugin: str, key: str, execution_id: str) -> None:
        self._write(
            lambda c: c.execute(
                "DELETE FROM deliveries WHERE plugin_name = ? AND key = ? AND execution_id = ?",
                (plugin, key, execution_id),
            )
        )

    def mark_replayed(self, execution_id: str, now: datetime) -> None:
        self._write(
            lambda c: c.execute(
                "UPDATE executions SET replays = replays + 1, updated_at = ? WHERE id = ?",
                (to_us(now), execution_id),
            )
        )

    def purge_deliveries(self, before: datetime) -> int:
        return self._write(
            lambda c: (
                c.execute("DELETE FROM deliveries WHERE created_at < ?", (to_us(before),)).rowcount
            )
        )

    def info(self) -> dict[str, Any]:
        def fn(conn: sqlite3.Connection) -> dict[str, Any]:
            total, oldest, newest = conn.execute(
                "SELECT count(*), min(start_time), max(start_time) FROM executions"
            ).fetchone()
            return {
                "total_records": total,
                "oldest_record": from_us(oldest),
                "newest_record": from_us(newest),
                "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
                "page_size": conn.execute("PRAGMA page_size").fetchone()[0],
                "page_count": conn.execute("PRAGMA page_count").fetchone()[0],
                "freelist_count": conn.execute("PRAGMA freelist_count").fetchone()[0],
                "schema_version": conn.execute("SELECT max(id) FROM migrations").fetchone()[0],
                "last_cleanup": self._state(conn, "last_cleanup"),
                "rollup_watermark": from_us(
                    (self._state(conn, "rollup_watermark") or 0) * 1_000_000
                ),
            }

        data = self._read(fn)
        files = [self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")]
        data.update(
            {
                "type": self.kind,
                "location": str(self.path.resolve()),
                "size_bytes": sum(f.stat().st_size for f in files if f.exists()),
                "retention_days": self.retention_days,
                "open_connections": self._reads.open_count + (1 if self._writer.alive else 0),
                "max_connections": self.config.storage.sqlite.max_connections,
            }
        )
        return data

    def health(self) -> tuple[bool, str]:
        """Whether records can be read, and whether the latest write was committed."""
        try:
            self._read(lambda c: c.execute("SELECT 1 FROM executions LIMIT 1").fetchall())
        except StorageError as exc:
            return False, str(exc)
        failing = self._writer.failing
        if failing is not None:
            return False, f"database writes are failing: {failing}"
        return True, "ok"

    def explain(self, sql: str, params: Iterable[Any] = ()) -> list[str]:
        """EXPLAIN QUERY PLAN details, for checking that a query uses an index."""
        return self._read(
            lambda c: [r["detail"] for r in c.execute(f"EXPLAIN QUERY PLAN {sql}", tuple(params))]
        )

    def close(self) -> None:
        self._writer.close()
        self._reads.close()


@contextlib.contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so every SELECT inside sees the same rollup watermark."""
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def _vacuum_step(conn: sqlite3.Connection, pages: int) -> bool:
    """Free up to `pages` pages; whether more remain."""
    conn.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
    return conn.execute("PRAGMA freelist_count").fetchone()[0] > 0


def _rebuild_days(conn: sqlite3.Connection, start_s: int, end_s: int) -> None:
    """Re-merge the daily rows (per plugin and '*') of the days in [start_s, end_s)."""
    groups: dict[tuple[str, int], Aggregate] = defaultdict(Aggregate)
    for row in conn.execute(
        "SELECT * FROM execution_metrics WHERE hour_start >= ? AND hour_start < ?", (start_s, end_s)
    ):
        agg = _aggregate_from_row(row)
        day = _day_start(row["hour_start"])
        groups[(row["plugin_name"], day)].merge(agg)
        groups[(ALL_PLUGINS, day)].merge(agg)
    conn.execute(
        "DELETE FROM execution_metrics_daily WHERE day_start >= ? AND day_start < ?",
        (start_s, end_s),
    )
    conn.executemany(
        "INSERT INTO execution_metrics_daily VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [_metrics_row(plugin, day, a) for (plugin, day), a in groups.items()],
    )


def _day(us: int) -> date:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).date()


def _aggregate_from_row(row: sqlite3.Row) -> Aggregate:
    return Aggregate(
        total=row["total"],
        completed=row["completed"],
        failed=row["failed"],
        timeout=row["timeout"],
        canceled=row["canceled"],
        duration_sum=row["duration_sum"],
        duration_min=row["duration_min"],
        duration_max=row["duration_max"],
        histogram=Counter({int(k): v for k, v in json.loads(row["histogram"]).items()}),
        error_types=Counter(json.loads(row["error_types"])),
    )


def _merge_day(per_day: dict[date, Aggregate], day: date, agg: Aggregate) -> None:
    """Merge into the day's aggregate; the first one for a day is taken as it is."""
    if day in per_day:
        per_day[day].merge(agg)
    else:
        per_day[day] = agg


def _hourly_aggregates(conn: sqlite3.Connection, start_s: int, end_s: int) -> list[tuple]:
    """execution_metrics rows for the finished runs that started in [start_s, end_s)."""
    groups: dict[tuple[str, int], Aggregate] = defaultdict(Aggregate)
    for row in conn.execute(
        "SELECT plugin_name, start_time, status, error_type, duration FROM executions "
        "WHERE start_time >= ? AND start_time < ? AND status NOT IN (?, ?)",
        (start_s * 1_000_000, end_s * 1_000_000, *OPEN_STATUSES),
    ):
        groups[(row[0], _hour(row[1]))].add(row[2], row[3], row[4])
    return [_metrics_row(plugin, hour, a) for (plugin, hour), a in groups.items()]


def _metrics_row(plugin: str, start_s: int, a: Aggregate) -> tuple:
    return (
        plugin,
        start_s,
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
    )
