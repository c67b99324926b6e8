"""Alerts: threshold rules over rolling windows, evaluated by the scheduler's leader
from the store, each rule × plugin moving through ok → pending → firing → resolved,
and notifications delivered to webhook, Slack, email and log channels.

Modules: rules (config), metrics (values from the store), state (the state machine),
evaluator, message (what a notification says), delivery, channels/.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import wait
from datetime import datetime, timedelta
from typing import Any

from flask import Flask

from bridge import clock
from bridge.alerts.delivery import Delivery, Outcome
from bridge.alerts.evaluator import Evaluator
from bridge.alerts.message import Notification, runs_link
from bridge.alerts.metrics import error_groups_available
from bridge.alerts.rules import Rule, parse
from bridge.config import Config
from bridge.errors import AlertRuleNotFound
from bridge.storage import Storage
from bridge.storage.alerts import DELIVERY_FAILED, SILENCED, TEST, AlertEvent, AlertStore

log = logging.getLogger("bridge.alerts")


class Alerts:
    """The app's alert rules and channels, their evaluation and delivery."""

    def __init__(self, config: Config, storage: Storage, plugins: Callable[[], list[str]]) -> None:
        settings = config.alerts
        self.channels, self.rules = parse(
            settings.channels, settings.rules, error_groups_available()
        )
        self.enabled = settings.enabled and bool(self.rules)
        self.interval = float(settings.evaluation_interval)
        self.public_url = settings.public_url or f"http://{config.server.host}:{config.server.port}"
        self.storage = storage
        self.plugins = plugins
        self.delivery = Delivery(
            self.channels,
            float(settings.delivery_timeout),
            settings.delivery_attempts,
            float(settings.delivery_backoff),
            self._delivery_failed,
        )

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.alerts"] = self

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise AlertRuleNotFound(name)

    def evaluator(self, now: Callable[[], datetime] = clock.utcnow) -> Evaluator:
        return Evaluator(
            self.rules,
            self.storage.require(),
            self.plugins,
            self.notify,
            self.public_url,
            now,
        )

    def evaluate(self) -> int:
        """The scheduler's job: one evaluation; how many notifications it sent."""
        return len(self.evaluator().evaluate())

    def notify(self, n: Notification) -> None:
        self.delivery.submit(n, n.rule.channels)

    def _delivery_failed(self, n: Notification, outcome: Outcome) -> None:
        AlertStore(self.storage.require()).add_event(
            AlertEvent(
                at=clock.utcnow(),
                rule=n.rule.name,
                plugin=n.plugin,
                kind=DELIVERY_FAILED,
                severity=n.rule.severity,
                value=n.value,
                channel=outcome.channel,
                detail={"event": n.kind, "attempts": outcome.attempts, "error": outcome.error},
            )
        )

    def test(self, name: str) -> list[Outcome]:
        """Send a test notification through the rule's channels and wait for each."""
        rule = self.rule(name)
        now = clock.utcnow()
        n = Notification(
            TEST,
            rule,
            rule.plugin,
            None,
            None,
            now,
            runs_link(self.public_url, rule, rule.plugin, now),
        )
        futures = self.delivery.submit(n, rule.channels)
        longest = self.delivery.timeout * self.delivery.attempts
        longest += self.delivery.backoff * 2**self.delivery.attempts
        wait(futures, timeout=longest + 5)
        outcomes = [
            f.result() if f.done() else Outcome(c, False, 0, "still being tried")
            for c, f in zip(rule.channels, futures, strict=True)
        ]
        AlertStore(self.storage.require()).add_event(
            AlertEvent(
                at=now,
                rule=name,
                plugin=rule.plugin,
                kind=TEST,
                severity=rule.severity,
                channel=",".join(rule.channels),
                detail={"outcomes": [o.__dict__ for o in outcomes]},
            )
        )
        return outcomes

    def silence(self, name: str, seconds: float) -> datetime:
        """Send nothing for the rule for `seconds` (0 lifts a silence); states still move."""
        rule = self.rule(name)
        now = clock.utcnow()
        until = now + timedelta(seconds=seconds)
        alerts = AlertStore(self.storage.require())
        alerts.silence(rule.name, until)
        alerts.add_event(
            AlertEvent(
                at=now,
                rule=name,
                plugin=rule.plugin,
                kind=SILENCED,
                severity=rule.severity,
                detail={"until": clock.rfc3339(until)},
            )
        )
        return until

    def overview(self) -> dict[str, Any]:
        """Every rule with its state per plugin, and the firing ones, for the API and
        the CLI."""
        alerts = AlertStore(self.storage.require())
        states = alerts.states()
        silences = alerts.silences(r.name for r in self.rules)
        now = clock.utcnow()
        rules, firing = [], []
        for rule in self.rules:
            mine = [s for s in states if s.rule == rule.name]
            until = silences.get(rule.name)
            rules.append(
                {
                    "rule": rule,
                    "silenced_until": until if until and until > now else None,
                    "states": mine,
                }
            )
            firing += [{"rule": rule, "state": s} for s in mine if s.state == "firing"]
        return {"enabled": self.enabled, "rules": rules, "firing": firing}

    def shutdown(self, grace: float = 2.0) -> None:
        self.delivery.shutdown(grace)
