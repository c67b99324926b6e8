"""SQLite's group-commit writer: a batch is one `BEGIN IMMEDIATE` transaction on the
process's write connection, and a checkpointer thread copies the WAL back into the
database file beside the writers."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from bridge.storage.group_commit import GroupCommitWriter, _started, is_usable
from bridge.storage.tickets import Op, Ticket

log = logging.getLogger(__name__)

CHECKPOINT_EVERY_S = 0.5  # how often the checkpointer looks for commits to copy back


class SQLiteGroupWriter(GroupCommitWriter):
    """With a `checkpoint` op, a checkpointer thread runs it on a connection of its own
    every CHECKPOINT_EVERY_S after commits: copying SQLite's WAL back into the database
    file ends in an fsync, which a commit that ran it (SQLite's automatic checkpoint)
    would make every writer of every process wait for. It runs twice: beside the
    writers, copying nearly all; then holding the write lock, copying the few commits
    made meanwhile, so that the WAL is wholly copied and the next commit starts it over.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        on_error: Callable[[str, BaseException], None],
        lock: Any = None,
        checkpoint: Op | None = None,
        before_commit: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(connect, on_error, lock, before_commit)
        self._checkpoint = checkpoint
        self._checkpointer: threading.Thread | None = None

    def _commit(self, conn: Any, batch: list[Ticket]) -> None:
        """All ops in one transaction. Ops almost never fail, so they first run without a
        savepoint each (every statement costs this thread a GIL hand-off while request
        threads are busy); if one fails, the batch is rolled back and rerun with a
        savepoint per op, so only the failing op loses its write."""
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
        if self._checkpoint is not None and (
            self._checkpointer is None or not self._checkpointer.is_alive()
        ):
            self._checkpointer = _started(self._checkpoint_loop, "store-checkpointer")

    def _threads(self) -> list[threading.Thread | None]:
        return [*super()._threads(), self._checkpointer]

    def _checkpoint_loop(self) -> None:
        """Run the checkpoint op after commits, until close; a failed one is retried at
        the next turn (SQLite's own automatic checkpoint is the backstop)."""
        assert self._checkpoint is not None
        conn, done, generation = None, -1, self.generation
        try:
            while not self._stop.wait(CHECKPOINT_EVERY_S):
                if self.batches == done:
                    continue
                done = self.batches
                if generation != self.generation and conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()  # of a database file that was replaced
                    conn, generation = None, self.generation
                try:
                    conn = conn or self._connect()
                    self._checkpoint(conn)
                    with self.lock.held():
                        self._checkpoint(conn)
                except Exception as exc:  # a full disk, say: the write path reports it
                    log.debug("WAL checkpoint failed: %s", exc)
                    if conn is not None and not is_usable(conn):
                        with contextlib.suppress(Exception):
                            conn.close()
                        conn = None
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
