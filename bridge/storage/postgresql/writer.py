"""Group commit on PostgreSQL: the run records of concurrent requests in one transaction.

Each webhook's record was a transaction of its own: a pooled connection, a round trip
and a commit (with `synchronous_commit: on`, one that waits for the WAL's fsync). With
16 requests in flight, one leader now writes the records queued meanwhile
(storage/group_commit.py) in one statement, WRITE_RUNS: a fast run's `running` row and
its final row, when they meet in one batch, are one upsert, and the batch's rows,
attempts and tags go as JSON arrays. The usual batch, runs of one kind with no tags
and no attempt rows, is a multi-row INSERT instead, run through libpq itself (Runs). A
batch with other writes (the end of an idempotency claim, say) is one pipelined
transaction.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import psycopg
from psycopg import pq
from psycopg.errors import InvalidSqlStatementName, error_from_result
from psycopg.types.json import Jsonb

from bridge.storage.group_commit import GroupCommitWriter
from bridge.storage.postgresql import records
from bridge.storage.rows import COLUMNS
from bridge.storage.server import RunWrite, runs_together
from bridge.storage.tickets import Ticket

_RUN = ", ".join(COLUMNS)
_ATTEMPT = "execution_id, number, start_time, end_time, status, error, error_type, duration"
_TAG = "key, value, start_time, execution_id"


def _rows(table: str, columns: str) -> str:
    """The rows of a JSON array of objects (a parameter), as `table`'s columns."""
    rows = f"json_populate_recordset(NULL::{table}, %s)"
    return f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {rows}"


def _on_conflict(sql: str) -> str:
    return sql[sql.index("ON CONFLICT") :]


# A batch's runs in one statement, whatever their number: new rows, rows written again,
# tags, attempts, each a JSON array (one parameter each). psycopg dumps a string or
# four instead of 25 values a row, the server parses one statement (prepared once per
# shape), and the statement is its own transaction. Foreign keys are checked at its
# end, when the rows the attempts and tags point to are written.
_PARTS = (
    _rows("executions", _RUN),  # new rows
    f"{_rows('executions', _RUN)} {_on_conflict(records.UPSERT)}",  # rows written again
    f"{_rows('execution_tags', _TAG)} ON CONFLICT DO NOTHING",
    f"{_rows('execution_attempts', _ATTEMPT)} {_on_conflict(records.ATTEMPT)}",
)


@functools.cache
def write_runs_sql(present: tuple[bool, bool, bool, bool]) -> str:
    """The statement for the parts a batch has (of _PARTS, in order): the usual batch,
    runs that ended at once with no tags, is one INSERT ... ON CONFLICT from one array
    (server CPU per batch of 3 runs -10%, the bridge's -10%, against all four parts
    with three empty arrays)."""
    *first, last = [sql for sql, there in zip(_PARTS, present, strict=True) if there]
    ctes = ", ".join(f"part{i} AS ({sql})" for i, sql in enumerate(first))
    return f"WITH {ctes} {last}" if ctes else last


def _plain(value: Any) -> Any:
    """What json.dumps cannot write itself: times and jsonb values."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Jsonb):
        return value.obj
    raise TypeError(type(value).__name__)


def _array(columns: str, rows: Iterable[tuple[Any, ...]]) -> str:
    names = columns.split(", ")
    return json.dumps([dict(zip(names, row, strict=True)) for row in rows], default=_plain)


def write_runs(conn: psycopg.Connection[Any], runs: list[RunWrite]) -> None:
    """Many runs, each id once, in one statement (records.values & co. say what each
    column holds, as for one run)."""
    inserted = [w.record for w in runs if not w.upsert]
    upserted = [w.record for w in runs if w.upsert]
    tags = [t for r in (*inserted, *upserted) for t in records.tag_values(r)]
    attempts = [a for r in upserted for a in records.attempt_values(r)]
    parts = (
        (_RUN, list(map(records.values, inserted))),
        (_RUN, list(map(records.values, upserted))),
        (_TAG, tags),
        (_ATTEMPT, attempts),
    )
    present = tuple(bool(rows) for _, rows in parts)
    if any(present):
        conn.execute(
            write_runs_sql(present),
            [_array(columns, rows) for columns, rows in parts if rows],
        )


# At most this many runs go as one multi-row INSERT (a statement prepared per size);
# a bigger batch is one WRITE_RUNS.
MULTIROW_MAX = 32


@functools.lru_cache(maxsize=256)
def _time(value: datetime | None) -> bytes | None:
    """A time as text; cached, as a run's row holds each of its times twice (created_at
    is its start, updated_at its end)."""
    return None if value is None else value.isoformat().encode()


def _integer(value: int) -> bytes:
    return b"%d" % value


def _jsonb(value: Jsonb | None) -> bytes | None:
    if value is None:
        return None
    return b"{}" if value is records.EMPTY_OBJECT else json.dumps(value.obj).encode()


# How each value of records.values goes as a text parameter, which its column reads
# (the columns not named here are text, encoded by str.encode itself: text() left no
# lone surrogate in them).
_NOT_TEXT = {
    **dict.fromkeys(("start_time", "end_time", "created_at", "updated_at"), _time),
    **dict.fromkeys(("duration", "attempts", "retry_count", "retry_time"), _integer),
    **dict.fromkeys(("tags", "metadata"), _jsonb),
}
_PARAMS = tuple(_NOT_TEXT.get(c, str.encode) for c in COLUMNS)


@functools.cache
def multirow_sql(upsert: bool, size: int) -> bytes:
    """`size` runs' rows (new, or written again when `upsert`) in one INSERT."""
    width = len(COLUMNS)
    rows = ", ".join(
        "(" + ", ".join(f"${i * width + j}" for j in range(1, width + 1)) + ")" for i in range(size)
    )
    sql = f"INSERT INTO executions ({_RUN}) VALUES {rows}"
    return (f"{sql} {_on_conflict(records.UPSERT)}" if upsert else sql).encode()


class Runs:
    """The usual batch, runs of one kind with no tags and no attempt rows (most often
    the final rows of runs that succeeded at once, each its run's only write), as a
    multi-row INSERT. Its statement is prepared once per kind and size on the
    connection, and run by libpq with the values as text. Against WRITE_RUNS's JSON
    array, in a loop of batches of 3 runs, the server's CPU per batch was a quarter
    lower (no JSON to parse) and the bridge's 35-50% lower (no JSON to write, none of
    psycopg's own work per statement); under the benchmark's load, the server's CPU
    per tracked request was 7-25% lower, and the bridge's changed within the noise."""

    def __init__(self) -> None:
        self._conn: psycopg.Connection[Any] | None = None
        self._prepared: set[bytes] = set()  # on self._conn

    @staticmethod
    def usual(runs: list[RunWrite]) -> bool:
        upsert = runs[0].upsert
        return len(runs) <= MULTIROW_MAX and all(
            w.upsert is upsert
            and not records.tag_values(w.record)
            and not (upsert and records.attempt_values(w.record))
            for w in runs
        )

    def write(self, conn: psycopg.Connection[Any], runs: list[RunWrite]) -> None:
        """Write a usual batch (autocommit, outside a pipeline)."""
        if conn is not self._conn:
            self._conn, self._prepared = conn, set()
        sql = multirow_sql(runs[0].upsert, len(runs))
        name = b"bridge_runs_%d_%d" % (runs[0].upsert, len(runs))
        params = [
            f(v) for w in runs for f, v in zip(_PARAMS, records.values(w.record), strict=True)
        ]
        try:
            self._run(conn, name, sql, params)
        except InvalidSqlStatementName:  # deallocated by someone else (DISCARD ALL)
            self._prepared.clear()
            self._run(conn, name, sql, params)

    def _run(
        self, conn: psycopg.Connection[Any], name: bytes, sql: bytes, params: list[Any]
    ) -> None:
        pgconn = conn.pgconn
        if name not in self._prepared:
            _check(pgconn, pgconn.prepare(name, sql))
            self._prepared.add(name)
        _check(pgconn, pgconn.exec_prepared(name, params))


def _check(pgconn: pq.abc.PGconn, result: pq.abc.PGresult) -> None:
    """Raise the error a statement's result holds, as psycopg would: OperationalError
    for a lost connection."""
    if result.status == pq.ExecStatus.COMMAND_OK:
        return
    if pgconn.status == pq.ConnStatus.BAD:
        message = (result.error_message or pgconn.error_message).decode(errors="replace")
        raise psycopg.OperationalError(message.strip() or "the connection was lost")
    raise error_from_result(result)


class PostgreSQLGroupWriter(GroupCommitWriter):
    """Commits on a connection of its own (outside the pool), autocommit between
    transactions."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._runs = Runs()

    def _commit(self, conn: Any, batch: list[Ticket]) -> None:
        """A batch of runs only: one statement. Else every op in one pipelined
        transaction. If one fails (a value the server refuses), each op is run again
        in a transaction of its own, so that only the failing one loses its write; a
        lost connection fails them all (raised)."""
        runs, rest = runs_together(batch)
        try:
            if runs and not rest and not any(w.finishes_claim for w in runs):
                if Runs.usual(runs):
                    self._runs.write(conn, runs)
                else:
                    write_runs(conn, runs)
            else:
                with conn.pipeline(), conn.transaction():
                    if runs:
                        write_runs(conn, runs)
                        for write in runs:
                            write.finish_claim(conn)
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
                    ticket.error, ticket.refused = exc, True
