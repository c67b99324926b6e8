"""Evaluation from the store, with time driven by the clock the evaluator takes (no
sleeps): a failure burst fires once after `for`, reminds after `repeat`, resolves once
after recovery; `min_runs` holds back a single failure; `no_runs` fires when runs stop;
rollups and raw rows both count; a restart while firing sends nothing again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from storage.runs import finished

from bridge.model import Status
from bridge.storage.alerts import AlertStore
from bridge.storage.rollup import rollup

LOG = {"ops": {"type": "log"}}


def _rule(**over):
    rule = {
        "name": "github-failing",
        "plugin": "github",
        "metric": "failure_rate",
        "window": "10m",
        "threshold": "50%",
        "min_runs": 3,
        "for": "2m",
        "repeat": "1h",
        "severity": "critical",
        "channels": ["ops"],
    }
    return {**rule, **over}


@pytest.fixture
def bridge(make_app, frozen_clock):
    """`bridge(rule, ...)`: an app with those rules and the log channel; `.store`,
    `.runs(n, status, plugin)` stores runs that start now, `.evaluate()` evaluates at
    the frozen clock's time and returns the notifications' (kind, plugin) pairs."""

    class Bridge:
        def __init__(self, *rules):
            self.app = make_app(alerts={"channels": LOG, "rules": list(rules)})
            self.alerts = self.app.extensions["bridge.alerts"]
            self.store = self.app.extensions["bridge.storage"].require()
            self.n = 0

        def runs(self, count, status=Status.COMPLETED, plugin="github", **kw):
            records = []
            for _ in range(count):
                self.n += 1
                error = "plugin_error" if status is not Status.COMPLETED else ""
                records.append(
                    finished(f"r{self.n}", frozen_clock.now, plugin, status, error, **kw)
                )
            self.store.insert_many(records)

        def evaluate(self):
            notes = self.alerts.evaluator(frozen_clock).evaluate()
            return [(n.kind, n.plugin) for n in notes]

        def state(self, plugin="github"):
            states = {s.plugin: s for s in AlertStore(self.store).states()}
            return states[plugin].state if plugin in states else "ok"

    return Bridge


def test_a_failure_burst_fires_once_after_for_reminds_and_resolves_once(bridge, frozen_clock):
    b = bridge(_rule())
    b.runs(4, Status.FAILED)
    assert b.evaluate() == [] and b.state() == "pending"  # `for` has not passed yet
    frozen_clock.advance(60)
    assert b.evaluate() == []
    frozen_clock.advance(60)
    assert b.evaluate() == [("fired", "github")]
    assert b.state() == "firing"
    frozen_clock.advance(30)
    b.runs(1, Status.FAILED)
    assert b.evaluate() == []  # still firing: nothing until `repeat`
    frozen_clock.advance(9 * 60)  # the burst has left the 10-minute window...
    b.runs(3, Status.FAILED)  # ...but failures go on
    assert b.evaluate() == []
    frozen_clock.advance(3600)
    b.runs(3, Status.FAILED)
    assert b.evaluate() == [("reminded", "github")]
    frozen_clock.advance(60)
    b.runs(10)  # recovered: 3 failures of 13
    assert b.evaluate() == []  # clear, but not yet for resolve_after (= for: 2m)
    frozen_clock.advance(120)
    b.runs(5)
    assert b.evaluate() == [("resolved", "github")]
    assert b.state() == "resolved"
    frozen_clock.advance(60)
    assert b.evaluate() == []
    kinds = [e.kind for e in AlertStore(b.store).events(None, 100)]
    assert kinds == ["resolved", "reminded", "fired"]


def test_a_short_flap_is_damped_by_for(bridge, frozen_clock):
    b = bridge(_rule())
    b.runs(3, Status.FAILED)
    assert b.evaluate() == [] and b.state() == "pending"
    frozen_clock.advance(60)
    b.runs(10)  # recovered before `for` passed
    assert b.evaluate() == [] and b.state() == "ok"
    frozen_clock.advance(120)
    assert b.evaluate() == []


def test_min_runs_holds_back_a_single_failure(bridge, frozen_clock):
    b = bridge(_rule(**{"for": "0s"}))
    b.runs(1, Status.FAILED)
    assert b.evaluate() == [] and b.state() == "ok"  # 1 failure of 1 run: 100%, but 1 < 3
    b.runs(2, Status.FAILED)
    assert b.evaluate() == [("fired", "github")]  # with for: 0s, at once


def test_no_runs_fires_when_deliveries_stop_and_resolves_when_they_resume(bridge, frozen_clock):
    b = bridge(
        {
            "name": "github-silent",
            "plugin": "github",
            "metric": "no_runs",
            "window": "1h",
            "channels": ["ops"],
        }
    )
    assert b.evaluate() == []  # never ran: not a sender that stopped
    b.runs(1)
    frozen_clock.advance(3599)
    assert b.evaluate() == []
    frozen_clock.advance(1)
    assert b.evaluate() == [("fired", "github")]
    frozen_clock.advance(600)
    b.runs(1)
    assert b.evaluate() == [("resolved", "github")]


def test_star_rules_judge_each_plugin_separately(bridge, frozen_clock):
    b = bridge(_rule(plugin="*", **{"for": "0s"}))
    b.runs(3, Status.FAILED, plugin="a")
    b.runs(3, plugin="b")
    b.runs(2, Status.TIMEOUT, plugin="c")
    b.runs(1, plugin="c")
    assert sorted(b.evaluate()) == [("fired", "a"), ("fired", "c")]
    assert (b.state("a"), b.state("b"), b.state("c")) == ("firing", "ok", "firing")


def test_rolled_up_hours_and_raw_rows_both_count(bridge, frozen_clock):
    b = bridge(_rule(metric="error_count", window="3h", threshold=6, **{"for": "0s"}))
    b.runs(4, Status.FAILED)
    frozen_clock.advance(2 * 3600)
    rollup(b.store, frozen_clock.now)  # the hour of those 4 is now a rollup
    b.store.delete_batch(frozen_clock.now - timedelta(minutes=30), 1000)  # and raw rows gone
    b.runs(1, Status.FAILED)
    assert b.evaluate() == []  # 5 < 6
    b.runs(1, Status.FAILED)
    assert b.evaluate() == [("fired", "github")]


def test_error_count_of_one_error_type(bridge, frozen_clock):
    b = bridge(
        _rule(metric="error_count", threshold=2, error_type="timeout", min_runs=1, **{"for": "0s"})
    )
    b.runs(5, Status.FAILED)  # plugin errors, not timeouts
    assert b.evaluate() == []
    b.store.insert_many(
        [finished(f"t{i}", frozen_clock.now, "github", Status.TIMEOUT, "timeout") for i in (1, 2)]
    )
    (note,) = b.alerts.evaluator(frozen_clock).evaluate()
    assert (note.kind, note.plugin) == ("fired", "github")
    # The link lists the runs that made it fire: timed out, not 'failed'.
    path = note.link[note.link.index("/api/") :]
    listed = b.app.test_client().get(path).get_json()
    assert sorted(e["id"] for e in listed["executions"]) == ["t1", "t2"]


def test_p95_duration_against_a_duration_threshold(bridge, frozen_clock):
    b = bridge(_rule(metric="p95_duration", threshold="2s", min_runs=5, **{"for": "0s"}))
    b.runs(10, duration_ms=100)
    assert b.evaluate() == []
    b.runs(10, duration_ms=5000)
    assert b.evaluate() == [("fired", "github")]


def test_consecutive_failures_counts_the_newest_in_a_row(bridge, frozen_clock):
    b = bridge(_rule(metric="consecutive_failures", threshold=3, **{"for": "0s"}))
    b.runs(2, Status.FAILED)
    frozen_clock.advance(1)
    b.runs(1)
    frozen_clock.advance(1)
    b.runs(2, Status.FAILED)
    assert b.evaluate() == []  # two in a row since the success
    frozen_clock.advance(1)
    b.runs(1, Status.TIMEOUT)
    assert b.evaluate() == [("fired", "github")]
    frozen_clock.advance(11 * 60)  # past the 10 min window: old failures count no more
    assert b.evaluate() == [("resolved", "github")]


def test_a_restart_while_firing_sends_nothing_again(bridge, frozen_clock):
    b = bridge(_rule(**{"for": "0s"}))
    b.runs(3, Status.FAILED)
    assert b.evaluate() == [("fired", "github")]
    b.app.extensions["bridge.storage"].close()
    again = bridge(_rule(**{"for": "0s"}))  # a new process on the same database
    frozen_clock.advance(60)
    assert again.evaluate() == []
    assert again.state() == "firing"


def test_a_silenced_rule_moves_but_sends_nothing(bridge, frozen_clock):
    b = bridge(_rule(**{"for": "0s"}))
    b.alerts.silence("github-failing", 3600)
    b.runs(3, Status.FAILED)
    assert b.evaluate() == [] and b.state() == "firing"
    (fired, _) = AlertStore(b.store).events(None, 10)  # fired, and the silence itself
    assert fired.kind == "fired" and fired.detail["silenced"] is True


def test_the_log_channel_gets_the_fired_line(bridge, frozen_clock, caplog):
    b = bridge(_rule(**{"for": "0s"}))
    b.runs(3, Status.FAILED)
    with caplog.at_level("WARNING", logger="bridge.alerts"):
        b.evaluate()
        assert b.alerts.delivery.flush(5)
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.alerts"]
    assert any(line.startswith("Alert fired: rule=github-failing plugin=github") for line in lines)


def test_cleanup_deletes_alert_events_older_than_the_retention(make_app, frozen_clock):
    from bridge.scheduler import Scheduler
    from bridge.storage.alerts import AlertEvent

    app = make_app(execution_tracking={"retention_days": 7})
    store = app.extensions["bridge.storage"].require()
    alerts = AlertStore(store)
    for days in (8, 6):
        at = frozen_clock.now - timedelta(days=days)
        alerts.add_event(AlertEvent(at, "r", "p", "fired", detail={"days": days}))
    scheduler: Scheduler = app.extensions["bridge.scheduler"]
    scheduler.run_cleanup()
    assert [e.detail for e in alerts.events(None, 10)] == [{"days": 6}]


def test_new_error_group_fires_for_a_fingerprint_never_seen_before(bridge, frozen_clock):
    """A failure that failed the same way last week is old news; one whose fingerprint
    the history has never had fires (and only that plugin's rule)."""
    b = bridge(
        _rule(metric="new_error_group", window="1h", threshold=1, min_runs=1, **{"for": "0s"})
    )
    b.runs(1, Status.FAILED, error_group="fp-old")
    frozen_clock.advance(7 * 86400)
    b.runs(2, Status.FAILED, error_group="fp-old")
    b.runs(1, Status.FAILED, plugin="other", error_group="fp-other")
    assert b.evaluate() == []
    frozen_clock.advance(300)
    b.runs(1, Status.FAILED, error_group="fp-new")
    assert b.evaluate() == [("fired", "github")]


def test_a_failure_rate_link_lists_the_failures_of_the_window_timeouts_included(
    bridge, frozen_clock
):
    """A run that timed out is a failure: the link shows it beside the failed ones."""
    b = bridge(_rule(plugin="*", **{"for": "0s"}))
    b.runs(1)  # r1: github, every failure of it timed out
    b.runs(3, Status.TIMEOUT)
    b.runs(1, plugin="gitlab")  # r5: gitlab, failed and timed out
    b.runs(1, Status.FAILED, plugin="gitlab")
    b.runs(2, Status.TIMEOUT, plugin="gitlab")
    notes = {n.plugin: n for n in b.alerts.evaluator(frozen_clock).evaluate()}
    assert sorted(notes) == ["github", "gitlab"]

    def listed(plugin):
        link = notes[plugin].link
        answer = b.app.test_client().get(link[link.index("/api/") :]).get_json()
        return sorted(e["id"] for e in answer["executions"])

    assert listed("github") == ["r2", "r3", "r4"]
    assert listed("gitlab") == ["r5", "r6", "r7", "r8"]  # the window's runs
