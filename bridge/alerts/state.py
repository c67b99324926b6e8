"""The state machine of one rule × plugin: ok → pending → firing → resolved (and back
to pending when the condition holds again). Pure: it takes the time and the reading,
and says what the state becomes and what to tell people, so tests drive it by clock.

Flapping is damped twice: the condition must hold for the rule's `for` before it
fires, and must stay clear for `resolve_after` before it resolves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from bridge.alerts.rules import Rule
from bridge.storage.alerts import FIRED, REMINDED, RESOLVED, AlertState

OK, PENDING, FIRING = "ok", "pending", "firing"
RESOLVED_STATE = "resolved"
STATES = (OK, PENDING, FIRING, RESOLVED_STATE)


@dataclass(frozen=True)
class Transition:
    """The state to store (carrying the version it was computed from) and the
    notification it calls for (fired, reminded, resolved), if any."""

    state: AlertState
    notify: str | None = None


def _held(start: datetime | None, now: datetime, seconds: float) -> bool:
    return start is not None and (now - start).total_seconds() >= seconds


def step(rule: Rule, current: AlertState, value: float | None, now: datetime) -> Transition | None:
    """The next state given the rule's `value` now (None: too few runs to judge, taken
    as clear); None when nothing worth storing changed."""
    breached = value is not None and rule.breached(value)
    s = replace(current, value=value, updated_at=now)
    if breached:
        if current.state in (OK, RESOLVED_STATE):
            s = replace(s, state=PENDING, since=now, clear_since=None)
            if rule.for_ <= 0:
                return _fire(s, now)
            return Transition(s)
        if current.state == PENDING:
            if _held(current.since, now, rule.for_):
                return _fire(s, now)
            return Transition(s) if value != current.value else None
        # firing
        s = replace(s, clear_since=None)
        if rule.repeat > 0 and _held(current.notified_at, now, rule.repeat):
            return Transition(replace(s, notified_at=now), REMINDED)
        changed = value != current.value or current.clear_since is not None
        return Transition(s) if changed else None
    if current.state == PENDING:
        return Transition(replace(s, state=OK, since=None))
    if current.state == FIRING:
        clear_since = current.clear_since or now
        if _held(clear_since, now, rule.resolve_after):
            resolved = replace(s, state=RESOLVED_STATE, resolved_at=now, clear_since=None)
            return Transition(resolved, RESOLVED)
        if current.clear_since is None or value != current.value:
            return Transition(replace(s, clear_since=clear_since))
        return None
    return None  # ok or resolved, still clear: nothing to store


def _fire(s: AlertState, now: datetime) -> Transition:
    return Transition(
        replace(s, state=FIRING, fired_at=now, notified_at=now, resolved_at=None), FIRED
    )
