"""The Reader and Writer of the store protocol over one MySQL cursor: a snapshot's
REPEATABLE READ transaction, or a write transaction."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from bridge.model import ExecutionFilter, ExecutionRecord, Status
from bridge.storage.base import FinishedRun, Grain, Rollup
from bridge.storage.mysql import records, rollups


class MySQLReader:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def page(
        self, flt: ExecutionFilter, limit: int, offset: int, cursor: str | None
    ) -> tuple[list[ExecutionRecord], str | None]:
        return records.page(self.cur, flt, limit, offset, cursor)

    def count(self, flt: ExecutionFilter, cap: int | None = None) -> int:
        return records.count(self.cur, flt, cap)

    def oldest_start(self, open_only: bool = False) -> datetime | None:
        return records.oldest_start(self.cur, open_only)

    def finished_runs(
        self,
        start: datetime,
        end: datetime | None,
        plugin: str | None = None,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> Iterator[FinishedRun]:
        return records.finished_runs(self.cur, start, end, plugin, tags)

    def rollups(
        self, grain: Grain, start: datetime, end: datetime, plugin: str | None = None
    ) -> list[Rollup]:
        return rollups.rollups(self.cur, grain, start, end, plugin)

    def rollup_plugins(self, grain: Grain, start: datetime, end: datetime) -> set[str]:
        return rollups.rollup_plugins(self.cur, grain, start, end)

    def rollup_count(
        self,
        grain: Grain,
        start: datetime,
        end: datetime,
        plugin: str | None = None,
        status: Status | None = None,
        error_type: str | None = None,
    ) -> int:
        return rollups.rollup_count(self.cur, grain, start, end, plugin, status, error_type)

    def state(self, key: str) -> Any:
        return rollups.get_state(self.cur, key)


class MySQLWriter(MySQLReader):
    def put_rollups(self, grain: Grain, items: Iterable[Rollup]) -> None:
        rollups.put_rollups(self.cur, grain, items)

    def delete_rollups(self, grain: Grain, start: datetime, end: datetime) -> None:
        rollups.delete_rollups(self.cur, grain, start, end)

    def set_state(self, key: str, value: Any) -> None:
        rollups.set_state(self.cur, key, value)
