"""GET /api/v1/executions/timeseries and GET /api/v1/access: what the dashboard reads."""

from __future__ import annotations

import pytest

READER = "reader-key-0123456789"
WRITER = "writer-key-0123456789"


def test_a_day_of_hours_counts_the_runs_of_this_hour(client, frozen_clock):
    for plugin in ("ok", "ok", "raising"):
        client.post(f"/api/v1/webhook/{plugin}", json={})
    frozen_clock.advance(90)
    body = client.get("/api/v1/executions/timeseries?grain=hour").get_json()
    assert body["grain"] == "hour" and len(body["buckets"]) == 25  # since is floored
    assert body["since"] == "2025-01-14T12:00:00.000000Z"
    assert body["until"] == "2025-01-15T12:01:30.000000Z"
    assert [b["total_executions"] for b in body["buckets"]] == [0] * 24 + [3]
    last = body["buckets"][-1]
    assert last["start"] == "2025-01-15T12:00:00.000000Z"
    assert (last["completed_executions"], last["failed_executions"]) == (2, 1)
    assert last["error_types"] == {"validation_error": 1}
    assert body["summary"]["success_rate"] == pytest.approx(66.67)
    ok = next(p for p in body["plugins"] if p["plugin"] == "ok")
    assert ok["summary"]["total_executions"] == 2
    assert ok["last_seen"].startswith("2025-01-15T12:00:00")
    assert ok["summary"]["p99_duration"] >= ok["summary"]["p50_duration"] > 0


def test_the_plugin_filter_and_the_previous_window(client, frozen_clock):
    client.post("/api/v1/webhook/raising", json={})
    frozen_clock.advance(3 * 3600)
    client.post("/api/v1/webhook/ok", json={})
    frozen_clock.advance(1)
    now = client.get(
        "/api/v1/executions/timeseries?since=2025-01-15T14:00:00Z&plugin=ok"
    ).get_json()
    assert now["summary"]["total_executions"] == 1 and now["plugin"] == "ok"
    assert [p["plugin"] for p in now["plugins"]] == ["ok"]
    before = client.get(
        "/api/v1/executions/timeseries?since=2025-01-15T11:00:00Z&until=2025-01-15T14:00:00Z"
    ).get_json()
    assert before["summary"]["failed_executions"] == 1
    assert before["summary"]["total_executions"] == 1


@pytest.mark.parametrize(
    "query, field",
    [
        ("grain=week", "grain"),
        ("grain=minute&since=2025-01-10T00:00:00Z", "grain"),  # minutes cover one day
        ("grain=hour&since=2024-01-01T00:00:00Z", "grain"),  # more than 1500 buckets
        ("since=2025-01-15T12:00:00Z&until=2025-01-15T11:00:00Z", "until"),
        ("since=yesterday", "since"),
        ("until=0001-01-01T01:00:00Z", "until"),
        ("plugin=", "plugin"),
        ("days=7", "days"),
    ],
)
def test_bad_ranges_are_422_naming_the_field(client, frozen_clock, query, field):
    response = client.get(f"/api/v1/executions/timeseries?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


@pytest.fixture
def keyed(make_app):
    app = make_app(
        auth={
            "api_keys": [
                {"name": "viewer", "key": READER, "scopes": ["read"]},
                {"name": "operator", "key": WRITER, "scopes": ["write"]},
            ]
        }
    )
    return app.test_client()


def test_access_names_the_key_and_its_scopes(keyed):
    viewer = keyed.get("/api/v1/access", headers={"Authorization": f"Bearer {READER}"})
    assert viewer.get_json() == {"key": "viewer", "scopes": ["read"], "local_only": False}
    operator = keyed.get("/api/v1/access", headers={"X-API-Key": WRITER})
    assert operator.get_json()["scopes"] == ["read", "write"]


def test_access_refuses_a_wrong_key_in_the_error_shape(keyed):
    response = keyed.get("/api/v1/access", headers={"Authorization": "Bearer not-a-key-at-all"})
    assert response.status_code == 401
    assert response.get_json()["message"] == "The API key is not valid"
    assert keyed.get("/api/v1/access").status_code == 401


def test_without_keys_local_clients_get_every_scope_and_others_none(client):
    assert client.get("/api/v1/access").get_json() == {
        "key": None,
        "scopes": ["read", "write", "admin"],
        "local_only": True,
    }
    remote = client.get("/api/v1/access", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 403
    relayed = client.get("/api/v1/access", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 403
