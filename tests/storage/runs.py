"""Runs to store in the contract tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.model import AttemptRecord, ExecutionRecord, Status

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def finished(
    run_id: str,
    start: datetime,
    plugin: str = "a",
    status: Status = Status.COMPLETED,
    error_type: str = "",
    duration_ms: int = 1,
    **fields: Any,
) -> ExecutionRecord:
    """A run that ended `duration_ms` after `start`, with its one attempt."""
    end = start + timedelta(milliseconds=duration_ms)
    duration = duration_ms * 1_000_000
    return ExecutionRecord(
        id=run_id,
        plugin_name=plugin,
        http_method="POST",
        start_time=start,
        end_time=end,
        status=status,
        error_type=error_type,
        error="boom" if status is not Status.COMPLETED else "",
        duration=duration,
        attempts=1,
        attempt_records=[AttemptRecord(1, start, end, status, "", error_type, duration)],
        **fields,
    )


def running(run_id: str, start: datetime, plugin: str = "a", **fields: Any) -> ExecutionRecord:
    return ExecutionRecord(
        id=run_id,
        plugin_name=plugin,
        http_method="POST",
        start_time=start,
        status=Status.RUNNING,
        **fields,
    )


def sixty_runs() -> list[ExecutionRecord]:
    """60 runs, one every 2 hours back from NOW: plugins a/b/c in turn, every 4th one
    failed with a timeout, durations 1..60 ms."""
    return [
        finished(
            f"r{i}",
            NOW - timedelta(hours=2 * i + 1),
            plugin="abc"[i % 3],
            status=Status.FAILED if i % 4 == 0 else Status.COMPLETED,
            error_type="timeout" if i % 4 == 0 else "",
            duration_ms=i + 1,
        )
        for i in range(60)
    ]
