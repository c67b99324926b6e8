"""Tracker: the lifecycle of execution records, from `running` to a final status.

Every run ends in `Tracker.end_run`, however it ends: the plugin returned or raised,
timed out, was refused (a bad signature), was cut off by shutdown, or was left open by
a process that died. It stores the record with its attempts and emits `RunFinished`.

Tracking never affects the plugin: if the store cannot be opened, tracking is off and
webhooks still run; if a write fails later, the failure is logged and counted (shown
in /health and storage info) and the webhook still answers.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import fields, replace

from flask import Flask

from bridge import clock
from bridge.config import Config, TrackingConfig
from bridge.events import Events, RunFinished, RunStarted
from bridge.model import ExecutionRecord, Outcome, Run, Status
from bridge.storage import Storage
from bridge.storage.base import ExecutionStore
from bridge.tracking.fingerprint import error_group
from bridge.tracking.leases import Leases
from bridge.tracking.redact import Redactor
from bridge.tracking.starts import Starts
from bridge.tracking.unsaved import UnsavedRecords

log = logging.getLogger(__name__)

PREVIEW_CHARS = 1024
LEASE_KEPT_S = 24 * 3600  # a lease that ran out is forgotten this long after


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


# A run's error is a traceback of a few KB, but a plugin's message may quote anything it
# was sent: a record keeps its start and its end (the exception's line).
MAX_ERROR_CHARS = 64 * 1024


def cut_error(text: str) -> str:
    if len(text) <= MAX_ERROR_CHARS:
        return text
    half = MAX_ERROR_CHARS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half:,} characters cut ...]\n{text[-half:]}"


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


# What the log line says could not be done when the end of a run cannot be written.
_END_ACTIONS = {
    "run": "record the end of a run",
    "rejected": "record a rejected delivery",
    "shutdown": "cancel unfinished runs at shutdown",
    "stale": "close a run left open by a dead process",
}


class Tracker:
    """Writes records through the store; without a store it only emits the events."""

    def __init__(self, config: Config, storage: Storage, events: Events) -> None:
        self.settings: TrackingConfig = config.execution_tracking
        self.storage = storage
        self.events = events
        self.redact = Redactor(self.settings.redact_fields)
        # Longest a run can legitimately stay open: beyond it another host's row is stale.
        # The app tells it each plugin's, whose class attributes may allow more.
        self.longest_run: Callable[[], float] = lambda: config.longest_run
        self.unsaved = UnsavedRecords(self._write_final)
        self.leases = Leases(storage, float(config.scheduler.takeover_interval), worker_id)
        self.starts = Starts(self._write_running)

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.tracker"] = self

    @property
    def store(self) -> ExecutionStore | None:
        return self.storage.store

    # -- records -----------------------------------------------------------
    def _texts(self, run: Run) -> tuple[str, str, str]:
        """Input, tags and metadata as stored: serialized (and redacted) once per run,
        at its start; nothing to serialize while tracking is off."""
        if run.stored is None:
            if not self.storage.keeps_records:
                return "", "{}", "{}"
            input_text = ""
            if self.settings.track_input:
                text, run.input_json = run.input_json, None  # not held for the whole run
                if text is None:
                    text = json.dumps(run.data, ensure_ascii=False, default=str)
                input_text = truncate_json(
                    self.redact.json(run.data, text), self.settings.max_input_size
                )
            run.stored = (
                input_text,
                json.dumps(self.redact(run.tags), ensure_ascii=False),
                json.dumps(run.metadata, ensure_ascii=False, default=str),
            )
        return run.stored

    def record_of(self, run: Run, status: Status) -> ExecutionRecord:
        input_text, tags, metadata = self._texts(run)
        return ExecutionRecord(
            id=run.execution_id,
            plugin_name=run.plugin_name,
            http_method=run.method,
            start_time=run.start_time,
            status=status,
            input=input_text,
            trace_id=run.trace_id,
            user_agent=run.user_agent,
            remote_ip=run.remote_ip,
            tags=tags,
            metadata=metadata,
            created_at=run.start_time,
            updated_at=run.start_time,
            worker=worker_id(),
            idempotency_key=run.idempotency_key,
            replay_of=run.replay_of,
        )

    def _write(self, record: ExecutionRecord, wait: bool, action: str, insert: bool) -> bool:
        """Write `record` (to the spool while a server database is away); False (counted
        and logged) when it could not be kept."""
        if not self.storage.keeps_records:
            return True
        return self.storage.save(storable(record), insert=insert, wait=wait, action=action)

    def _write_final(self, record: ExecutionRecord) -> None:
        """A held final record, written again (raises while the store still refuses)."""
        if self.store is not None:
            self.store.update(record, wait=True)

    # -- lifecycle ---------------------------------------------------------
    def start(self, run: Run, status: Status) -> None:
        """Before the plugin runs. A `pending` row is committed before the 202 that
        points to it. A `running` row is written only if the run lasts (Starts): a run
        that ends first is written once, with its final state, and waited for before its
        answer. Its input is made now, before the plugin can change its data."""
        if self.store is None:
            return  # nothing to write; the end of the run still emits its event
        if status is Status.RUNNING:
            self._texts(run)
            self.storage.expect(run.execution_id)
            self.starts.add(run)
        else:
            self._write(self.record_of(run, status), True, "record the start of a run", True)
        self.events.emit(RunStarted(run.execution_id, run.plugin_name))

    def _write_running(self, run: Run, wait: bool) -> None:
        """The `running` row of a run that lasts (Starts)."""
        self._write(self.record_of(run, Status.RUNNING), wait, "record the start of a run", True)

    def mark_running(self, run: Run) -> None:
        if self.store is None:
            return
        record = self.record_of(run, Status.RUNNING)
        record.updated_at = clock.utcnow()
        self._write(record, False, "mark a run as running", False)

    def finish(self, run: Run, outcome: Outcome) -> None:
        """The plugin's run ended (or never started: canceled while pending)."""
        self.starts.take(run.execution_id)
        self.end_run(self.record_of(run, outcome.status), outcome)

    def reject(self, run: Run, error: BaseException, error_type: str) -> None:
        """A delivery refused before its plugin ran (a bad signature): recorded without
        its payload, so that probing shows up in the history."""
        now = clock.utcnow()
        record = self.record_of(run, Status.FAILED)
        record.input = ""
        outcome = Outcome(
            Status.FAILED,
            now,
            now,
            0,
            [],
            error=error,
            error_type=error_type,
            error_detail=f"{type(error).__name__}: {error}",
        )
        self.end_run(record, outcome, how="rejected")

    def end_run(self, record: ExecutionRecord, outcome: Outcome, how: str = "run") -> None:
        """The one place a run ends: the record takes the outcome (output redacted and
        truncated, errors kept or not as configured), is written with its attempts and
        waited for, and `RunFinished` goes to the listeners."""
        record.status = outcome.status
        record.start_time = min(record.start_time, outcome.start_time)
        record.end_time = record.updated_at = outcome.end_time
        record.duration = outcome.duration
        record.attempts = len(outcome.attempts)
        record.retry_count = outcome.retry_count
        # Time after the first attempt: the retries and the waits before them.
        record.retry_time = (
            max(0, outcome.duration - outcome.attempts[0].duration) if outcome.retry_count else 0
        )
        record.error_type = outcome.error_type
        record.attempt_records = outcome.attempts
        output = ""
        wanted = self.settings.track_output or record.idempotency_key
        if wanted and outcome.result is not None and self.storage.keeps_records:
            text = outcome.output_json or json.dumps(
                outcome.result, ensure_ascii=False, default=str
            )
            text = self.redact.json(outcome.result, text)
            output = truncate_json(text, self.settings.max_output_size)
        if self.settings.track_output:
            record.output = output
        if record.idempotency_key:  # what a repeat of this delivery is answered with
            record.delivery_answer = json.dumps(
                {
                    "method": record.http_method,
                    "trace_id": record.trace_id,
                    "start_time": clock.rfc3339(record.start_time),
                    "end_time": clock.rfc3339(outcome.end_time),
                    "duration": record.duration,
                    "attempts": record.attempts,
                    "output": output,
                },
                ensure_ascii=False,
            )
        # Fingerprinted from the whole error, even where errors are not kept.
        record.error_group = (
            error_group(record.plugin_name, record.error_type, outcome.error_detail).fingerprint
            if record.status is not Status.COMPLETED and outcome.error_detail
            else ""
        )
        if self.settings.track_errors:
            record.error = cut_error(outcome.error_detail)
            for attempt in record.attempt_records:
                attempt.error = cut_error(attempt.error)
        else:
            record.error = ""
            for attempt in record.attempt_records:
                attempt.error = ""
        if self._write(record, True, _END_ACTIONS[how], False):
            self.unsaved.store_works()
        elif self.storage.spool is None:  # a full spool has counted and logged it
            self.unsaved.keep(storable(record))
        self.events.emit(
            RunFinished(
                execution_id=record.id,
                plugin=record.plugin_name,
                status=record.status,
                error_type=record.error_type,
                duration=record.duration,
                attempts=record.attempts,
                end_time=outcome.end_time,
                trace_id=record.trace_id,
                how=how,
            )
        )

    # -- runs left open ----------------------------------------------------
    @property
    def max_run_seconds(self) -> float:
        return self.longest_run()

    def recover_stale(self) -> int:
        """Close rows left `running` or `pending` by processes that are gone: on this
        host, a process that no longer exists; on another, one whose lease ran out (or,
        for a row of a process that never had a lease, a row older than any run can
        last)."""
        if self.storage.live_store is None:
            return 0
        now = clock.utcnow()
        longest = self.max_run_seconds  # looks at every plugin file: once per turn
        oldest_live = now.timestamp() - (longest + 300)
        closed = 0
        leases: dict[str, bool | None] = {}
        for record in self.store.open_runs():  # type: ignore[union-attr]
            if record.start_time.timestamp() >= oldest_live:
                if _on_this_host(record.worker):
                    if _process_alive(record.worker):
                        continue
                else:
                    if record.worker not in leases:
                        leases[record.worker] = self.leases.alive(record.worker)
                    if leases[record.worker] is not False:
                        continue  # a live lease, or none to tell: only age retires it
            detail = (
                f"Interrupted: the process running it ({record.worker or 'unknown'}) stopped "
                "before the run finished"
            )
            self.end_run(record, Outcome.interrupted(Status.FAILED, detail, now), how="stale")
            closed += 1
        if closed:
            log.warning(
                "Closed %d executions left running by a dead process as interrupted", closed
            )
        try:
            self.leases.purge(max(LEASE_KEPT_S, longest + 300))
        except Exception as exc:  # the next turn tries again
            log.debug("Old leases not purged: %s", exc)
        return closed

    def close_own_runs(self) -> int:
        """At shutdown: this process's unfinished rows become `canceled`."""
        if self.storage.live_store is None:
            return 0
        self.starts.flush()  # runs started just now have no row yet
        try:
            records = self.store.open_runs(worker_id())
        except Exception as exc:
            self.storage.write_failed("cancel unfinished runs at shutdown", exc)
            return 0
        now = clock.utcnow()
        for record in records:
            outcome = Outcome.interrupted(
                Status.CANCELED, "Canceled: the server shut down during the run", now
            )
            self.end_run(record, outcome, how="shutdown")
        return len(records)


def _on_this_host(worker: str) -> bool:
    return worker.rpartition(":")[0] == socket.gethostname()


def _process_alive(worker: str) -> bool:
    """Whether the process that wrote a row ("host:pid") on this host still runs."""
    try:
        pid = int(worker.rpartition(":")[2])
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
