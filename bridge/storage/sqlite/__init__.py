"""The SQLite backend: the embedded default store.

Writes are group-committed on one connection per process (writer.py, on
storage/group_commit.py); reads use a small bounded pool of connections, each held by
one thread at a time (connection.py). The SQL is in records.py, rollups.py,
maintenance.py and deliveries.py; the schema in migrations.py.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from bridge import clock
from bridge.config import Config
from bridge.errors import StorageError
from bridge.model import DeliveryClaim, ExecutionRecord
from bridge.storage.base import LAST_CLEANUP, ROLLUP_WATERMARK, StorageInfo
from bridge.storage.group_commit import WriteFailed
from bridge.storage.rows import COUNT_HISTORY
from bridge.storage.sqlite import deliveries, maintenance, records
from bridge.storage.sqlite.connection import (
    ReadPool,
    connect,
    file_identity,
    from_us,
    to_us,
    tune_for_writing,
)
from bridge.storage.sqlite.locks import FileLeaderLock, WriteLock
from bridge.storage.sqlite.migrations import migrate, schema_version
from bridge.storage.sqlite.reader import SQLiteReader, SQLiteWriter
from bridge.storage.sqlite.rollups import get_state
from bridge.storage.sqlite.writer import SQLiteGroupWriter

log = logging.getLogger(__name__)

T = TypeVar("T")


class SQLiteStore:
    """The ExecutionStore for SQLite."""

    kind = "sqlite"

    def __init__(self, config: Config, on_error: Callable[[str, BaseException], None]) -> None:
        self.config = config
        self.path = config.database_path
        self.retention_days = config.retention_days
        self._pid = os.getpid()
        self._on_error = on_error
        self._lock = threading.Lock()
        self.file_event = ""  # the latest time the file was deleted or replaced
        self._open()

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path, self.config, create=True)
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
        self._identity = self._read_identity = file_identity(self.path)
        size = max(1, self.config.storage.sqlite.max_connections - 1)
        self._writer = SQLiteGroupWriter(
            lambda: tune_for_writing(connect(self.path, self.config)),
            self._on_error,
            WriteLock(Path(f"{self.path}.write.lock")),
            checkpoint=lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall(),
            before_commit=self._same_file,
        )
        self._reads = ReadPool(lambda: connect(self.path, self.config), size)
        # Held open from the start, not from this process's first write: if the file is
        # deleted, whichever process writes first must have the old one open to write it
        # again (_same_file), or it starts an empty database and the runs are lost.
        with contextlib.suppress(sqlite3.Error):  # else it is opened at the first commit
            self._writer.connect()

    def _same_file(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """Before each commit, with the write lock held: is the file at the path still
        the one the connections have open? Deleted, it is written again from the open
        connection (which still reads the deleted file), so that nothing committed is
        lost; replaced, the new file is used. Either way the connections are reopened.
        Every process checks here under the same lock, so none commits to the old file
        once another has put the new one in place."""
        now = file_identity(self.path)
        if now is not None and now == self._identity:
            return conn
        if now is None and conn is not None:
            maintenance.restore(conn, self.path)
            what = "deleted while running; it was written again from the open connection"
        elif now is None:
            what = "deleted while running; a new one was made"
        else:
            what = "replaced while running; the new file is used"
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        fresh = connect(self.path, self.config, create=True)
        migrate(fresh)
        self._identity = self._read_identity = file_identity(self.path)
        self._reads.reset()
        self.file_event = f"{clock.rfc3339(clock.utcnow())}: the database file was {what}"
        log.warning("%s (%s)", self.file_event, self.path)
        return tune_for_writing(fresh)

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
        linger: bool = False,
    ) -> Any:
        self._check_fork()
        try:
            return self._writer.submit(
                op,
                wait=wait,
                bulk=bulk,
                key=key,
                linger=linger,
                timeout=float(self.config.storage.sqlite.busy_timeout) + 25,
            )
        except WriteFailed as exc:
            raise StorageError(f"database write failed: {exc}") from exc

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        self._check_fork()
        now = file_identity(self.path)
        if now is not None and now != self._read_identity:
            self._read_identity = now  # another process put a new file in place
            self._reads.reset()
        try:
            with self._reads.connection() as conn:
                return fn(conn)
        except (sqlite3.Error, WriteFailed) as exc:
            raise StorageError(f"database read failed: {exc}") from exc

    # -- runs --------------------------------------------------------------
    def expect(self, execution_id: str) -> None:
        self._check_fork()
        self._writer.expect(execution_id)

    def insert(self, record: ExecutionRecord, *, wait: bool = False) -> None:
        values = records.values(record)
        tags = records.tag_values(record)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(records.INSERT, values)
            records.write_tags(conn, tags)

        # Keyed by the record: the run's final upsert replaces it if both share a commit
        # (an open run's row nobody waits for lingers for that: see GroupCommitWriter).
        self._write(op, wait, key=record.id, linger=not record.status.is_final)

    def insert_many(self, items: Iterable[ExecutionRecord]) -> int:
        rows, attempts, tags = [], [], []
        for r in items:
            rows.append(records.values(r))
            attempts += records.attempt_values(r, every=True)
            tags += records.tag_values(r)

        def op(conn: sqlite3.Connection) -> int:
            conn.executemany(records.INSERT, rows)
            conn.executemany(records.ATTEMPT, attempts)
            records.write_tags(conn, tags)
            return len(rows)

        return self._write(op, bulk=True)

    def update(self, record: ExecutionRecord, *, wait: bool = True) -> None:
        values = records.values(record)
        attempts = records.attempt_values(record)
        tags = records.tag_values(record)
        finishes_claim = bool(record.idempotency_key) and record.status.is_final

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(records.UPSERT, values)
            if len(attempts) == 1:
                conn.execute(records.ATTEMPT, attempts[0])
            elif attempts:
                conn.executemany(records.ATTEMPT, attempts)
            records.write_tags(conn, tags)
            if finishes_claim:  # in the same transaction: claim and record agree
                deliveries.finish(conn, record)

        self._write(op, wait, key=record.id)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        return self._read(lambda c: records.get(c, execution_id))

    def open_runs(self, worker: str | None = None) -> list[ExecutionRecord]:
        return self._read(lambda c: records.open_runs(c, worker))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[SQLiteReader]:
        """One read transaction, so every SELECT inside sees the same rollup watermark."""
        self._check_fork()
        try:
            with self._reads.connection() as conn:
                conn.execute("BEGIN")
                try:
                    yield SQLiteReader(conn)
                finally:
                    conn.execute("ROLLBACK")  # it only read: nothing to commit
        except (sqlite3.Error, WriteFailed) as exc:
            raise StorageError(f"database read failed: {exc}") from exc

    def write(self, fn: Callable[[SQLiteWriter], T]) -> T:
        return self._write(lambda c: fn(SQLiteWriter(c)))

    # -- maintenance -------------------------------------------------------
    def delete_batch(self, cutoff: datetime, limit: int) -> int:
        cutoff_us = to_us(cutoff) or 0
        return self._write(lambda c: maintenance.delete_batch(c, cutoff_us, limit), bulk=True)

    def compact(self, budget_s: float) -> None:
        """Hand freed pages back a few at a time: one big vacuum would hold the write lock
        (and every webhook waiting on it) for seconds. Moving pages is slow (~1,000/s
        under load), so it stops after the budget; then checkpoint the WAL."""
        deadline = time.perf_counter() + budget_s
        while self._write(maintenance.vacuum_step, bulk=True) and time.perf_counter() < deadline:
            pass
        self._checkpoint()

    def _checkpoint(self) -> None:
        """Hand the WAL back to the main file and truncate it (outside any transaction)."""

        def fn(conn: sqlite3.Connection) -> None:
            with self._writer.lock.held():  # it needs the write lock: queue for it
                maintenance.checkpoint(conn)

        try:
            self._read(fn)
        except StorageError as exc:
            log.warning("WAL checkpoint skipped: %s", exc)

    def leader_lock(self, name: str, path: str | None = None) -> FileLeaderLock:
        return FileLeaderLock(Path(path or f"{self.path}.{name}.lock"))

    # -- idempotency -------------------------------------------------------
    def claim_delivery(
        self,
        plugin: str,
        key: str,
        execution_id: str,
        now: datetime,
        window_s: float,
        answer: str = "",
    ) -> DeliveryClaim | None:
        now_us, window_us = to_us(now) or 0, int(window_s * 1_000_000)
        return self._write(
            lambda c: deliveries.claim(c, plugin, key, execution_id, now_us, window_us, answer)
        )

    def take_over_delivery(
        self,
        plugin: str,
        key: str,
        holder: str,
        execution_id: str,
        now: datetime,
        answer: str = "",
    ) -> bool:
        now_us = to_us(now) or 0
        return self._write(
            lambda c: deliveries.take_over(c, plugin, key, holder, execution_id, now_us, answer)
        )

    def release_delivery(self, plugin: str, key: str, execution_id: str) -> None:
        self._write(lambda c: deliveries.release(c, plugin, key, execution_id))

    def mark_replayed(self, execution_id: str, now: datetime) -> None:
        now_us = to_us(now) or 0
        self._write(lambda c: deliveries.mark_replayed(c, execution_id, now_us))

    def purge_deliveries(self, before: datetime) -> int:
        before_us = to_us(before) or 0
        return self._write(lambda c: deliveries.purge(c, before_us))

    # -- the store itself --------------------------------------------------
    def info(self) -> StorageInfo:
        def fn(conn: sqlite3.Connection) -> StorageInfo:
            total, oldest, newest = maintenance.totals(conn)
            return StorageInfo(
                type=self.kind,
                location=str(self.path.resolve()),
                total_records=total,
                oldest_record=from_us(oldest),
                newest_record=from_us(newest),
                size_bytes=maintenance.size_bytes(self.path),
                retention_days=self.retention_days,
                schema_version=schema_version(conn),
                last_cleanup=get_state(conn, LAST_CLEANUP),
                rollup_watermark=from_us((get_state(conn, ROLLUP_WATERMARK) or 0) * 1_000_000),
                open_connections=self._reads.open_count + (1 if self._writer.alive else 0),
                max_connections=self.config.storage.sqlite.max_connections,
                backend=maintenance.file_info(conn),
            )

        return self._read(fn)

    def table_counts(self) -> dict[str, int]:
        return {t: int(n) for t, n in self._read(lambda c: c.execute(COUNT_HISTORY).fetchall())}

    def health(self) -> tuple[bool, str]:
        """Whether the database file is there, records can be read, and the latest
        write was committed; and when the file was last deleted or replaced."""
        if file_identity(self.path) is None:
            return False, (
                f"the database file {self.path} was deleted while running; it is written "
                "again from the open connection at the next write"
            )
        try:
            self._read(lambda c: c.execute("SELECT 1 FROM executions LIMIT 1").fetchall())
        except StorageError as exc:
            return False, str(exc)
        failing = self._writer.failing
        if failing is not None:
            return False, f"database writes are failing: {failing}"
        return True, f"ok (last: {self.file_event})" if self.file_event else "ok"

    def explain(self, sql: str, params: Iterable[Any] = ()) -> list[str]:
        """EXPLAIN QUERY PLAN details, for checking that a query uses an index."""
        return self._read(
            lambda c: [r["detail"] for r in c.execute(f"EXPLAIN QUERY PLAN {sql}", tuple(params))]
        )

    def close(self) -> None:
        self._writer.close()
        self._reads.close()
