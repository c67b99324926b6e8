"""The PostgreSQL backend: the store for a bridge on a server database, or several
bridges sharing one.

psycopg 3 with a pool of at most `storage.postgresql.max_connections` connections per
process for reads and maintenance (connection.py). Run records are group-committed
on one more connection (writer.py): the records of concurrent requests go in one
transaction instead of one each, committed without waiting for the WAL's fsync unless
`synchronous_commit` says otherwise.
Times are `timestamptz` in UTC rather than integer microseconds: the server stores both
as the same 64-bit microseconds, so indexes and sizes are alike, but people who query
the history with their own tools read times. The SQL is in records.py, rollups.py,
deliveries.py and maintenance.py; the schema in migrations.py; the leader lock in
locks.py. A password is never shown: not in an error, a log line or storage info.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from bridge.config import Config
from bridge.errors import BridgeError, StorageError
from bridge.model import DeliveryClaim, ExecutionRecord
from bridge.storage.base import LAST_CLEANUP, ROLLUP_WATERMARK, StorageInfo
from bridge.storage.cursors import EPOCH
from bridge.storage.postgresql import deliveries, maintenance, records
from bridge.storage.postgresql.connection import (
    connect,
    conninfo,
    describe,
    open_pool,
    password_of,
    transaction,
)
from bridge.storage.postgresql.locks import AdvisoryLeaderLock
from bridge.storage.postgresql.migrations import lock_key, migrate, schema_version
from bridge.storage.postgresql.reader import PostgreSQLReader, PostgreSQLWriter
from bridge.storage.postgresql.rollups import get_state
from bridge.storage.postgresql.writer import PostgreSQLGroupWriter
from bridge.storage.rows import COUNT_HISTORY
from bridge.storage.server import ServerStore

log = logging.getLogger(__name__)

T = TypeVar("T")


class PostgreSQLStore(ServerStore):
    """The ExecutionStore for PostgreSQL."""

    kind = "postgresql"
    records_sql = records
    deliveries_sql = deliveries

    def __init__(self, config: Config, on_error: Callable[[str, BaseException], None]) -> None:
        self.config = config
        self.settings = config.storage.postgresql
        self.retention_days = config.retention_days
        self._on_error = on_error  # a failed write nobody waited for
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._locks: list[AdvisoryLeaderLock] = []
        self._password = ""
        self.location = "postgresql"
        try:
            self._conninfo = conninfo(self.settings)
            self._password = password_of(self._conninfo)
            params = conninfo_to_dict(self._conninfo)
        except (psycopg.Error, BridgeError) as exc:
            raise StorageError(f"failed to open database: {self._describe(exc)}") from None
        self.location = _location(
            params.get("user"), params.get("host"), params.get("port"), params.get("dbname")
        )
        self._open()

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, self._password)

    def _open(self) -> None:
        """Migrate on a connection of its own, then open the pool."""
        try:
            with connect(self._conninfo) as conn:
                row = conn.execute("SELECT current_schema()").fetchone()
                if row is None or row[0] is None:
                    raise StorageError(
                        f"failed to open database {self.location}: no schema of the "
                        "search_path exists to create the tables in"
                    )
                self.schema: str = row[0]
                info = conn.info
                self.location = _location(info.user, info.host, info.port, info.dbname)
                self.schema_version = migrate(conn, self.schema)
            self._pool = open_pool(
                self._conninfo, self.settings.max_connections, float(self.settings.connect_timeout)
            )
        except psycopg.Error as exc:
            raise StorageError(
                f"failed to open database {self.location}: {self._describe(exc)}"
            ) from None

    def _check_fork(self) -> None:
        """A forked child opens a pool of its own; the parent's connections are left
        alone (closing them here would end the parent's sessions)."""
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self._pid = os.getpid()
                    self._forked_from = self._pool
                    self._pool = open_pool(
                        self._conninfo,
                        self.settings.max_connections,
                        float(self.settings.connect_timeout),
                    )

    @contextlib.contextmanager
    def _connection(self, what: str = "read") -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; the server's errors become StorageError (503)."""
        self._check_fork()
        try:
            with self._pool.connection() as conn:
                yield conn
        except psycopg.Error as exc:
            raise StorageError(f"database {what} failed: {self._describe(exc)}") from None

    def _read(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self._connection() as conn:
            return fn(conn)

    def _write(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """One statement (or several that need no common transaction), autocommit."""
        with self._connection("write") as conn:
            return fn(conn)

    def _make_writer(self, report: Callable[[str, BaseException], None]) -> PostgreSQLGroupWriter:
        commit = self.settings.synchronous_commit
        return PostgreSQLGroupWriter(
            lambda: connect(self._conninfo, synchronous_commit=commit), report
        )

    # -- runs --------------------------------------------------------------
    def insert_many(self, items: Iterable[ExecutionRecord]) -> int:
        rows, attempts, tags = [], [], []
        for r in items:
            rows.append(records.values(r))
            attempts += records.attempt_values(r, every=True)
            tags += records.tag_values(r)
        with self._connection("write") as conn, transaction(conn):
            records.write(conn, records.INSERT, rows, attempts, tags)
        return len(rows)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        return self._read(lambda c: records.get(c, execution_id))

    def open_runs(self, worker: str | None = None) -> list[ExecutionRecord]:
        return self._read(lambda c: records.open_runs(c, worker))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[PostgreSQLReader]:
        """One REPEATABLE READ transaction: every SELECT inside sees the same rows and
        the same rollup watermark."""
        with self._connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            try:
                yield PostgreSQLReader(conn)
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")  # it only read: nothing to commit

    def write(self, fn: Callable[[PostgreSQLWriter], T]) -> T:
        try:
            with self._connection("write") as conn, transaction(conn):
                return fn(PostgreSQLWriter(conn))
        except StorageError:
            raise
        except Exception as exc:  # nothing `fn` wrote is kept, whatever it raised
            raise StorageError(f"database write failed: {self._describe(exc)}") from exc

    # -- maintenance -------------------------------------------------------
    def delete_batch(self, cutoff: datetime, limit: int) -> int:
        return self._write(lambda c: maintenance.delete_batch(c, cutoff, limit))

    def compact(self, budget_s: float) -> None:
        self._write(lambda c: maintenance.vacuum(c, budget_s))

    def leader_lock(self, name: str, path: str | None = None) -> AdvisoryLeaderLock:
        """A session-level advisory lock on a connection of its own (`path` is for
        backends that lock a file)."""
        lock = AdvisoryLeaderLock(
            lambda: connect(self._conninfo, keepalive=True),
            lock_key(f"leader:{name}", self.schema),
            self._describe,
        )
        self._locks.append(lock)
        return lock

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
        return self._write(
            lambda c: deliveries.claim(c, plugin, key, execution_id, now, window_s, answer)
        )

    # -- the store itself --------------------------------------------------
    def info(self) -> StorageInfo:
        def fn(conn: psycopg.Connection[Any]) -> StorageInfo:
            total, oldest, newest = maintenance.totals(conn)
            watermark = get_state(conn, ROLLUP_WATERMARK) or 0
            return StorageInfo(
                type=self.kind,
                location=self.location,
                total_records=total,
                oldest_record=oldest,
                newest_record=newest,
                size_bytes=maintenance.size_bytes(conn),
                retention_days=self.retention_days,
                schema_version=schema_version(conn),
                last_cleanup=get_state(conn, LAST_CLEANUP),
                rollup_watermark=EPOCH + timedelta(seconds=watermark),
                open_connections=int(self._pool.get_stats().get("pool_size", 0)),
                max_connections=self.settings.max_connections,
                backend=maintenance.server_info(conn),
            )

        return self._read(fn)

    def table_counts(self) -> dict[str, int]:
        return {t: int(n) for t, n in self._read(lambda c: c.execute(COUNT_HISTORY).fetchall())}

    def health(self) -> tuple[bool, str]:
        """Whether the server answers and the runs can be read."""
        try:
            self._read(lambda c: c.execute("SELECT 1 FROM executions LIMIT 1").fetchall())
        except StorageError as exc:
            return False, str(exc)
        return True, "ok"

    def close(self) -> None:
        for lock in self._locks:
            lock.release()
        self._close_writer()
        self._pool.close()


def _location(user: Any, host: Any, port: Any, dbname: Any) -> str:
    """Where the store is, as storage info shows it: a URL without the password."""
    host = str(host or "localhost")
    if ":" in host and not host.startswith("/"):
        host = f"[{host}]"
    return f"postgresql://{user or ''}{'@' if user else ''}{host}:{port or 5432}/{dbname or ''}"
