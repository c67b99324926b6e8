"""The Reader and Writer of the store protocol over one PostgreSQL connection: a
snapshot's REPEATABLE READ transaction, or a write transaction."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg

from bridge.storage.base import FinishedRun
from bridge.storage.postgresql import records, rollups
from bridge.storage.session import Session, WriteSession

_names = itertools.count(1)  # server-side cursors: a name unique in the process


class PostgreSQLReader(Session):
    records_sql = records
    rollups_sql = rollups

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        super().__init__(conn)
        self._cursors: list[psycopg.ServerCursor[Any]] = []

    def close(self) -> None:
        """Close the server-side cursors, before the transaction ends."""
        for cur in self._cursors:
            with contextlib.suppress(psycopg.Error):
                cur.close()
        self._cursors.clear()

    def finished_runs(
        self,
        start: datetime,
        end: datetime | None,
        plugin: str | None = None,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> Iterator[FinishedRun]:
        """Read through a server-side cursor, so a day of runs is not held at once."""
        cur = records.finished_runs(
            self.conn, f"finished_runs_{next(_names)}", start, end, plugin, tags
        )
        self._cursors.append(cur)
        return iter(cur)


class PostgreSQLWriter(WriteSession, PostgreSQLReader):
    pass
