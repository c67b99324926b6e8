"""The store contract, alerts: each rule × plugin's state moves only from the version
it was read at (so two evaluators notify once), and alert events are kept in order
and deleted by age."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from bridge.storage.alerts import AlertEvent, AlertState, AlertStore

from .runs import NOW


def test_a_state_is_stored_and_read_back_with_its_times(store):
    alerts = AlertStore(store)
    first = AlertState("fail", "github", "firing", 0.5, NOW, NOW, NOW, None, None, NOW)
    assert alerts.change(first) is True
    (read,) = alerts.states()
    assert read == replace(first, version=1)


def test_of_two_changes_from_one_version_only_the_first_is_kept(store):
    alerts = AlertStore(store)
    alerts.change(AlertState("fail", "github", "pending", 0.4, NOW, updated_at=NOW))
    (base,) = alerts.states()
    fired = replace(base, state="firing", fired_at=NOW)
    event = AlertEvent(NOW, "fail", "github", "fired", "critical", 0.4, 0.2, "ops")
    assert alerts.change(fired, [event]) is True
    assert alerts.change(replace(base, state="ok"), [event]) is False  # a second evaluator
    # and a second first insert of the same rule × plugin is refused too
    assert alerts.change(AlertState("fail", "github", "pending")) is False
    (now,) = alerts.states()
    assert (now.state, now.version) == ("firing", 2)
    assert [e.kind for e in alerts.events(None, 10)] == ["fired"]  # one event, not two


def test_events_come_newest_first_from_since_and_cleanup_deletes_old_ones(store):
    alerts = AlertStore(store)
    for i, kind in enumerate(["fired", "reminded", "resolved"]):
        alerts.add_event(
            AlertEvent(NOW + timedelta(minutes=i), "r", "é-plugin", kind, detail={"n": i})
        )
    events = alerts.events(NOW + timedelta(minutes=1), 10)
    assert [(e.kind, e.detail, e.plugin) for e in events] == [
        ("resolved", {"n": 2}, "é-plugin"),
        ("reminded", {"n": 1}, "é-plugin"),
    ]
    assert events[0].at == NOW + timedelta(minutes=2)
    assert alerts.delete_events(NOW + timedelta(minutes=1)) == 1
    assert [e.kind for e in alerts.events(None, 10)] == ["resolved", "reminded"]


def test_a_silence_is_kept_per_rule(store):
    alerts = AlertStore(store)
    alerts.silence("fail", NOW + timedelta(hours=2))
    assert alerts.silences(["fail", "other"]) == {"fail": NOW + timedelta(hours=2)}
