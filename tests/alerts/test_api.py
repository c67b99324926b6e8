"""GET /api/v1/alerts (rules with each plugin's state, the firing ones first), the
events history, a test notification and silencing a rule (admin only), and
`flask bridge alerts`; bad input is a 4xx in the API's error shape."""

from __future__ import annotations

import pytest
from storage.runs import finished

from bridge.model import Status

READER = "reader-key-0123456789"
ADMIN = "admin-key-0123456789ab"
RULE = {
    "name": "github-failing",
    "plugin": "github",
    "metric": "failure_rate",
    "window": "10m",
    "threshold": "50%",
    "severity": "critical",
    "channels": ["ops"],
}


@pytest.fixture
def app(make_app, frozen_clock):
    return make_app(
        alerts={"channels": {"ops": {"type": "log"}}, "rules": [RULE]},
        auth={
            "api_keys": [
                {"name": "dash", "key": READER, "scopes": ["read"]},
                {"name": "ops", "key": ADMIN, "scopes": ["admin"]},
            ]
        },
    )


def _fire(app, clock):
    store = app.extensions["bridge.storage"].require()
    store.insert_many(
        [finished(f"r{i}", clock.now, "github", Status.FAILED, "plugin_error") for i in range(2)]
    )
    app.extensions["bridge.alerts"].evaluator(clock).evaluate()


def test_the_list_shows_rules_states_and_firing_alerts(app, frozen_clock):
    client = app.test_client()
    r = client.get("/api/v1/alerts", headers={"X-API-Key": READER})
    assert r.status_code == 200
    assert r.json["firing"] == [] and r.json["enabled"] is True
    (rule,) = r.json["rules"]
    assert rule["rule"]["name"] == "github-failing" and rule["rule"]["threshold"] == 0.5
    assert rule["states"] == [] and rule["silenced_until"] is None
    _fire(app, frozen_clock)
    r = client.get("/api/v1/alerts", headers={"X-API-Key": READER})
    (firing,) = r.json["firing"]
    assert firing["rule"]["name"] == "github-failing" and firing["rule"]["severity"] == "critical"
    assert firing["state"]["plugin"] == "github" and firing["state"]["state"] == "firing"
    assert firing["state"]["value"] == 1.0
    assert firing["state"]["fired_at"] == "2025-01-15T12:00:00.000000Z"
    (event,) = client.get("/api/v1/alerts/events", headers={"X-API-Key": READER}).json["events"]
    assert (event["kind"], event["rule"], event["plugin"]) == ("fired", "github-failing", "github")
    assert event["value"] == 1.0 and event["threshold"] == 0.5


def test_events_since_and_bad_queries(app, frozen_clock):
    client = app.test_client()
    _fire(app, frozen_clock)
    h = {"X-API-Key": READER}
    later = client.get("/api/v1/alerts/events?since=2025-01-15T12:00:01Z", headers=h)
    assert later.status_code == 200 and later.json["events"] == []
    for query in ("since=yesterday", "limit=0", "limit=abc", "colour=red"):
        r = client.get(f"/api/v1/alerts/events?{query}", headers=h)
        assert r.status_code == 422 and r.json["code"] == 422 and "errors" in r.json


def test_test_and_silence_need_the_admin_scope(app):
    client = app.test_client()
    for path in (
        "/api/v1/alerts/github-failing/test",
        "/api/v1/alerts/github-failing/silence?for=2h",
    ):
        assert client.post(path).status_code == 401
        r = client.post(path, headers={"X-API-Key": READER})
        assert r.status_code == 403 and "admin" in r.json["message"]


def test_silence_for_two_hours_then_lift_it(app, frozen_clock):
    client = app.test_client()
    h = {"X-API-Key": ADMIN}
    r = client.post("/api/v1/alerts/github-failing/silence?for=2h", headers=h)
    assert r.status_code == 200
    assert r.json == {"rule": "github-failing", "silenced_until": "2025-01-15T14:00:00.000000Z"}
    listed = client.get("/api/v1/alerts", headers=h).json["rules"][0]
    assert listed["silenced_until"] == "2025-01-15T14:00:00.000000Z"
    _fire(app, frozen_clock)  # fires while silenced: stored, not sent
    events = client.get("/api/v1/alerts/events", headers=h).json["events"]
    assert [e["kind"] for e in events] == ["fired", "silenced"]
    assert events[0]["detail"]["silenced"] is True
    r = client.post("/api/v1/alerts/github-failing/silence?for=0s", headers=h)
    assert r.json["silenced_until"] is None
    assert client.get("/api/v1/alerts", headers=h).json["rules"][0]["silenced_until"] is None


BAD = [
    ("/api/v1/alerts/nope/silence?for=2h", 404),
    ("/api/v1/alerts/nope/test", 404),
    ("/api/v1/alerts/github-failing/silence", 422),
    ("/api/v1/alerts/github-failing/silence?for=forever", 422),
    ("/api/v1/alerts/github-failing/silence?for=9999h", 422),
    ("/api/v1/alerts/github-failing/silence?for=nan", 422),
    ("/api/v1/alerts/github-failing/silence?for=-1h", 422),
    ("/api/v1/alerts/github-failing/silence?for=1h&colour=red", 422),
]


def test_bad_requests_are_4xx_in_the_error_shape(app):
    client = app.test_client()
    for path, status in BAD:
        r = client.post(path, headers={"X-API-Key": ADMIN})
        assert (r.status_code, r.json["code"]) == (status, status), path
        assert r.json["message"]
    listed = client.get("/api/v1/alerts", headers={"X-API-Key": ADMIN}).json
    assert listed["rules"][0]["silenced_until"] is None  # none of them silenced the rule


def test_the_test_notification_goes_through_the_rules_channels(app, caplog):
    client = app.test_client()
    with caplog.at_level("WARNING", logger="bridge.alerts"):
        r = client.post("/api/v1/alerts/github-failing/test", headers={"X-API-Key": ADMIN})
    assert r.status_code == 200
    assert r.json == {
        "rule": "github-failing",
        "outcomes": [{"channel": "ops", "ok": True, "attempts": 1, "error": ""}],
    }
    assert any(m.getMessage().startswith("Alert test: rule=github-failing") for m in caplog.records)
    events = client.get("/api/v1/alerts/events", headers={"X-API-Key": ADMIN}).json["events"]
    assert events[0]["kind"] == "test"


def test_without_a_store_the_list_is_503(make_app):
    app = make_app(
        execution_tracking={"enabled": False},
        alerts={"channels": {"ops": {"type": "log"}}, "rules": [RULE]},
    )
    r = app.test_client().get("/api/v1/alerts")
    assert r.status_code == 503 and r.json["code"] == 503


def test_the_cli_shows_rules_states_and_events(app, frozen_clock):
    _fire(app, frozen_clock)
    out = app.test_cli_runner().invoke(args=["bridge", "alerts", "--events", "5"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == "github-failing: failure_rate of github (critical) -> ops"
    assert lines[1] == "  github: firing since 2025-01-15T12:00:00.000000Z (value 1.0)"
    assert "Firing: 1" in lines
    assert lines[-1] == "2025-01-15T12:00:00.000000Z fired github-failing github ops"
