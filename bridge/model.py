"""The bridge's vocabulary: statuses, error types, records, deliveries and outcomes.

Dependency-free on purpose: the runner, the tracker, the dispatcher, the stores and
the API all speak these types, and none of them needs to import another to do so.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


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


OPEN_STATUSES = (Status.RUNNING, Status.PENDING)


class ErrorType(str, enum.Enum):
    """What kind of failure ended a run (the record's `error_type`)."""

    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    PERMISSION_DENIED = "permission_denied"
    VALIDATION_ERROR = "validation_error"
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    INTERRUPTED = "interrupted"
    UNKNOWN_ERROR = "unknown_error"


ERROR_TYPES = tuple(e.value for e in ErrorType)


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
    # A failure's fingerprint (bridge.tracking.fingerprint), and the run this one replays.
    error_group: str = ""
    replay_of: str = ""
    retry_time: int = 0  # nanoseconds after the first attempt (retries and their waits)
    attempt_records: list[AttemptRecord] = field(default_factory=list)
    # Not a column of the record: what a repeat of its delivery is answered with (JSON,
    # the output redacted and truncated as stored, even where track_output is off),
    # kept with the delivery's idempotency claim when the run ends.
    delivery_answer: str = ""


@dataclass(frozen=True)
class ExecutionFilter:
    plugin: str | None = None
    status: Status | None = None
    error_type: str | None = None
    trace_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # (key, value) pairs a run must all carry.
    tags: tuple[tuple[str, str], ...] = ()
    error_group: str | None = None
    replay_of: str | None = None


@dataclass(frozen=True)
class Page:
    records: list[ExecutionRecord]
    total: int
    total_is_estimate: bool
    next_cursor: str | None


@dataclass(frozen=True)
class DeliveryClaim:
    """Who holds an idempotency key: `execution_id`, claimed `age_s` seconds ago; its
    `state` (running, completed, failed) and `answer` (JSON: what a repeat is told)."""

    execution_id: str
    age_s: float
    state: str = "running"
    answer: str = ""


@dataclass(frozen=True)
class Replay:
    """What a repeated delivery is answered with: the first run as its claim keeps it."""

    execution_id: str
    plugin: str
    method: str
    trace_id: str
    finished: bool
    start_time: datetime | None = None
    end_time: datetime | None = None
    duration: int = 0
    attempts: int = 0
    output: str = ""  # JSON text, redacted and truncated as stored


@dataclass(frozen=True)
class CleanupResult:
    deleted: int
    cutoff: datetime
    finished_at: datetime
    duration_ms: float


@dataclass
class Delivery:
    """A request to run a plugin, wherever it came from (HTTP, a replay, the CLI).

    `parse` turns the body into the plugin's data (and the body's JSON text when it can
    be stored as it came); the dispatcher calls it only after the signature over the
    raw `body` is checked. `query` holds the URL's parameters, which no signature
    covers: they join the data of unsigned plugins only."""

    plugin: str
    method: str
    parse: Callable[[], tuple[dict[str, Any], str | None]]
    body: bytes = b""
    query: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    trace_id: str = ""
    user_agent: str = ""
    remote_ip: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    async_mode: bool = False
    # A replay or a CLI run skips the signature check (its caller holds an API key)
    # and idempotency (it is a deliberate new run).
    trusted: bool = False
    # The id of the stored run this delivery replays.
    replay_of: str = ""


@dataclass
class Run:
    """One delivery on its way through the runner, with what tracking records of it."""

    plugin: Any  # bridge.registry.LoadedPlugin
    method: str
    data: dict[str, Any]
    execution_id: str
    trace_id: str
    start_time: datetime
    user_agent: str = ""
    remote_ip: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    # The URL's parameters; for a signed plugin not part of `data` (no signature covers them).
    query: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str = ""
    # The request body's JSON text when it is the whole of `data`: stored as it came.
    input_json: str | None = None
    # Input, tags and metadata as the tracker stores them (input redacted and truncated).
    stored: tuple[str, str, str] | None = None
    replay_of: str = ""

    @property
    def plugin_name(self) -> str:
        return self.plugin.name


@dataclass
class Outcome:
    """How a run ended, after all its attempts."""

    status: Status
    start_time: datetime
    end_time: datetime
    duration: int  # nanoseconds
    attempts: list[AttemptRecord]
    result: dict[str, Any] | None = None
    output_json: str = ""
    error: BaseException | None = None
    error_type: str = ""
    error_detail: str = ""  # message and traceback, for the record

    @property
    def retry_count(self) -> int:
        return max(0, len(self.attempts) - 1)

    @classmethod
    def interrupted(cls, status: Status, detail: str, now: datetime) -> Outcome:
        """A run cut off from outside (shutdown, its process died): its duration is
        unknown and stored as 0."""
        return cls(
            status, now, now, 0, [], error_type=ErrorType.INTERRUPTED.value, error_detail=detail
        )
