"""Group commit on PostgreSQL: the run records of concurrent requests in one transaction.

Each webhook's record was a transaction of its own: a pooled connection, a round trip
and a commit (with `synchronous_commit: on`, one that waits for the WAL's fsync). With
16 requests in flight, one leader now sends the records queued meanwhile in one
pipelined transaction (storage/group_commit.py). A fast run's `running` row and its
final row, when they meet in one batch, are one upsert; a batch's runs are written by
one executemany for the new rows, one for the rows written again and one for their
attempts (records.write_runs), not a statement or two each.
"""

from __future__ import annotations

from typing import Any

import psycopg

from bridge.storage.group_commit import GroupCommitWriter, _Ticket
from bridge.storage.postgresql import records
from bridge.storage.server import RunWrite


class PostgreSQLGroupWriter(GroupCommitWriter):
    """Commits on a connection of its own (outside the pool), autocommit between
    transactions."""

    def _commit(self, conn: Any, batch: list[_Ticket]) -> None:
        """Every op in one pipelined transaction. If one fails (a value the server
        refuses), each op is run again in a transaction of its own, so that only the
        failing one loses its write; a lost connection fails them all (raised)."""
        try:
            with conn.pipeline(), conn.transaction():
                rest = _runs_together(conn, batch)
                for ticket in rest:
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


def _runs_together(conn: Any, batch: list[_Ticket]) -> list[_Ticket]:
    """Writes the batch's runs in one statement per kind when there are several, each
    run once; returns the tickets still to run one by one."""
    runs = [t.op for t in batch if isinstance(t.op, RunWrite)]
    if len(runs) < 2 or len({w.record.id for w in runs}) < len(runs):
        return batch
    records.write_runs(
        conn,
        [w.record for w in runs if not w.upsert],
        [w.record for w in runs if w.upsert],
    )
    for write in runs:
        write.finish_claim(conn)
    return [t for t in batch if not isinstance(t.op, RunWrite)]
