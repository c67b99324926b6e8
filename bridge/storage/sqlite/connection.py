"""SQLite connections: one `connect()` with every setting, the read pool, time encoding.

Times are stored as integer microseconds since the epoch (UTC): compact, and ordered
for the indexes.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bridge.config import Config
from bridge.storage.group_commit import WriteFailed, is_usable

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WAL_BACKSTOP_PAGES = 10_000  # SQLite checkpoints in a commit only past this (~40 MB)
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # bytes of WAL file kept once it restarts


def to_us(value: datetime | None) -> int | None:
    if value is None:
        return None
    return int(value.timestamp() * 1_000_000)


def from_us(value: int | None) -> datetime | None:
    if value is None:
        return None
    return EPOCH + timedelta(microseconds=value)


def connect(path: str | Path, config: Config, create: bool = False) -> sqlite3.Connection:
    """Open a connection with every setting the store relies on. Only with `create`
    may it make the file: a connection opened after the file was deleted must fail, not
    make an empty database that hides the deletion."""
    sq = config.storage.sqlite
    target = str(path) if create else f"file:{quote(str(Path(path).resolve()))}?mode=rw"
    conn = sqlite3.connect(
        target,
        timeout=float(sq.busy_timeout),
        isolation_level=None,
        check_same_thread=False,
        uri=not create,
    )
    conn.row_factory = sqlite3.Row
    try:  # SQLite's math functions are a build option; Python's is the same C log2
        conn.execute("SELECT log2(2)")
    except sqlite3.OperationalError:
        conn.create_function("log2", 1, math.log2, deterministic=True)
    conn.execute(f"PRAGMA busy_timeout = {int(float(sq.busy_timeout) * 1000)}")
    # Takes effect only on a new, empty file, and only before WAL is switched on: lets
    # cleanup hand freed pages back to the OS. Not set on an existing database, where it
    # would do nothing but fail on a full disk.
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    if sq.enable_wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {sq.synchronous.upper()}")
    conn.execute(f"PRAGMA foreign_keys = {'ON' if sq.enable_foreign_keys else 'OFF'}")
    return conn


def tune_for_writing(conn: sqlite3.Connection) -> sqlite3.Connection:
    """The writer's connection settings. The writer's checkpointer thread copies the WAL
    back into the database file; SQLite's automatic checkpoint, run by the commit that
    crosses its threshold while every writer waits, is only the backstop. The WAL file
    is cut back to WAL_SIZE_LIMIT once it restarts after a burst (a cleanup, say)."""
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    return conn


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None if there is none: tells a database
    file deleted or replaced under the open connections."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class ReadPool:
    """At most `size` read connections; each is used by one thread at a time."""

    def __init__(self, connect: Callable[[], Any], size: int) -> None:
        self._connect = connect
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._all: list[Any] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self, timeout: float = 30.0) -> Iterator[Any]:
        if not self._slots.acquire(timeout=timeout):
            raise WriteFailed("no database connection free")
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = self._connect()
                with self._lock:
                    self._all.append(conn)
            yield conn
        except BaseException:
            if conn is not None and not is_usable(conn):
                with self._lock:
                    self._all.remove(conn)
                conn.close()
                conn = None
            raise
        finally:
            if conn is not None:
                with self._lock:
                    stale = conn not in self._all  # reset() while it was in use
                if stale:
                    with contextlib.suppress(Exception):
                        conn.close()
                else:
                    self._idle.put(conn)
            self._slots.release()

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._all)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()

    def reset(self) -> None:
        """Forget every connection (the database file was replaced): idle ones are
        closed now, ones in use when they are given back."""
        with self._lock:
            self._all = []
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            with contextlib.suppress(Exception):
                conn.close()
