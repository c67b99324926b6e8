"""The interface every storage backend implements: storage primitives, no algorithms.

Stats, estimates, rollup planning and cleanup are written once above it (stats.py,
rollup.py, cleanup.py), as APScheduler keeps its scheduling logic above its job
stores. The SQLite backend (`bridge.storage.sqlite`) is the embedded default; a
PostgreSQL or MySQL backend is a new package implementing `ExecutionStore` and passing
the contract tests in tests/storage/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, Protocol, TypeVar

from bridge.model import DeliveryClaim, ExecutionFilter, ExecutionRecord, Status
from bridge.storage.rollups import Aggregate

T = TypeVar("T")

Grain = Literal["hour", "day"]
HOUR: Grain = "hour"
DAY: Grain = "day"

# The state the algorithms keep (Reader.state, Writer.set_state); storage info shows
# the last two. Watermarks are whole seconds since the epoch.
DAILY_WATERMARK = "daily_watermark"  # days merged from hourly rollups up to here
ROLLUP_WATERMARK = "rollup_watermark"  # finished runs before it are rolled up
LAST_CLEANUP = "last_cleanup"  # the latest cleanup's figures
KEPT_STATES = (DAILY_WATERMARK, ROLLUP_WATERMARK, LAST_CLEANUP)


class Span(NamedTuple):
    """The rollups of one grain in [start, end), of one plugin name or every one."""

    grain: Grain
    start: datetime
    end: datetime
    plugin: str | None = None


class RunGroup(NamedTuple):
    """Finished runs alike in plugin, time slot, status, error type and duration bucket,
    summed by the database: what an Aggregate needs of them (Aggregate.add_group). A
    busy hour's million runs come as a few hundred of these."""

    plugin: str
    slot: datetime  # the start of their slot: slots of `step` follow each other from the epoch
    status: str
    error_type: str
    bucket: int  # rollups.bucket_of of each run's duration
    runs: int
    duration_sum: int  # nanoseconds
    duration_min: int
    duration_max: int
    retried: int  # runs that needed more than one attempt
    retry_time: int  # nanoseconds after their first attempts, summed
    last_start: datetime  # the latest start among them


class Failure(NamedTuple):
    """What an error group's rollup keeps of a failed run."""

    id: str
    plugin: str
    start: datetime
    error_type: str
    error_group: str
    error: str


@dataclass
class ErrorHour:
    """One error group's failures that started in one hour."""

    fingerprint: str
    hour: datetime
    plugin: str
    error_type: str
    message: str
    count: int
    first_seen: datetime
    last_seen: datetime
    example_id: str


class Rollup(NamedTuple):
    """The aggregate of one plugin's finished runs that started in one hour or day."""

    plugin: str
    start: datetime
    aggregate: Aggregate


@dataclass(frozen=True)
class StorageInfo:
    """What GET /api/v1/executions/storage/info shows: what every backend knows, and in
    `backend` what only this one does (for SQLite, a `SQLiteInfo`)."""

    type: str
    location: str
    total_records: int
    oldest_record: datetime | None
    newest_record: datetime | None
    size_bytes: int
    retention_days: int
    schema_version: int
    last_cleanup: dict[str, Any] | None
    rollup_watermark: datetime | None  # the epoch until the first rollup
    open_connections: int
    max_connections: int
    backend: Any = None


class Reader(Protocol):
    """Reads that see one consistent state of the store (`ExecutionStore.snapshot`)."""

    def page(
        self, flt: ExecutionFilter, limit: int, offset: int, cursor: str | None
    ) -> tuple[list[ExecutionRecord], str | None]:
        """Matching runs newest first (without attempts), and the cursor of the next page
        if there is one. A `cursor` (made by this backend) replaces `offset`; one it did
        not make raises InvalidCursor."""
        ...

    def count(self, flt: ExecutionFilter, cap: int | None = None) -> int:
        """How many runs match, counting no further than `cap`."""
        ...

    def oldest_start(self, open_only: bool = False) -> datetime | None:
        """The start of the oldest run (of the oldest open run), if any."""
        ...

    def run_groups(
        self,
        start: datetime,
        end: datetime | None,
        step: timedelta,
        plugin: str | None = None,
        tags: tuple[tuple[str, str], ...] = (),
    ) -> list[RunGroup]:
        """The finished runs that started in [start, end) (end None: no bound), of one
        plugin or all, carrying every tag in `tags`, grouped by plugin, slot (`step` long,
        whole seconds, from the epoch), status, error type and duration bucket, in any
        order."""
        ...

    def rollups(
        self, grain: Grain, start: datetime, end: datetime, plugin: str | None = None
    ) -> list[Rollup]:
        """The stored rollups of [start, end), of one plugin name or every one."""
        ...

    def rollup_plugins(self, grain: Grain, start: datetime, end: datetime) -> set[str]:
        """The plugin names that have rollups in [start, end)."""
        ...

    def rollup_count(
        self, spans: Iterable[Span], status: Status | None = None, error_type: str | None = None
    ) -> int:
        """Runs counted in the rollups of the spans, together (one round trip): with
        `error_type` if given, else of `status` (every finished run if None). Sums
        counters only: cheaper than reading `rollups`."""
        ...

    def state(self, key: str) -> Any:
        """A value the algorithms keep (watermarks, the last cleanup), or None. A
        snapshot reads the KEPT_STATES together, at the first call for one of them."""
        ...

    def states(self, prefix: str) -> dict[str, Any]:
        """Every kept value whose key starts with `prefix` (the processes' leases)."""
        ...

    def failures(self, start: datetime, end: datetime) -> Iterator[Failure]:
        """Finished runs with an error group that started in [start, end)."""
        ...

    def error_hours(
        self, start: datetime, end: datetime, plugin: str | None = None, grain: Grain = "hour"
    ) -> list[ErrorHour]:
        """The error groups' hourly rollups of [start, end), of one plugin or every one;
        with grain "day", each group's hours summed per UTC day (`hour` is the day's
        start, the example the day's latest)."""
        ...

    def first_seen(self, fingerprints: Iterable[str]) -> dict[str, datetime]:
        """When each group (of those known) first failed, rolled up or still stored."""
        ...


class Writer(Reader, Protocol):
    """Reads and writes in one transaction (`ExecutionStore.write`)."""

    def put_rollups(self, grain: Grain, items: Iterable[Rollup]) -> None:
        """Insert the rollups, replacing those of the same plugin and start."""
        ...

    def delete_rollups(self, grain: Grain, start: datetime, end: datetime) -> None: ...

    def set_state(self, key: str, value: Any) -> None:
        """Keep a JSON-serializable value under `key`."""
        ...

    def delete_state(self, key: str) -> None:
        """Forget the value under `key`."""
        ...

    def put_error_hours(self, items: Iterable[ErrorHour]) -> None:
        """Insert the error groups' hourly rollups, replacing those of the same group
        and hour."""
        ...


class LeaderLock(Protocol):
    """One holder among every process using the store (the scheduler's leader); a dead
    holder's lock is freed."""

    def try_acquire(self) -> bool: ...

    def release(self) -> None: ...


class ExecutionStore(Protocol):
    """The store the tracker, the API, the scheduler and idempotency use."""

    kind: str

    # -- runs ----------------------------------------------------------------
    def insert(self, record: ExecutionRecord, *, wait: bool = False) -> None:
        """Write a new run; with `wait`, return once it is committed."""
        ...

    def expect(self, execution_id: str) -> None:
        """A run has started whose row is to come (its final one, or its `running` one
        if it lasts): the commit of the runs ending meanwhile may wait a little for it,
        to take it too (see GroupCommitWriter). Never waits itself."""
        ...

    def insert_many(self, items: Iterable[ExecutionRecord]) -> int:
        """Bulk path (imports, the benchmark): records and attempts in one transaction."""
        ...

    def update(self, record: ExecutionRecord, *, wait: bool = True) -> None:
        """Write a run's current state and its attempts (inserting it if its start was
        lost). A final state of a run that holds an idempotency claim also finishes the
        claim (its state and `record.delivery_answer`), in the same transaction."""
        ...

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """One run with its attempts."""
        ...

    def open_runs(self, worker: str | None = None) -> list[ExecutionRecord]:
        """Runs still `running` or `pending`, of one worker ("host:pid") or of all."""
        ...

    def snapshot(self) -> AbstractContextManager[Reader]:
        """A Reader on one consistent state, for as long as the block lasts."""
        ...

    def write(self, fn: Callable[[Writer], T]) -> T:
        """Run `fn` in one write transaction and return its result; if `fn` raises,
        nothing it wrote is kept. A function rather than a block: a backend may run it
        in the thread that commits (group commit), and run it again when another write
        of the same transaction fails, so `fn` only reads and writes through its Writer."""
        ...

    # -- maintenance ---------------------------------------------------------
    def delete_batch(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` finished runs (and their attempts) that started before
        `cutoff`, oldest first, in one transaction; never an open run."""
        ...

    def compact(self, budget_s: float) -> None:
        """Give the space of deleted runs back, spending at most about `budget_s`."""
        ...

    def leader_lock(self, name: str, path: str | None = None) -> LeaderLock:
        """The lock `name` that one process at a time holds; `path` is where a backend
        that locks a file puts it (default: beside the database)."""
        ...

    # -- idempotency ---------------------------------------------------------
    def claim_delivery(
        self,
        plugin: str,
        key: str,
        execution_id: str,
        now: datetime,
        window_s: float,
        answer: str = "",
    ) -> DeliveryClaim | None:
        """Claim (plugin, key) for `execution_id` (state running, with `answer` to tell
        repeats meanwhile); None when claimed, else the holder."""
        ...

    def take_over_delivery(
        self,
        plugin: str,
        key: str,
        holder: str,
        execution_id: str,
        now: datetime,
        answer: str = "",
    ) -> bool:
        """Move the key from `holder` (a failed or lost run) to `execution_id`, once."""
        ...

    def release_delivery(self, plugin: str, key: str, execution_id: str) -> None: ...

    def mark_replayed(self, execution_id: str, now: datetime) -> None: ...

    def purge_deliveries(self, before: datetime) -> int: ...

    # -- the store itself ----------------------------------------------------
    def info(self) -> StorageInfo: ...

    def table_counts(self) -> dict[str, int]:
        """Rows in each of rows.HISTORY_TABLES (copy-history compares them)."""
        ...

    def health(self) -> tuple[bool, str]:
        """Whether runs can be read, and whether the latest write was committed."""
        ...

    def close(self) -> None: ...
