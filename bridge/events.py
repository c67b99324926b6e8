"""Events: what happened to a run, for whoever listens (live metrics, later Prometheus
and alerts), so the end-of-run path calls none of them by name.

Listeners run in the thread that emits, after the record is written; they must be
quick. One that raises is logged and never affects the run or the other listeners.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask import Flask

from bridge.model import Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFinished:
    """A run reached its final status, however it ended (`how`: `run` for a plugin
    that ran, `rejected`, `shutdown`, `stale`)."""

    execution_id: str
    plugin: str
    status: Status
    error_type: str
    duration: int  # nanoseconds
    attempts: int
    end_time: datetime
    trace_id: str
    how: str = "run"


Listener = Callable[[RunFinished], None]


class Events:
    """A list of listeners, as APScheduler's `add_listener` keeps them."""

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.events"] = self

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x != listener)

    def emit(self, event: RunFinished) -> None:
        for listener in self._listeners:  # a tuple: safe to iterate while one is added
            try:
                listener(event)
            except Exception:
                log.exception("Listener %r failed on %s", listener, type(event).__name__)
