"""In-memory per-plugin metrics for the real-time view (per process)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from flask import Flask

from bridge.events import RunFinished
from bridge.storage.rollups import Aggregate


class MetricsCache:
    """Counts since this process started, fed by `RunFinished`; the database holds the
    durable history."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plugins: dict[str, tuple[Aggregate, datetime | None, str]] = {}

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.live_metrics"] = self
        app.extensions["bridge.events"].add_listener(self.record)

    def record(self, event: RunFinished) -> None:
        with self._lock:
            agg = self._plugins.get(event.plugin, (Aggregate(), None, ""))[0]
            agg.add(event.status.value, event.error_type, event.duration)
            self._plugins[event.plugin] = (agg, event.end_time, event.status.value)

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
