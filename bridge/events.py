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
from typing import Any

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


@dataclass(frozen=True)
class RunStarted:
    """A run started in this process (`running`, or `pending` for a background one)."""

    execution_id: str
    plugin: str


@dataclass(frozen=True)
class JobFinished:
    """A background job (cleanup, rollup, stale) ran, and whether it raised."""

    name: str
    ok: bool


Event = RunFinished | RunStarted | JobFinished
Listener = Callable[[Any], None]


class Events:
    """Listeners and the event types each hears, as APScheduler's `add_listener` keeps
    them (a listener hears `RunFinished` unless told otherwise)."""

    def __init__(self) -> None:
        self._listeners: tuple[tuple[Listener, tuple[type, ...]], ...] = ()
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.events"] = self

    def add_listener(self, listener: Listener, *kinds: type) -> None:
        with self._lock:
            self._listeners = (*self._listeners, (listener, kinds or (RunFinished,)))

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x[0] != listener)

    def emit(self, event: Event) -> None:
        for listener, kinds in self._listeners:  # a tuple: safe to iterate while one is added
            if not isinstance(event, kinds):
                continue
            try:
                listener(event)
            except Exception:
                log.exception("Listener %r failed on %s", listener, type(event).__name__)
