"""What every storage backend stores and the interface it offers.

The SQLite backend (`bridge.storage.sqlite`) is the embedded default; PostgreSQL and
MySQL backends are planned and will be new modules implementing `ExecutionStore`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class Status(str, enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self not in (Status.PENDING, Status.RUNNING)


@dataclass
class AttemptRecord:
    number: int
    start_time: datetime
    end_time: datetime
    status: Status
    error: str = ""
    error_type: str = ""
    duration: int = 0  # nanoseconds


@dataclass
class ExecutionRecord:
    """One run of a plugin, field for field the seed's ExecutionRecord."""

    id: str
    plugin_name: str
    http_method: str
    start_time: datetime
    status: Status
    end_time: datetime | None = None
    input: str = ""
    output: str = ""
    error: str = ""
    error_type: str = ""
    duration: int = 0  # nanoseconds
    attempts: int = 0
    retry_count: int = 0
    trace_id: str = ""
    user_agent: str = ""
    remote_ip: str = ""
    tags: str = "{}"
    metadata: str = "{}"
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Which process runs it ("host:pid"), to close its rows if that process dies.
    worker: str = ""
    # The delivery's Idempotency-Key (or X-GitHub-Delivery, webhook-id), if it sent one,
    # and how many repeated deliveries were answered with this run's result.
    idempotency_key: str = ""
    replays: int = 0
    attempt_records: list[AttemptRecord] = field(default_factory=list)


@dataclass(frozen=True)
class ExecutionFilter:
    plugin: str | None = None
    status: Status | None = None
    error_type: str | None = None
    trace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Page:
    records: list[ExecutionRecord]
    total: int
    total_is_estimate: bool
    next_cursor: str | None


@dataclass(frozen=True)
class DeliveryClaim:
    """Who holds an idempotency key: `execution_id`, claimed `age_s` seconds ago."""

    execution_id: str
    age_s: float


@dataclass(frozen=True)
class CleanupResult:
    deleted: int
    cutoff: datetime
    finished_at: datetime
    duration_ms: float


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

    def close_stale(self, now: datetime, alive: Any, max_age_s: float) -> int: ...

    def close_own(
        self, worker: str, status: Status, error: str, error_type: str, now: datetime
    ) -> int: ...

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
