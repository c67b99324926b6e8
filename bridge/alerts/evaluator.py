"""One evaluation of every rule: read the states and the rules' values from the store,
step each rule × plugin's state machine, store the changes, and hand the notifications
they call for to delivery. Run by the scheduler's leader only; the time comes from the
clock it is given, so tests drive it without sleeping."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from bridge import clock as wall_clock
from bridge.alerts import metrics
from bridge.alerts.message import Notification, runs_link
from bridge.alerts.rules import Rule
from bridge.alerts.state import step
from bridge.storage.alerts import AlertEvent, AlertState, AlertStore
from bridge.storage.base import ExecutionStore
from bridge.storage.rollups import Aggregate

log = logging.getLogger("bridge.alerts")


class Evaluator:
    def __init__(
        self,
        rules: list[Rule],
        store: ExecutionStore,
        known_plugins: Callable[[], Iterable[str]],
        notify: Callable[[Notification], None],
        public_url: str,
        clock: Callable[[], datetime] = wall_clock.utcnow,
    ) -> None:
        self.rules = rules
        self.store = store
        self.alerts = AlertStore(store)
        self.known_plugins = known_plugins
        self.notify = notify
        self.public_url = public_url
        self.clock = clock

    def evaluate(self) -> list[Notification]:
        """Step every rule × plugin once; returns the notifications sent (silenced
        rules' are stored as events but not sent)."""
        now = self.clock()
        states = {(s.rule, s.plugin): s for s in self.alerts.states()}
        silences = self.alerts.silences(r.name for r in self.rules)
        registry = set(self.known_plugins())
        readings: list[tuple[Rule, str, float | None]] = []
        windows: dict[float, dict[str, Aggregate]] = {}
        with self.store.snapshot() as reader:
            for rule in self.rules:
                known = registry | {p for (r, p) in states if r == rule.name}
                for plugin, value in metrics.values(rule, reader, now, known, windows).items():
                    readings.append((rule, plugin, value))
        sent: list[Notification] = []
        for rule, plugin, value in readings:
            current = states.get((rule.name, plugin), AlertState(rule.name, plugin))
            transition = step(rule, current, value, now)
            if transition is None:
                continue
            new = transition.state
            silenced = rule.name in silences and silences[rule.name] > now
            note = None
            events: list[AlertEvent] = []
            if transition.notify:
                note = Notification(
                    transition.notify,
                    rule,
                    plugin,
                    value,
                    new.since,
                    now,
                    runs_link(
                        self.public_url, rule, plugin, now, windows.get(rule.window, {}).get(plugin)
                    ),
                )
                events.append(
                    AlertEvent(
                        at=now,
                        rule=rule.name,
                        plugin=plugin,
                        kind=transition.notify,
                        severity=rule.severity,
                        value=value,
                        threshold=note.to_json()["threshold"],
                        channel=",".join(rule.channels),
                        detail={"summary": note.summary, "link": note.link, "silenced": silenced},
                    )
                )
            if not self.alerts.change(new, events):
                log.info("Alert %s of %s changed by another evaluator", rule.name, plugin)
                continue
            if note is not None:
                log.info(
                    "Alert %s: %s of %s%s: %s",
                    note.kind,
                    rule.name,
                    plugin,
                    " (silenced: not sent)" if silenced else "",
                    note.summary,
                )
            if note is not None and not silenced:
                self.notify(note)
                sent.append(note)
        return sent
