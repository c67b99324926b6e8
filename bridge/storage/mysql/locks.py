"""The scheduler's leader lock: `GET_LOCK(name, 0)`, held on a connection of its own
for as long as the lock is held. The server frees it when that session ends, however
it ends: released, the process killed, the session killed, or the host gone (the
session's wait_timeout ends it a minute after its last ping, see connection.py)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import pymysql

log = logging.getLogger(__name__)


class GetLockLeaderLock:
    """ExecutionStore.leader_lock for MySQL. Taken without waiting; asked again while
    held, it checks that its session is still alive, and if the session died (and the
    server freed the lock) it tries to take the lock anew."""

    def __init__(
        self, connect: Callable[[], Any], name: str, describe: Callable[[BaseException], str]
    ) -> None:
        self.name = name
        self._connect = connect
        self._describe = describe
        self._conn: Any = None
        self._mutex = threading.Lock()

    def try_acquire(self) -> bool:
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.ping(reconnect=False)
                    return True
                except pymysql.Error:
                    log.warning("The leader lock's connection was lost; trying to take it again")
                    self._drop()
            conn = None
            try:
                conn = self._connect()
                with conn.cursor() as cur:
                    cur.execute("SELECT GET_LOCK(%s, 0)", (self.name,))
                    row = cur.fetchone()
            except pymysql.Error as exc:
                log.warning("Leader lock not taken: %s", self._describe(exc))
                row = None
            self._conn = conn
            if not (row and row[0] == 1):
                self._drop()
                return False
            return True

    @property
    def connection_id(self) -> int | None:
        """The server's id of the session holding the lock (None if not held)."""
        return self._conn.thread_id() if self._conn is not None else None

    def release(self) -> None:
        with self._mutex:
            if self._conn is None:
                return
            with contextlib.suppress(pymysql.Error), self._conn.cursor() as cur:
                cur.execute("SELECT RELEASE_LOCK(%s)", (self.name,))
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None
