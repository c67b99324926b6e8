"""Counters of this process (rejections, write failures, ...), read by /health and,
later, by the metrics endpoint, instead of a dict of its own in each service."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from flask import Flask


class Counters:
    """Named whole-number counters; names are dotted (`runner.saturated`)."""

    def __init__(self) -> None:
        self._values: Counter[str] = Counter()
        self._lock = threading.Lock()
        # Told of each increment (the Prometheus metrics count across processes).
        self.listeners: list[Callable[[str, int], None]] = []

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.counters"] = self

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._values[name] += n
        for listener in self.listeners:
            listener(name, n)

    def get(self, name: str) -> int:
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._values.items()))
