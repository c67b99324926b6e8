"""A server database that goes away while the bridge serves, or is away when it starts:
webhooks still answer, runs go to the spool, /health says degraded with the spool's
depth, the executions API answers 503, and once the database is back the spool is
replayed into it, every run once, and the bridge is healthy again.

The database goes away for this test's bridge only (tests/storage/outages.py): its
sessions are killed and new ones refused, as when the server stops or the network is
cut, without stopping the shared servers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge import start_services

from .outages import Outage, outage


@pytest.fixture(params=["postgresql", "mysql"])
def cut(request: pytest.FixtureRequest) -> Any:
    with outage(request.param) as switch:
        try:
            yield switch
        finally:
            switch.restore()


def _app(make_app: Callable[..., Flask], cut: Outage, tmp_path: Any) -> Flask:
    return make_app(
        storage={
            "type": cut.backend,
            cut.backend: cut.section,
            "spool_path": str(tmp_path / "spool"),
        }
    )


def _until(check: Callable[[], bool], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"still not {what} after {within:g}s"
        time.sleep(0.1)


def _send(client: FlaskClient, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        answer = client.post(f"/api/v1/webhook/ok?batch={tag}", json={"i": i, "tag": tag})
        assert answer.status_code == 200, answer.get_json()
        ids.append(answer.get_json()["execution_id"])
    return ids


def _stored(cut: Outage) -> dict[str, tuple[str, int]]:
    rows = cut.rows("SELECT id, status FROM executions")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row[0]] = counts.get(row[0], 0) + 1
    return {row[0]: (row[1], counts[row[0]]) for row in rows}


def _storage_check(client: FlaskClient) -> dict[str, Any]:
    return client.get("/health").get_json()["checks"]["storage"]


def _spool_depth(client: FlaskClient) -> int:
    return _storage_check(client)["spool"]["depth"]


def test_runs_answered_while_the_database_is_away_reach_it_once_it_is_back(make_app, cut, tmp_path):
    app = _app(make_app, cut, tmp_path)
    start_services(app)
    client = app.test_client()
    before = _send(client, 3, "before")

    cut.cut()
    during = _send(client, 12, "during")
    storage = _storage_check(client)
    assert storage["status"] == "degraded"
    assert "unreachable" in storage["message"]
    assert storage["spool"]["depth"] >= 12 and storage["spool"]["oldest_age_seconds"] >= 0
    listed = client.get("/api/v1/executions")
    assert listed.status_code == 503
    body = listed.get_json()
    assert body["code"] == 503 and "unreachable" in body["message"]
    assert body["spool"]["depth"] >= 12
    assert client.get("/api/v1/executions/stats").status_code == 503

    cut.restore()
    _until(lambda: _spool_depth(client) == 0, "replayed")
    _until(lambda: _storage_check(client)["status"] == "healthy", "healthy")
    stored = _stored(cut)
    for execution_id in before + during:
        assert stored[execution_id] == ("completed", 1), execution_id
    assert len(stored) == 15
    listed = client.get("/api/v1/executions?limit=100")
    assert listed.status_code == 200 and listed.get_json()["total"] == 15
    info = client.get("/api/v1/executions/storage/info").get_json()
    assert info["spool"]["depth"] == 0 and info["spool"]["replayed"] >= 12


def test_a_database_away_at_start_up_does_not_stop_the_bridge(make_app, cut, tmp_path):
    cut.cut()
    app = _app(make_app, cut, tmp_path)
    start_services(app)
    client = app.test_client()
    during = _send(client, 5, "startup")
    storage = _storage_check(client)
    assert storage["status"] == "degraded"
    assert storage["enabled"] is False and storage["spool"]["depth"] >= 5
    assert f"pw-{cut.name}" not in str(storage)
    assert client.get("/api/v1/executions").status_code == 503

    cut.restore()
    _until(lambda: app.extensions["bridge.storage"].store is not None, "connected")
    _until(lambda: _spool_depth(client) == 0, "replayed")
    stored = _stored(cut)
    assert {i: stored[i] for i in during} == {i: ("completed", 1) for i in during}
    assert client.get("/api/v1/executions").get_json()["total"] == 5
