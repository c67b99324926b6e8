"""In-memory per-plugin metrics for the real-time view (per process)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.storage.base import Status


@dataclass
class PluginMetrics:
    total: int = 0
    completed: int = 0
    failed: int = 0
    timeout: int = 0
    canceled: int = 0
    duration_sum: int = 0
    duration_min: int | None = None
    duration_max: int = 0
    last_execution: datetime | None = None
    last_status: str = ""
    error_types: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        finished = self.completed + self.failed + self.timeout + self.canceled
        return {
            "total_executions": self.total,
            "successful_executions": self.completed,
            "failed_executions": self.failed + self.timeout + self.canceled,
            "timeout_executions": self.timeout,
            "success_rate": round(100.0 * self.completed / finished, 2) if finished else 0.0,
            "avg_duration": self.duration_sum // finished if finished else 0,
            "min_duration": self.duration_min or 0,
            "max_duration": self.duration_max,
            "last_execution": self.last_execution,
            "last_status": self.last_status,
            "error_types": dict(self.error_types),
        }


class MetricsCache:
    """Counts since this process started; the database holds the durable history."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plugins: dict[str, PluginMetrics] = {}

    def record(self, plugin: str, status: Status, duration: int, error_type: str,
               when: datetime) -> None:
        with self._lock:
            m = self._plugins.setdefault(plugin, PluginMetrics())
            m.total += 1
            if status is Status.COMPLETED:
                m.completed += 1
            elif status is Status.TIMEOUT:
                m.timeout += 1
            elif status is Status.CANCELED:
                m.canceled += 1
            else:
                m.failed += 1
            m.duration_sum += duration
            m.duration_min = duration if m.duration_min is None else min(m.duration_min, duration)
            m.duration_max = max(m.duration_max, duration)
            m.last_execution = when
            m.last_status = status.value
            if error_type:
                m.error_types[error_type] += 1

    def get(self, plugin: str) -> dict[str, Any]:
        with self._lock:
            return self._plugins.get(plugin, PluginMetrics()).as_dict()

    def all(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: m.as_dict() for name, m in sorted(self._plugins.items())}
