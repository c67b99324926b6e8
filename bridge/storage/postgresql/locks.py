"""The scheduler's leader lock: a session-level advisory lock, held on a connection of
its own for as long as the lock is held. The server frees it when that session ends,
however it ends: released, the process killed, the host gone (TCP keepalive, see
connection.py), the backend terminated."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

log = logging.getLogger(__name__)


class AdvisoryLeaderLock:
    """ExecutionStore.leader_lock for PostgreSQL. Taken without waiting; asked again
    while held, it checks that its session is still alive, and if the session died
    (and the server freed the lock) it tries to take the lock anew."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection[Any]],
        key: str,
        describe: Callable[[BaseException], str],
    ) -> None:
        self.key = key
        self._connect = connect
        self._describe = describe
        self._conn: psycopg.Connection[Any] | None = None
        self._mutex = threading.Lock()

    def try_acquire(self) -> bool:
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.execute("SELECT 1")
                    return True
                except psycopg.Error:
                    log.warning("The leader lock's connection was lost; trying to take it again")
                    self._drop()
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                log.warning("Leader lock not taken: %s", self._describe(exc))
                return False
            try:
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (self.key,)
                ).fetchone()
            except psycopg.Error as exc:
                log.warning("Leader lock not taken: %s", self._describe(exc))
                conn.close()
                return False
            if not (row and row[0]):
                conn.close()
                return False
            self._conn = conn
            return True

    @property
    def backend_pid(self) -> int | None:
        """The server process of the session holding the lock (None if not held)."""
        return self._conn.info.backend_pid if self._conn is not None else None

    def release(self) -> None:
        with self._mutex:
            if self._conn is None:
                return
            with contextlib.suppress(psycopg.Error):
                self._conn.execute(
                    "SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self.key,)
                )
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None
