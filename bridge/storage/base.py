"""What every storage backend stores and the interface it offers.

The SQLite backend (`bridge.storage.sqlite`) is the embedded default; PostgreSQL and
MySQL backends are planned and will be new modules implementing `ExecutionStore`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from bridge.model import (
    CleanupResult,
    DeliveryClaim,
    ExecutionFilter,
    ExecutionRecord,
    Page,
)


class ExecutionStore(Protocol):
    """The store interface the tracker, API and scheduler use; SQL stays in backends."""

    kind: str

    def insert(self, record: ExecutionRecord, *, wait: bool = False) -> None: ...

    def update(self, record: ExecutionRecord, *, wait: bool = True) -> None: ...

    def get(self, execution_id: str) -> ExecutionRecord | None: ...

    def list(self, flt: ExecutionFilter, limit: int, offset: int, cursor: str | None) -> Page: ...

    def stats(self, days: int, plugin: str | None, now: datetime) -> dict[str, Any]: ...

    def cleanup(self, older_than_days: int, now: datetime) -> CleanupResult: ...

    def rollup(self, now: datetime) -> int: ...

    def open_runs(self, worker: str | None = None) -> list[ExecutionRecord]:
        """Runs still `running` or `pending`, of one worker ("host:pid") or of all."""
        ...

    def claim_delivery(
        self, plugin: str, key: str, execution_id: str, now: datetime, window_s: float
    ) -> DeliveryClaim | None:
        """Claim (plugin, key) for `execution_id`; None when claimed, else the holder."""
        ...

    def take_over_delivery(
        self, plugin: str, key: str, holder: str, execution_id: str, now: datetime
    ) -> bool:
        """Move the key from `holder` (a failed or lost run) to `execution_id`, once."""
        ...

    def release_delivery(self, plugin: str, key: str, execution_id: str) -> None: ...

    def mark_replayed(self, execution_id: str, now: datetime) -> None: ...

    def purge_deliveries(self, before: datetime) -> int: ...

    def info(self) -> dict[str, Any]: ...

    def health(self) -> tuple[bool, str]: ...

    def close(self) -> None: ...
