"""The protocol's Reader and Writer over one backend connection (or cursor), written
once: each call goes to the function of the same name in the backend's records or
rollups module, with the connection first. A backend names its two modules in a
subclass and overrides what it does differently."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from types import ModuleType
from typing import Any, ClassVar

from bridge.model import ExecutionFilter, ExecutionRecord, Status
from bridge.storage.base import KEPT_STATES, ErrorHour, Failure, Grain, Rollup, RunGroup, Span


class Session:
    """A `Reader`: reads on one snapshot of the store."""

    records_sql: ClassVar[ModuleType]  # the backend's records module
    rollups_sql: ClassVar[ModuleType]  # the backend's rollups module

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._kept: dict[str, Any] | None = None  # KEPT_STATES, once read

    def page(
        self, flt: ExecutionFilter, limit: int, offset: int, cursor: str | None
    ) -> tuple[list[ExecutionRecord], str | None]:
        return self.records_sql.page(self.conn, flt, limit, offset, cursor)

    def count(self, flt: ExecutionFilter, cap: int | None = None) -> int:
        return self.records_sql.count(self.conn, flt, cap)

    def oldest_start(self, open_only: bool = False) -> datetime | None:
        return self.records_sql.oldest_start(self.conn, open_only)

    def run_groups(
        self,
        start: datetime,
        end: datetime | None,
        step: timedelta,
        plugin: str | None = None,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> list[RunGroup]:
        return self.records_sql.run_groups(self.conn, start, end, step, plugin, tags)

    def rollups(
        self, grain: Grain, start: datetime, end: datetime, plugin: str | None = None
    ) -> list[Rollup]:
        return self.rollups_sql.rollups(self.conn, grain, start, end, plugin)

    def rollup_plugins(self, grain: Grain, start: datetime, end: datetime) -> set[str]:
        return self.rollups_sql.rollup_plugins(self.conn, grain, start, end)

    def rollup_count(
        self, spans: Iterable[Span], status: Status | None = None, error_type: str | None = None
    ) -> int:
        spans = list(spans)
        return self.rollups_sql.rollup_count(self.conn, spans, status, error_type) if spans else 0

    def state(self, key: str) -> Any:
        """The snapshot cannot see them change, and the estimate, stats and series
        each read two or three of them: one round trip instead."""
        if key not in KEPT_STATES:
            return self.rollups_sql.get_state(self.conn, key)
        if self._kept is None:
            self._kept = self.rollups_sql.get_states(self.conn, KEPT_STATES)
        return self._kept.get(key)

    def states(self, prefix: str) -> dict[str, Any]:
        return self.rollups_sql.states(self.conn, prefix)

    def failures(self, start: datetime, end: datetime) -> Iterator[Failure]:
        return self.records_sql.failures(self.conn, start, end)

    def error_hours(
        self, start: datetime, end: datetime, plugin: str | None = None, grain: Grain = "hour"
    ) -> list[ErrorHour]:
        return self.rollups_sql.error_hours(self.conn, start, end, plugin, grain)

    def first_seen(self, fingerprints: Iterable[str]) -> dict[str, datetime]:
        return self.rollups_sql.first_seen(self.conn, list(fingerprints))


class WriteSession(Session):
    """A `Writer`: reads and writes in one transaction."""

    def put_rollups(self, grain: Grain, items: Iterable[Rollup]) -> None:
        self.rollups_sql.put_rollups(self.conn, grain, items)

    def delete_rollups(self, grain: Grain, start: datetime, end: datetime) -> None:
        self.rollups_sql.delete_rollups(self.conn, grain, start, end)

    def state(self, key: str) -> Any:
        return self.rollups_sql.get_state(self.conn, key)  # it may have set it since

    def set_state(self, key: str, value: Any) -> None:
        self.rollups_sql.set_state(self.conn, key, value)

    def delete_state(self, key: str) -> None:
        self.rollups_sql.delete_state(self.conn, key)

    def put_error_hours(self, items: Iterable[ErrorHour]) -> None:
        self.rollups_sql.put_error_hours(self.conn, list(items))
