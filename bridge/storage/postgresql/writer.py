"""Group commit on PostgreSQL: the run records of concurrent requests in one transaction.

Each webhook's record was a transaction of its own: a pooled connection, a round trip,
and a commit that waits for the WAL flush. With 16 requests in flight, one leader now
sends the records queued meanwhile in one pipelined transaction and one flush
(storage/group_commit.py). A fast run's `running` row and its final row, when they meet
in one batch, are one upsert.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bridge.storage.group_commit import GroupCommitWriter, _Ticket


class PostgreSQLGroupWriter(GroupCommitWriter):
    """Commits on a connection of its own (outside the pool), autocommit between
    transactions."""

    def _commit(self, conn: Any, batch: list[_Ticket]) -> None:
        """Every op in one pipelined transaction. If one fails (a value the server
        refuses), each op is run again in a transaction of its own, so that only the
        failing one loses its write; a lost connection fails them all (raised)."""
        try:
            with conn.pipeline(), conn.transaction():
                for ticket in batch:
                    ticket.result = ticket.op(conn)
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            for ticket in batch:
                try:
                    with conn.pipeline(), conn.transaction():
                        ticket.result = ticket.op(conn)
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    ticket.error = exc
        self.batches += 1
        self.writes += len(batch)
