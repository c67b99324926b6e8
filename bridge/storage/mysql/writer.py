"""Group commit on MySQL/MariaDB: the run records of concurrent requests in one
transaction.

Each webhook's record was a transaction of its own on a pooled connection: a round trip
per statement and a commit that waits for InnoDB's log flush. One leader now writes the
records queued meanwhile in one transaction and one flush (storage/group_commit.py). A
fast run's `running` row and its final row, when they meet in one batch, are one upsert;
a batch's new rows are one multi-row INSERT, and the rows written again, their attempts
and their tags one each (records.write), not a statement or three per run.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pymysql

from bridge.storage.group_commit import GroupCommitWriter
from bridge.storage.mysql import records
from bridge.storage.server import RunWrite, runs_together
from bridge.storage.tickets import Ticket

# Errors of the connection rather than of one statement: the whole batch fails.
_LOST = (pymysql.err.OperationalError, pymysql.err.InterfaceError)


class MySQLGroupWriter(GroupCommitWriter):
    """Commits on a connection of its own (outside the pool)."""

    def usable(self, conn: Any) -> bool:
        try:
            conn.ping(reconnect=False)  # a reconnect would lose the session settings
            return True
        except Exception:
            return False

    def _commit(self, conn: Any, batch: list[Ticket]) -> None:
        """Every op in one transaction. If one fails (a value the server refuses), each
        op is run again in a transaction of its own, so that only the failing one loses
        its write; a lost connection fails them all (raised)."""
        try:
            self._transaction(conn, batch)
        except _LOST:
            raise
        except pymysql.MySQLError:
            for ticket in batch:
                try:
                    self._transaction(conn, [ticket])
                except _LOST:
                    raise
                except pymysql.MySQLError as exc:
                    ticket.error, ticket.refused = exc, True

    @staticmethod
    def _transaction(conn: Any, batch: list[Ticket]) -> None:
        runs, rest = runs_together(batch)
        conn.begin()
        try:
            with conn.cursor() as cur:
                if runs:
                    _write_runs(cur, runs)
                for ticket in rest:
                    ticket.result = ticket.op(cur)
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise
        conn.commit()


def _write_runs(cur: Any, runs: list[RunWrite]) -> None:
    """The new rows, then the rows written again with their attempts, each kind in one
    statement (with their tags), then the claims the runs finish."""
    for upsert in (False, True):
        group = [w.record for w in runs if w.upsert is upsert]
        if group:
            records.write(
                cur,
                records.UPSERT if upsert else records.INSERT,
                [records.values(r) for r in group],
                [a for r in group for a in records.attempt_values(r)] if upsert else (),
                [t for r in group for t in records.tag_values(r)],
            )
    for write in runs:
        write.finish_claim(cur)
