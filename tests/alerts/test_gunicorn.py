"""Alerts end to end: real runs through gunicorn (two workers, one leader evaluating),
real receivers on loopback. A failure burst fires once, a restart while firing sends
nothing again, recovery resolves once; min_runs holds back a single failure; no_runs
fires when deliveries stop; a receiver that is down or hangs delays nothing else.

The time here is real (gunicorn runs the evaluator with the wall clock), so windows
and intervals are short; nothing is slept past: each wait is for an evaluation that
started after the runs it must see, read from /health."""

from __future__ import annotations

import base64
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from .receivers import start_http_receiver

pytestmark = pytest.mark.slow

SECRET = "whsec_" + base64.b64encode(b"thirty-two bytes of alert secret").decode()


def _alerts(receiver_url: str, *rules: dict, **channels: dict) -> dict:
    return {
        "evaluation_interval": "0.2s",
        "delivery_timeout": "1s",
        "delivery_attempts": 2,
        "delivery_backoff": "0.1s",
        "channels": {
            "hook": {"type": "webhook", "url": receiver_url, "secret": "env:ALERT_SECRET"},
            **channels,
        },
        "rules": list(rules),
    }


RULE = {
    "name": "counter-failing",
    "plugin": "counter",
    "metric": "failure_rate",
    "window": "10m",
    "threshold": "50%",
    "min_runs": 3,
    "resolve_after": "0s",
    "severity": "critical",
    "channels": ["hook"],
}


def evaluated_after(servers, mark: datetime, timeout: float = 20.0) -> None:
    """Wait until the leader (a worker of one of `servers`) has run an evaluation that
    started after `mark` (the job's record is written when it ends)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for server in servers:
            health = requests.get(f"{server.base}/health", timeout=5).json()
            scheduler = health.get("checks", {}).get("scheduler", {})
            last = scheduler.get("last_runs", {}).get("alerts")
            if last and datetime.fromisoformat(last["at"]) > mark:
                return
        time.sleep(0.05)
    raise AssertionError(f"no evaluation after {mark} within {timeout}s")


def settled(*servers) -> None:
    """Two evaluations that started after now: whatever the runs so far call for is sent."""
    evaluated_after(servers, datetime.now(UTC))
    evaluated_after(servers, datetime.now(UTC))


def runs(server, tmp_path: Path, count: int, fail: bool, plugin: str = "counter") -> None:
    for _ in range(count):
        r = requests.post(
            f"{server.base}/api/v1/webhook/{plugin}",
            json={"log": str(tmp_path / "runs.log"), "fail": fail},
            timeout=10,
        )
        assert r.status_code == (500 if fail else 200), r.text


def events(server) -> list[str]:
    answer = requests.get(f"{server.base}/api/v1/alerts/events", timeout=5).json()
    return [e["kind"] for e in reversed(answer["events"])]


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setenv("ALERT_SECRET", SECRET)
    receiver = start_http_receiver()
    yield receiver
    if receiver.hang is not None:
        receiver.hang.set()
    receiver.server.shutdown()
    receiver.server.server_close()


def test_a_burst_fires_once_survives_a_restart_and_resolves_once(gunicorn, hook, tmp_path):
    config = {"alerts": _alerts(hook.url, RULE)}
    with gunicorn(**config) as server:
        runs(server, tmp_path, 1, fail=True)
        settled(server)
        assert hook.received == []  # 1 failure of 1 run: min_runs holds it back
        runs(server, tmp_path, 2, fail=True)
        (got,) = hook.wait_for(1)
        payload = Webhook(SECRET).verify(got.body, got.headers)
        assert (payload["event"], payload["plugin"], payload["value"]) == ("fired", "counter", 1.0)
        assert "plugin=counter" in payload["link"] and "status=failed" in payload["link"]
        settled(server)
        assert len(hook.received) == 1  # evaluated again, with two workers: sent once
        listed = requests.get(f"{server.base}/api/v1/alerts", timeout=5).json()
        assert [f["state"]["plugin"] for f in listed["firing"]] == ["counter"]
    with gunicorn(**config) as server:  # a restart while firing
        settled(server)
        assert len(hook.received) == 1
        runs(server, tmp_path, 4, fail=False)  # 3 failures of 7: below 50%
        resolved = hook.wait_for(2)[1]
        assert Webhook(SECRET).verify(resolved.body, resolved.headers)["event"] == "resolved"
        settled(server)
        assert len(hook.received) == 2
        assert events(server) == ["fired", "resolved"]


def test_no_runs_fires_when_deliveries_stop(gunicorn, hook, tmp_path):
    rule = {
        "name": "counter-silent",
        "plugin": "counter",
        "metric": "no_runs",
        "window": "1s",
        "channels": ["hook"],
    }
    with gunicorn(alerts=_alerts(hook.url, rule)) as server:
        runs(server, tmp_path, 1, fail=False)
        (got,) = hook.wait_for(1, timeout=20)  # once the last run is 1 s old
        payload = Webhook(SECRET).verify(got.body, got.headers)
        assert (payload["event"], payload["metric"]) == ("fired", "no_runs")
        assert payload["value"] >= 1.0 and payload["threshold"] == 1.0
        runs(server, tmp_path, 1, fail=False)  # deliveries resume
        assert hook.wait_for(2)[1].json["event"] == "resolved"


def test_a_hanging_or_down_receiver_delays_nothing_else(gunicorn, hook, tmp_path):
    hook.hang = threading.Event()  # the webhook channel's receiver never answers
    chat = start_http_receiver()
    try:
        rule = {**RULE, "min_runs": 1, "channels": ["hook", "down", "chat"]}
        channels = {
            # Nothing listens; the path is a Slack URL's token, which no error may show.
            "down": {"type": "slack", "url": "http://127.0.0.1:9/services/T0/B0/SECRETTOKEN"},
            "chat": {"type": "slack", "url": chat.url},
        }
        with gunicorn(alerts=_alerts(hook.url, rule, **channels)) as server:
            runs(server, tmp_path, 1, fail=True)
            assert hook.wait_for(1)  # the hanging receiver holds the webhook channel...
            (message,) = chat.wait_for(1)  # ...while Slack still gets its message
            assert "counter-failing" in message.json["text"]
            runs(server, tmp_path, 2, fail=False, plugin="ok")  # webhooks are still answered
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                failed = [
                    e
                    for e in requests.get(f"{server.base}/api/v1/alerts/events", timeout=5).json()[
                        "events"
                    ]
                    if e["kind"] == "delivery_failed"
                ]
                if len(failed) == 2:
                    break
                time.sleep(0.1)
            assert sorted(e["channel"] for e in failed) == ["down", "hook"]
            by_channel = {e["channel"]: e["detail"] for e in failed}
            assert by_channel["down"]["attempts"] == 2 and "refused" in by_channel["down"]["error"]
            assert "SECRETTOKEN" not in by_channel["down"]["error"]
            assert "SECRETTOKEN" not in server.log.read_text()
            assert "timed out" in by_channel["hook"]["error"]
            assert len(hook.received) == 2  # the hanging receiver was tried twice
    finally:
        chat.server.shutdown()
        chat.server.server_close()


def test_two_hosts_on_one_postgresql_database_send_each_notification_once(gunicorn, hook, tmp_path):
    from storage.databases import postgresql_schema

    with postgresql_schema() as section:
        config = {
            "storage": {"type": "postgresql", "postgresql": section},
            "alerts": _alerts(hook.url, {**RULE, "resolve_after": "0s"}),
        }
        with gunicorn(**config) as a, gunicorn(host="b", **config) as b:
            runs(a, tmp_path, 2, fail=True)
            runs(b, tmp_path, 2, fail=True)
            (got,) = hook.wait_for(1)
            assert got.json["event"] == "fired"
            settled(a, b)
            settled(a, b)
            assert len(hook.received) == 1
            runs(b, tmp_path, 5, fail=False)
            assert [r.json["event"] for r in hook.wait_for(2)] == ["fired", "resolved"]
            settled(a, b)
            assert len(hook.received) == 2


def test_runs_through_gunicorn_fire_after_for_remind_after_repeat_resolve_once(
    gunicorn, hook, tmp_path, make_app, frozen_clock
):
    """The runs come through gunicorn; the evaluator runs here, on the same database,
    with the clock the test drives (the server evaluates no rules of its own)."""
    rule = {**RULE, "window": "2h", "for": "2m", "repeat": "1h", "resolve_after": "1m"}
    frozen_clock.set(datetime.now(UTC))
    with gunicorn() as server:
        evaluator_app = make_app(
            storage={"sqlite": {"database_path": str(server.db)}},
            alerts=_alerts(hook.url, rule),
        )
        alerts = evaluator_app.extensions["bridge.alerts"]

        def evaluate() -> list[str]:
            sent = [n.kind for n in alerts.evaluator(frozen_clock).evaluate()]
            assert alerts.delivery.flush(10)
            return sent

        runs(server, tmp_path, 3, fail=True)
        assert evaluate() == []  # pending: `for` has not passed
        frozen_clock.advance(119)
        assert evaluate() == []
        frozen_clock.advance(1)
        assert evaluate() == ["fired"]
        frozen_clock.advance(30 * 60)
        assert evaluate() == []
        frozen_clock.advance(30 * 60)
        assert evaluate() == ["reminded"]
        runs(server, tmp_path, 10, fail=False)  # recovered: 3 failures of 13
        assert evaluate() == []  # clear, but not yet for resolve_after
        frozen_clock.advance(60)
        assert evaluate() == ["resolved"]
        frozen_clock.advance(60)
        assert evaluate() == []
    received = [Webhook(SECRET).verify(r.body, r.headers)["event"] for r in hook.received]
    assert received == ["fired", "reminded", "resolved"]
