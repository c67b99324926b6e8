"""MySQL connections: the connect arguments built from `storage.mysql`, the pool every
store operation borrows from, the write transaction, and errors told in one line
without a password.

Every connection gets the same settings in `connect()` (utf8mb4, UTC, strict SQL mode,
READ COMMITTED, found rows as the affected count), so the pool, the migration
connection and the leader's connection cannot differ.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql
from pymysql.constants import CLIENT

from bridge.config import MySQLConfig, redact_url, resolve_env
from bridge.errors import ConfigError

SCHEMES = ("mysql", "mariadb")
SQL_MODE = "STRICT_TRANS_TABLES,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
# The server ends the leader's session this long after its last ping (the scheduler
# pings every takeover_interval), so a vanished host frees the lock.
LEADER_IDLE_S = 60
IDLE_CHECK_S = 30.0  # a pooled connection idle this long is pinged before use
READ_COMMITTED, REPEATABLE_READ = "READ COMMITTED", "REPEATABLE READ"


def params(my: MySQLConfig, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """Host, port, user, password and database: from `dsn` if set, else the fields."""
    where = "storage.mysql"
    if not my.dsn:
        password = resolve_env(my.password, f"{where}.password", environ) if my.password else ""
        return {
            "host": my.host,
            "port": my.port,
            "user": my.user,
            "password": password,
            "database": my.database,
        }
    dsn = resolve_env(my.dsn, f"{where}.dsn", environ)
    try:
        url = urlsplit(dsn)
        port = url.port or 3306
    except ValueError:
        raise ConfigError(f"{where}.dsn", redact_url(dsn), "not a valid URL") from None
    if url.scheme.lower() not in SCHEMES or not url.path.strip("/") or url.query:
        raise ConfigError(
            f"{where}.dsn", redact_url(dsn), "expected mysql://user[:password]@host[:port]/database"
        )
    return {
        "host": url.hostname or "127.0.0.1",
        "port": port,
        "user": unquote(url.username or "root"),
        "password": unquote(url.password or ""),
        "database": unquote(url.path.strip("/")),
    }


def describe(exc: BaseException, password: str = "") -> str:
    """An error as one line that shows no password."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if password:
        text = text.replace(password, "***")
    return redact_url(text)


def connect(args: Mapping[str, Any], timeout: float, *, leader: bool = False) -> Any:
    """A connection with every session setting, autocommit."""
    conn = pymysql.connect(
        **args,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=max(1, round(timeout)),
        client_flag=CLIENT.FOUND_ROWS,  # UPDATE counts the rows it matched, as elsewhere
    )
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET time_zone = '+00:00', sql_mode = '{SQL_MODE}'")
            cur.execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {READ_COMMITTED}")
            if leader:
                cur.execute(f"SET SESSION wait_timeout = {LEADER_IDLE_S}")
    except BaseException:
        conn.close()
        raise
    return conn


def isolate(conn: Any, level: str) -> None:
    """Set the session's isolation level for the transactions that follow, if it is
    another: a snapshot's REPEATABLE READ stays on its connection for the next snapshot
    (a round trip fewer for each), and a write puts READ COMMITTED back (no gap locks)."""
    if getattr(conn, "bridge_isolation", READ_COMMITTED) != level:
        with conn.cursor() as cur:
            cur.execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {level}")
        conn.bridge_isolation = level


class Pool:
    """At most `size` connections in this process, the idle ones reused newest first.
    A connection that failed is closed rather than returned, and one idle for a while
    is pinged before use: after a server restart the pool opens fresh connections."""

    def __init__(self, args: Mapping[str, Any], size: int, timeout: float) -> None:
        self.args, self.size, self.timeout = dict(args), max(1, size), timeout
        self._slots = threading.BoundedSemaphore(self.size)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        # A server that says no stops start-up.
        self._idle: list[tuple[Any, float]] = [(connect(self.args, timeout), time.monotonic())]
        self.open_count = 1

    def _after_fork(self) -> None:
        """A forked child leaves its parent's connections alone (closing them would end
        the parent's sessions) and opens its own."""
        if os.getpid() != self._pid:
            with self._lock:
                if os.getpid() != self._pid:
                    self._pid, self._idle, self.open_count = os.getpid(), [], 0
                    self._slots = threading.BoundedSemaphore(self.size)

    def _take(self) -> Any:
        while True:
            with self._lock:
                conn, since = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                conn = connect(self.args, self.timeout)
                with self._lock:
                    self.open_count += 1
                return conn
            if time.monotonic() - since < IDLE_CHECK_S:
                return conn
            try:
                conn.ping(reconnect=False)
                return conn
            except pymysql.Error:
                self._discard(conn)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        self._after_fork()
        slots = self._slots
        if not slots.acquire(timeout=self.timeout):
            raise pymysql.OperationalError(
                2013, f"no pooled connection free within {self.timeout:g}s"
            )
        try:
            conn = self._take()
            try:
                yield conn
            except BaseException:
                self._discard(conn)
                raise
            with self._lock:
                self._idle.append((conn, time.monotonic()))
        finally:
            slots.release()

    def _discard(self, conn: Any) -> None:
        with self._lock:
            self.open_count -= 1
        with contextlib.suppress(Exception):
            conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self.open_count -= len(idle)
        for conn, _ in idle:
            with contextlib.suppress(Exception):
                conn.close()


@contextlib.contextmanager
def transaction(conn: Any) -> Iterator[Any]:
    """One write transaction on a pooled connection, yielding its cursor; rolled back
    if the block raises (the pool then closes the connection)."""
    conn.begin()
    with conn.cursor() as cur:
        try:
            yield cur
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
    conn.commit()
