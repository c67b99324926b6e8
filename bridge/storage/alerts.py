"""What the store keeps of alerts: each rule × plugin's state, and the history of alert
events. Four primitives per backend (bridge/storage/<backend>/alerts.py, SQL only);
the state machine and delivery are above them (bridge/alerts/).

A state row carries a version: a change names the version it was computed from and is
kept only if the row still has it, so of two evaluators (a leader handing over, two
hosts) only one moves a state, and only that one notifies.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from bridge.storage.base import ExecutionStore

# The kinds of alert events.
FIRED, REMINDED, RESOLVED, DELIVERY_FAILED, TEST, SILENCED = (
    "fired",
    "reminded",
    "resolved",
    "delivery_failed",
    "test",
    "silenced",
)
SILENCE_KEY = "alert_silence:"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # bridge_state key prefix: a rule's silence, until when


@dataclass(frozen=True)
class AlertState:
    """Where a rule × plugin is in ok → pending → firing → resolved, and since when."""

    rule: str
    plugin: str
    state: str = "ok"
    value: float | None = None
    since: datetime | None = None  # the condition first held (pending, firing)
    fired_at: datetime | None = None
    notified_at: datetime | None = None  # the latest fired or reminded notification
    clear_since: datetime | None = None  # firing, but the condition has not held since
    resolved_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0  # 0: no row stored yet


@dataclass(frozen=True)
class AlertEvent:
    at: datetime
    rule: str
    plugin: str
    kind: str
    severity: str = ""
    value: float | None = None
    threshold: float | None = None
    channel: str = ""
    detail: dict[str, Any] | None = None
    id: int = 0


def _backend(store: ExecutionStore) -> ModuleType:
    return importlib.import_module(f"bridge.storage.{store.kind}.alerts")


class AlertStore:
    """The alert tables of one store, through the store's own transactions."""

    def __init__(self, store: ExecutionStore) -> None:
        self.store = store
        self.sql = _backend(store)

    def states(self) -> list[AlertState]:
        with self.store.snapshot() as reader:
            return self.sql.states(reader.conn)  # type: ignore[attr-defined]

    def change(self, new: AlertState, events: Iterable[AlertEvent] = ()) -> bool:
        """Store `new` (computed from the row of version `new.version`, 0 for none) and
        its events in one transaction; False, storing nothing, if another evaluator
        changed the row first."""
        items = list(events)

        def fn(writer: Any) -> bool:
            if not self.sql.put_state(writer.conn, new):
                return False
            for event in items:
                self.sql.add_event(writer.conn, event)
            return True

        return self.store.write(fn)

    def add_event(self, event: AlertEvent) -> None:
        self.store.write(lambda w: self.sql.add_event(w.conn, event))

    def events(self, since: datetime | None, limit: int) -> list[AlertEvent]:
        """Events at or after `since`, newest first."""
        with self.store.snapshot() as reader:
            return self.sql.events(reader.conn, since, limit)  # type: ignore[attr-defined]

    def delete_events(self, before: datetime) -> int:
        return self.store.write(lambda w: self.sql.delete_events(w.conn, before))

    def silences(self, rules: Iterable[str]) -> dict[str, datetime]:
        """Each silenced rule's end (past ones included)."""
        out: dict[str, datetime] = {}
        with self.store.snapshot() as reader:
            for rule in rules:
                until = reader.state(SILENCE_KEY + rule)
                if until is not None:
                    out[rule] = EPOCH + timedelta(seconds=float(until))
        return out

    def silence(self, rule: str, until: datetime) -> None:
        seconds = (until - EPOCH).total_seconds()
        self.store.write(lambda w: w.set_state(SILENCE_KEY + rule, seconds))
