"""One writer thread per process that commits many requests' writes in one transaction.

Instead of every request thread fighting for SQLite's write lock (and sleeping in its
busy handler), writes queue here; the writer takes all that are waiting, runs each in a
savepoint inside one transaction, commits once, and then wakes each waiting caller.
Also a small bounded pool of read connections, each held by one thread at a time.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

Op = Callable[[Any], Any]
MAX_BATCH = 256


class WriteFailed(Exception):
    """A queued write failed; carries the database's error."""


class _Ticket:
    __slots__ = ("done", "error", "op", "result", "wait")

    def __init__(self, op: Op, wait: bool) -> None:
        self.op = op
        self.wait = wait
        self.done = threading.Event() if wait else None
        self.error: BaseException | None = None
        self.result: Any = None


class GroupCommitWriter:
    """Runs write operations `op(conn)` on its own connection, batched per commit."""

    def __init__(self, connect: Callable[[], Any],
                 on_error: Callable[[str, BaseException], None]) -> None:
        self._connect = connect
        self._on_error = on_error
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

    def submit(self, op: Op, *, wait: bool, timeout: float = 30.0) -> Any:
        """Queue `op`; with `wait`, block until it is committed and return its result."""
        self._ensure_started()
        ticket = _Ticket(op, wait)
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
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
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
            if stop:
                break
        if conn is not None:
            conn.close()

    def _commit(self, conn: Any, batch: list[_Ticket]) -> None:
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
