"""Tracker: the lifecycle of execution records, from `running` to a final status.

Tracking never affects the plugin: if the store cannot be opened, tracking is off and
webhooks still run; if a write fails later, the failure is logged and counted (shown
in /health and storage info) and the webhook still answers.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flask import Flask

from bridge import clock
from bridge.config import Config, TrackingConfig
from bridge.errors import StorageUnavailable
from bridge.storage.base import ExecutionRecord, ExecutionStore, Status
from bridge.tracking.metrics import MetricsCache
from bridge.tracking.redact import Redactor

if TYPE_CHECKING:
    from bridge.runner import Invocation, Outcome

log = logging.getLogger(__name__)

PREVIEW_CHARS = 1024


def utf8_json(text: str) -> str:
    """Text SQLite can store: lone surrogates (`"\\ud800"` is valid JSON, but not
    UTF-8) written back as the `\\uXXXX` escapes they came from."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def truncate_json(text: str, limit: int) -> str:
    """`text` if it fits in `limit` bytes, else a JSON object saying it was truncated."""
    text = utf8_json(text)
    # ASCII text is as many bytes as characters: no copy of a 1 MB payload to count them.
    size = len(text) if text.isascii() else len(text.encode("utf-8"))
    if size <= limit:
        return text
    return json.dumps(
        {
            "truncated": True,
            "original_size": size,
            "preview": text[: min(PREVIEW_CHARS, max(limit // 2, 0))],
        },
        ensure_ascii=False,
    )


# ExecutionRecord's text fields; storable() checks these on every write.
_TEXT_FIELDS = tuple(f.name for f in fields(ExecutionRecord) if f.type in ("str", str))


def storable(record: ExecutionRecord) -> ExecutionRecord:
    """The record with every text field storable: a payload's lone surrogate can reach
    the tags, a plugin's error message or its traceback, not only the input."""
    for name in _TEXT_FIELDS:
        value = getattr(record, name)
        if not value.isascii():
            setattr(record, name, utf8_json(value))
    if not all(a.error.isascii() for a in record.attempt_records):
        record.attempt_records = [
            replace(a, error=utf8_json(a.error)) for a in record.attempt_records
        ]
    return record


_worker: tuple[int, str] = (0, "")


def worker_id() -> str:
    """This process as "host:pid", checked again after a fork."""
    global _worker
    pid = os.getpid()
    if _worker[0] != pid:
        _worker = (pid, f"{socket.gethostname()}:{pid}")
    return _worker[1]


@dataclass
class WriteFailures:
    count: int = 0
    last_error: str = ""
    last_at: datetime | None = None


class Tracker:
    """Writes records through the store; the store may be None when tracking is off."""

    def __init__(
        self, config: Config, store: ExecutionStore | None, disabled_reason: str = ""
    ) -> None:
        self.settings: TrackingConfig = config.execution_tracking
        self.store = store
        self.disabled_reason = disabled_reason
        self.metrics = MetricsCache()
        self.failures = WriteFailures()
        self.redact = Redactor(self.settings.redact_fields)
        self._lock = threading.Lock()
        # Longest a run can legitimately stay `running`: beyond it the row is stale.
        self.max_run_seconds = float(config.plugins.timeout) * max(1, config.runner.max_attempts)

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.tracker"] = self

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def require_store(self) -> ExecutionStore:
        if self.store is None:
            raise StorageUnavailable(
                f"Execution tracking is disabled: {self.disabled_reason or 'not configured'}"
            )
        return self.store

    def write_failed(self, action: str, exc: BaseException) -> None:
        with self._lock:
            self.failures.count += 1
            self.failures.last_error = f"{type(exc).__name__}: {exc}"
            self.failures.last_at = clock.utcnow()
        log.error("Execution tracking could not %s: %s", action, exc)

    # -- lifecycle ---------------------------------------------------------
    def _texts(self, inv: Invocation) -> tuple[str, str, str]:
        """Input, tags and metadata as stored: serialized (and redacted) once per run,
        at its start."""
        if inv.stored is None:
            input_text = ""
            if self.settings.track_input:
                text, inv.input_json = inv.input_json, None  # not held for the whole run
                if text is None:
                    text = json.dumps(inv.data, ensure_ascii=False, default=str)
                input_text = truncate_json(
                    self.redact.json(inv.data, text), self.settings.max_input_size
                )
            inv.stored = (
                input_text,
                json.dumps(inv.tags, ensure_ascii=False),
                json.dumps(inv.metadata, ensure_ascii=False, default=str),
            )
        return inv.stored

    def _record(self, inv: Invocation, status: Status) -> ExecutionRecord:
        input_text, tags, metadata = self._texts(inv)
        return ExecutionRecord(
            id=inv.execution_id,
            plugin_name=inv.plugin.name,
            http_method=inv.method,
            start_time=inv.start_time,
            status=status,
            input=input_text,
            trace_id=inv.trace_id,
            user_agent=inv.user_agent,
            remote_ip=inv.remote_ip,
            tags=tags,
            metadata=metadata,
            created_at=inv.start_time,
            updated_at=inv.start_time,
            worker=worker_id(),
            idempotency_key=inv.idempotency_key,
        )

    def start(self, inv: Invocation, status: Status) -> None:
        """Write the `running` (or `pending`) row before the plugin runs. A `pending` row
        is committed before the 202 that points to it; a `running` row is not waited for
        (the run's final row is, before its answer)."""
        if self.store is None:
            return
        try:
            self.store.insert(storable(self._record(inv, status)), wait=status is Status.PENDING)
        except Exception as exc:
            self.write_failed("record the start of a run", exc)

    def mark_running(self, inv: Invocation) -> None:
        if self.store is None:
            return
        record = self._record(inv, Status.RUNNING)
        record.updated_at = clock.utcnow()
        try:
            self.store.update(storable(record), wait=False)
        except Exception as exc:
            self.write_failed("mark a run as running", exc)

    def finish(self, inv: Invocation, outcome: Outcome) -> None:
        """Complete the row with the outcome and its attempts; waits for the commit."""
        self.metrics.record(
            inv.plugin.name, outcome.status, outcome.duration, outcome.error_type, outcome.end_time
        )
        if self.store is None:
            return
        record = self._record(inv, outcome.status)
        record.start_time = min(inv.start_time, outcome.start_time)
        record.end_time = outcome.end_time
        record.updated_at = outcome.end_time
        record.duration = outcome.duration
        record.attempts = len(outcome.attempts)
        record.retry_count = outcome.retry_count
        record.error_type = outcome.error_type
        record.attempt_records = outcome.attempts
        if self.settings.track_output and outcome.result is not None:
            text = outcome.output_json or json.dumps(
                outcome.result, ensure_ascii=False, default=str
            )
            text = self.redact.json(outcome.result, text)
            record.output = truncate_json(text, self.settings.max_output_size)
        if self.settings.track_errors:
            record.error = outcome.error_detail
        else:
            for attempt in record.attempt_records:
                attempt.error = ""
        try:
            self.store.update(storable(record), wait=True)
        except Exception as exc:
            self.write_failed("record the end of a run", exc)

    def reject(self, inv: Invocation, error: BaseException, error_type: str) -> None:
        """A delivery refused before its plugin ran (a bad signature): counted, and recorded
        without its payload, so that probing shows up in the history."""
        now = clock.utcnow()
        self.metrics.record(inv.plugin.name, Status.FAILED, 0, error_type, now)
        if self.store is None:
            return
        record = self._record(inv, Status.FAILED)
        record.input = ""
        record.end_time = record.updated_at = now
        record.error_type = error_type
        record.error = f"{type(error).__name__}: {error}"
        try:
            self.store.update(storable(record), wait=True)
        except Exception as exc:
            self.write_failed("record a rejected delivery", exc)

    # -- recovery ----------------------------------------------------------
    def recover_stale(self) -> int:
        """Close rows left `running` or `pending` by processes that are gone."""
        if self.store is None:
            return 0
        closed = self.store.close_stale(
            clock.utcnow(), alive=_process_alive, max_age_s=self.max_run_seconds + 300
        )
        if closed:
            log.warning(
                "Closed %d executions left running by a dead process as interrupted", closed
            )
        return closed

    def close_own_runs(self) -> int:
        """At shutdown: this process's unfinished rows become `canceled`."""
        if self.store is None:
            return 0
        try:
            return self.store.close_own(
                worker_id(),
                Status.CANCELED,
                "Canceled: the server shut down during the run",
                "interrupted",
                clock.utcnow(),
            )
        except Exception as exc:
            self.write_failed("cancel unfinished runs at shutdown", exc)
            return 0

    def status(self) -> dict[str, Any]:
        with self._lock:
            failures = {
                "count": self.failures.count,
                "last_error": self.failures.last_error,
                "last_at": (
                    clock.rfc3339(self.failures.last_at) if self.failures.last_at else None
                ),
            }
        return {
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "write_failures": failures,
        }


def _process_alive(worker: str) -> bool:
    """Whether the process that wrote a row ("host:pid") still runs on this host."""
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname():
        return True  # another host's process: only its age can retire the row
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
