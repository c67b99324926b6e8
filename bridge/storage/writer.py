"""One writer thread per process that commits many requests' writes in one transaction.

Instead of every request thread fighting for SQLite's write lock (and sleeping in its
busy handler), writes queue here; the writer takes all that are waiting, runs each in a
savepoint inside one transaction, commits once, and then wakes each waiting caller.
The writers of several processes (gunicorn workers) take turns through a file lock, so
a waiting writer wakes the moment the lock is free instead of sleeping in SQLite's busy
handler (1, 2, 5, 10 ... 100 ms naps: the cause of a slow tail). SQLite's own locking
still decides; the file lock only orders the writers that use it.
Also a small bounded pool of read connections, each held by one thread at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Op = Callable[[Any], Any]
MAX_BATCH = 256
LINGER_S = 0.002  # longest a batch of writes nobody waits for is held for company


class WriteFailed(Exception):
    """A queued write failed; carries the database's error."""


class _Ticket:
    __slots__ = ("bulk", "done", "error", "key", "op", "result", "wait")

    def __init__(self, op: Op, wait: bool, bulk: bool = False, key: str | None = None) -> None:
        self.op = op
        self.wait = wait
        self.bulk = bulk
        self.key = key
        self.done = threading.Event() if wait else None
        self.error: BaseException | None = None
        self.result: Any = None


class WriteLock:
    """An exclusive lock on a file beside the database, shared by this database's writers
    in every process; a thread in this process waits on a mutex first."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:
            fd = self._file()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int | None:
        if self.path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                self._pid = os.getpid()
            except OSError as exc:
                log.warning("Write lock %s unavailable (%s); SQLite's busy timeout orders "
                            "writers instead", self.path, exc)
                self.path = None
                return None
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None


class GroupCommitWriter:
    """Runs write operations `op(conn)` on its own connection, batched per commit."""

    def __init__(self, connect: Callable[[], Any],
                 on_error: Callable[[str, BaseException], None],
                 lock: WriteLock | None = None) -> None:
        self._connect = connect
        self._on_error = on_error
        self.lock = lock or WriteLock(None)
        self._queue: queue.SimpleQueue[_Ticket | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.batches = 0
        self.writes = 0
        # The error of the latest write if it failed, None once a write succeeds again:
        # health reports a full disk while it lasts, and recovers when space is freed.
        self.failing: BaseException | None = None

    def _ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._closed:
                raise WriteFailed("the store is closed")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="store-writer",
                                                daemon=True)
                self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, op: Op, *, wait: bool, timeout: float = 30.0, bulk: bool = False,
               key: str | None = None) -> Any:
        """Queue `op`; with `wait`, block until it is committed and return its result.

        A `bulk` op (a cleanup batch, say) gets a transaction of its own after the small
        writes queued with it, so a webhook never waits for more than one bulk op.

        Ops with the same `key` write the same row, each whole: when several are in one
        batch, only the last runs (a fast run's `running` row and its final state are
        one insert, not an insert and an update). Ops someone waits for always run."""
        self._ensure_started()
        ticket = _Ticket(op, wait, bulk, key)
        self._queue.put(ticket)
        if not wait:
            return None
        assert ticket.done is not None
        if not ticket.done.wait(timeout):
            raise WriteFailed(f"write not committed within {timeout:g}s")
        if ticket.error is not None:
            raise WriteFailed(str(ticket.error)) from ticket.error
        return ticket.result

    def _loop(self) -> None:
        conn = None
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            stop = False
            linger = True
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    # Nobody waits for these writes (a run's start row): wait a moment for
                    # the write someone does wait for (its end) to share the commit.
                    if not linger or any(t.wait for t in batch):
                        break
                    linger = False
                    try:
                        item = self._queue.get(timeout=LINGER_S)
                    except queue.Empty:
                        break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            batch = _superseded_dropped(batch)
            small = [t for t in batch if not t.bulk]
            groups = ([small] if small else []) + [[t] for t in batch if t.bulk]
            for group in groups:
                conn = self._run(conn, group)
            if stop:
                break
        if conn is not None:
            conn.close()

    def _run(self, conn: Any, batch: list[_Ticket]) -> Any:
        """Commit one group and wake its callers; returns the connection to use next."""
        try:
            if conn is None:
                conn = self._connect()
            self._commit(conn, batch)
        except BaseException as exc:
            for ticket in batch:
                ticket.error = ticket.error or exc
            with contextlib.suppress(Exception):
                if conn is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")
            if conn is not None and not _is_usable(conn):
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
        for ticket in batch:
            self.failing = ticket.error
            if ticket.error is not None and not ticket.wait:
                self._on_error("write a record", ticket.error)
            if ticket.done is not None:
                ticket.done.set()
        return conn

    def _commit(self, conn: Any, batch: list[_Ticket]) -> None:
        """All ops in one transaction. Ops almost never fail, so they first run without a
        savepoint each (every statement costs this thread a GIL hand-off while request
        threads are busy); if one fails, the batch is rolled back and rerun with a
        savepoint per op, so only the failing op loses its write."""
        with self.lock.held():
            conn.execute("BEGIN IMMEDIATE")
            try:
                for ticket in batch:
                    ticket.result = ticket.op(conn)
            except Exception:
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                for ticket in batch:
                    conn.execute("SAVEPOINT op")
                    try:
                        ticket.result = ticket.op(conn)
                    except Exception as exc:
                        ticket.error = exc
                        conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
            conn.execute("COMMIT")
        self.batches += 1
        self.writes += len(batch)

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout)
        self.lock.close()


def _superseded_dropped(batch: list[_Ticket]) -> list[_Ticket]:
    """The batch without the keyed ops that a later op on the same key rewrites whole."""
    last: dict[str, int] = {}
    for i, ticket in enumerate(batch):
        if ticket.key is not None:
            last[ticket.key] = i
    if len(last) == sum(1 for t in batch if t.key is not None):
        return batch
    return [t for i, t in enumerate(batch)
            if t.key is None or t.wait or last[t.key] == i]


def _is_usable(conn: Any) -> bool:
    try:
        conn.execute("SELECT 1")
        return True
    except Exception:
        return False


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
            if conn is not None and not _is_usable(conn):
                with self._lock:
                    self._all.remove(conn)
                conn.close()
                conn = None
            raise
        finally:
            if conn is not None:
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
