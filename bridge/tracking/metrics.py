"""In-memory per-plugin metrics for the real-time view (per process)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from bridge.storage.base import Status
from bridge.storage.rollups import Aggregate


class MetricsCache:
    """Counts since this process started; the database holds the durable history."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plugins: dict[str, tuple[Aggregate, datetime | None, str]] = {}

    def record(
        self, plugin: str, status: Status, duration: int, error_type: str, when: datetime
    ) -> None:
        with self._lock:
            agg = self._plugins.get(plugin, (Aggregate(), None, ""))[0]
            agg.add(status.value, error_type, duration)
            self._plugins[plugin] = (agg, when, status.value)

    @staticmethod
    def _describe(agg: Aggregate, last: datetime | None, last_status: str) -> dict[str, Any]:
        return {
            **agg.counts(),
            "min_duration": agg.duration_min or 0,
            "max_duration": agg.duration_max,
            "last_execution": last,
            "last_status": last_status,
            "error_types": dict(agg.error_types),
        }

    def get(self, plugin: str) -> dict[str, Any]:
        with self._lock:
            return self._describe(*self._plugins.get(plugin, (Aggregate(), None, "")))

    def all(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: self._describe(*entry) for name, entry in sorted(self._plugins.items())}
