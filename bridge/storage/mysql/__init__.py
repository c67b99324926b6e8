"""The MySQL/MariaDB backend: the store for a bridge on a server database, or several
bridges sharing one.

PyMySQL (pure Python: installs from PyPI with no system packages; measured against
mysqlclient in bench/RESULTS.md) with a pool of at most `storage.mysql.max_connections`
connections per process (connection.py); run records are group-committed on one more
connection (writer.py): the records of concurrent requests in one transaction and one
log flush. Times are DATETIME(6) in UTC rather than integer microseconds: the same
8 bytes and the same index order, but people who query the history with their own
tools read times. The SQL is in records.py, rollups.py, deliveries.py and
maintenance.py; the schema in migrations.py; the leader lock in locks.py. A password
is never shown: not in an error, a log line or storage info.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pymysql

from bridge.config import Config
from bridge.errors import BridgeError, StorageError
from bridge.model import DeliveryClaim, ExecutionRecord
from bridge.storage.base import LAST_CLEANUP, ROLLUP_WATERMARK, StorageInfo
from bridge.storage.cursors import EPOCH
from bridge.storage.mysql import deliveries, maintenance, records
from bridge.storage.mysql.connection import (
    READ_COMMITTED,
    REPEATABLE_READ,
    Pool,
    connect,
    describe,
    isolate,
    params,
    transaction,
)
from bridge.storage.mysql.locks import GetLockLeaderLock
from bridge.storage.mysql.migrations import lock_name, migrate, schema_version
from bridge.storage.mysql.reader import MySQLReader, MySQLWriter
from bridge.storage.mysql.rollups import get_state
from bridge.storage.mysql.writer import MySQLGroupWriter
from bridge.storage.rows import COUNT_HISTORY
from bridge.storage.server import ServerStore

log = logging.getLogger(__name__)

T = TypeVar("T")


class MySQLStore(ServerStore):
    """The ExecutionStore for MySQL and MariaDB."""

    kind = "mysql"
    records_sql = records
    deliveries_sql = deliveries

    def __init__(self, config: Config, on_error: Callable[[str, BaseException], None]) -> None:
        self.config = config
        self.settings = config.storage.mysql
        self.retention_days = config.retention_days
        self._on_error = on_error  # a failed write nobody waited for
        self._locks: list[GetLockLeaderLock] = []
        self._password = ""
        self.location = "mysql"
        self._timeout = float(self.settings.connect_timeout)
        try:
            self._params = params(self.settings)
        except BridgeError as exc:
            raise StorageError(f"failed to open database: {self._describe(exc)}") from None
        self._password = self._params["password"]
        p = self._params
        host = f"[{p['host']}]" if ":" in p["host"] else p["host"]
        self.location = f"mysql://{p['user']}@{host}:{p['port']}/{p['database']}"
        self._open()

    def _describe(self, exc: BaseException) -> str:
        return describe(exc, self._password)

    def _open(self) -> None:
        """Migrate on a connection of its own, then open the pool."""
        try:
            conn = connect(self._params, self._timeout)
            try:
                self.schema_version = migrate(conn, self._params["database"])
            finally:
                conn.close()
            self._pool = Pool(self._params, self.settings.max_connections, self._timeout)
        except (pymysql.Error, TimeoutError) as exc:
            raise StorageError(
                f"failed to open database {self.location}: {self._describe(exc)}"
            ) from None

    @contextlib.contextmanager
    def _cursor(self, what: str = "read") -> Iterator[Any]:
        """A cursor on a pooled connection; the server's errors become StorageError (503)."""
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except pymysql.Error as exc:
            raise StorageError(f"database {what} failed: {self._describe(exc)}") from None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        try:
            with self._pool.connection() as conn:
                isolate(conn, READ_COMMITTED)
                with transaction(conn) as cur:
                    yield cur
        except pymysql.Error as exc:
            raise StorageError(f"database write failed: {self._describe(exc)}") from None

    def _read(self, fn: Callable[[Any], T]) -> T:
        with self._cursor() as cur:
            return fn(cur)

    def _write(self, fn: Callable[[Any], T]) -> T:
        """One statement, autocommit."""
        with self._cursor("write") as cur:
            isolate(cur.connection, READ_COMMITTED)
            return fn(cur)

    def _make_writer(self, report: Callable[[str, BaseException], None]) -> MySQLGroupWriter:
        return MySQLGroupWriter(lambda: connect(self._params, self._timeout), report)

    # -- runs --------------------------------------------------------------
    def insert_many(self, items: Iterable[ExecutionRecord]) -> int:
        rows, attempts, tags = [], [], []
        for r in items:
            rows.append(records.values(r))
            attempts += records.attempt_values(r, every=True)
            tags += records.tag_values(r)
        with self._transaction() as cur:
            records.write(cur, records.INSERT, rows, attempts, tags)
        return len(rows)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        return self._read(lambda c: records.get(c, execution_id))

    def open_runs(self, worker: str | None = None) -> list[ExecutionRecord]:
        return self._read(lambda c: records.open_runs(c, worker))

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[MySQLReader]:
        """One REPEATABLE READ transaction with a consistent snapshot taken at once:
        every SELECT inside sees the same rows and the same rollup watermark."""
        with self._cursor() as cur:
            isolate(cur.connection, REPEATABLE_READ)
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                yield MySQLReader(cur)
            finally:
                cur.execute("ROLLBACK")  # it only read: nothing to commit

    def write(self, fn: Callable[[MySQLWriter], T]) -> T:
        try:
            with self._transaction() as cur:
                return fn(MySQLWriter(cur))
        except StorageError:
            raise
        except Exception as exc:  # nothing `fn` wrote is kept, whatever it raised
            raise StorageError(f"database write failed: {self._describe(exc)}") from exc

    # -- maintenance -------------------------------------------------------
    def delete_batch(self, cutoff: datetime, limit: int) -> int:
        return self._write(lambda c: maintenance.delete_batch(c, cutoff, limit))

    def compact(self, budget_s: float) -> None:
        self._write(lambda c: maintenance.analyze(c, budget_s))

    def leader_lock(self, name: str, path: str | None = None) -> GetLockLeaderLock:
        """GET_LOCK on a connection of its own (`path` is for backends that lock a file)."""
        lock = GetLockLeaderLock(
            lambda: connect(self._params, self._timeout, leader=True),
            lock_name(f"leader:{name}", self._params["database"]),
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
        with self._transaction() as cur:
            return deliveries.claim(cur, plugin, key, execution_id, now, window_s, answer)

    # -- the store itself --------------------------------------------------
    def info(self) -> StorageInfo:
        def fn(cur: Any) -> StorageInfo:
            total, oldest, newest = maintenance.totals(cur)
            watermark = get_state(cur, ROLLUP_WATERMARK) or 0
            return StorageInfo(
                type=self.kind,
                location=self.location,
                total_records=total,
                oldest_record=oldest,
                newest_record=newest,
                size_bytes=maintenance.size_bytes(cur),
                retention_days=self.retention_days,
                schema_version=schema_version(cur.connection),
                last_cleanup=get_state(cur, LAST_CLEANUP),
                rollup_watermark=EPOCH + timedelta(seconds=watermark),
                open_connections=self._pool.open_count,
                max_connections=self.settings.max_connections,
                backend=maintenance.server_info(cur),
            )

        return self._read(fn)

    def table_counts(self) -> dict[str, int]:
        def fn(cur: Any) -> list[tuple[str, int]]:
            cur.execute(COUNT_HISTORY)
            return list(cur.fetchall())

        return {t: int(n) for t, n in self._read(fn)}

    def health(self) -> tuple[bool, str]:
        """Whether the server answers and the runs can be read."""
        try:
            self._read(lambda c: c.execute("SELECT 1 FROM executions LIMIT 1"))
        except StorageError as exc:
            return False, str(exc)
        return True, "ok"

    def close(self) -> None:
        for lock in self._locks:
            lock.release()
        self._close_writer()
        self._pool.close()
