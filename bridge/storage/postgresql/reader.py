"""The Reader and Writer of the store protocol over one PostgreSQL connection: a
snapshot's REPEATABLE READ transaction, or a write transaction."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import psycopg

from bridge.model import ExecutionFilter, ExecutionRecord, Status
from bridge.storage.base import FinishedRun, Grain, Rollup
from bridge.storage.postgresql import records, rollups

_names = itertools.count(1)  # server-side cursors: a name unique in the process


class PostgreSQLReader:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._cursors: list[psycopg.ServerCursor[Any]] = []

    def close(self) -> None:
        """Close the server-side cursors, before the transaction ends."""
        for cur in self._cursors:
            with contextlib.suppress(psycopg.Error):
                cur.close()
        self._cursors.clear()

    def page(
        self, flt: ExecutionFilter, limit: int, offset: int, cursor: str | None
    ) -> tuple[list[ExecutionRecord], str | None]:
        return records.page(self.conn, flt, limit, offset, cursor)

    def count(self, flt: ExecutionFilter, cap: int | None = None) -> int:
        return records.count(self.conn, flt, cap)

    def oldest_start(self, open_only: bool = False) -> datetime | None:
        return records.oldest_start(self.conn, open_only)

    def finished_runs(
        self,
        start: datetime,
        end: datetime | None,
        plugin: str | None = None,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> Iterator[FinishedRun]:
        cur = records.finished_runs(
            self.conn, f"finished_runs_{next(_names)}", start, end, plugin, tags
        )
        self._cursors.append(cur)
        return iter(cur)

    def rollups(
        self, grain: Grain, start: datetime, end: datetime, plugin: str | None = None
    ) -> list[Rollup]:
        return rollups.rollups(self.conn, grain, start, end, plugin)

    def rollup_plugins(self, grain: Grain, start: datetime, end: datetime) -> set[str]:
        return rollups.rollup_plugins(self.conn, grain, start, end)

    def rollup_count(
        self,
        grain: Grain,
        start: datetime,
        end: datetime,
        plugin: str | None = None,
        status: Status | None = None,
        error_type: str | None = None,
    ) -> int:
        return rollups.rollup_count(self.conn, grain, start, end, plugin, status, error_type)

    def state(self, key: str) -> Any:
        return rollups.get_state(self.conn, key)


class PostgreSQLWriter(PostgreSQLReader):
    def put_rollups(self, grain: Grain, items: Iterable[Rollup]) -> None:
        rollups.put_rollups(self.conn, grain, items)

    def delete_rollups(self, grain: Grain, start: datetime, end: datetime) -> None:
        rollups.delete_rollups(self.conn, grain, start, end)

    def set_state(self, key: str, value: Any) -> None:
        rollups.set_state(self.conn, key, value)
