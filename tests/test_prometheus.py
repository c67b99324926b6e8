"""GET /metrics: parsed with prometheus_client's own parser, against a known sequence
of runs; in one process here, across two real gunicorn workers in the slow test."""

from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_runs_refusals_and_durations(make_app):
    client = make_app(runner={"max_attempts": 1}).test_client()
    for _ in range(3):
        client.post("/api/v1/webhook/ok", json={})
    client.post("/api/v1/webhook/raising", json={})
    client.post("/api/v1/webhook/ok", json={}, headers={"Idempotency-Key": "k1"})
    client.post("/api/v1/webhook/ok", json={}, headers={"Idempotency-Key": "k1"})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    s = _samples(r.get_data(as_text=True))
    ok = {"plugin": "ok", "status": "completed", "error_type": "none"}
    assert _value(s, "bridge_runs_total", **ok) == 4
    failed = {"plugin": "raising", "status": "failed", "error_type": "validation_error"}
    assert _value(s, "bridge_runs_total", **failed) == 1
    assert _value(s, "bridge_run_duration_seconds_count", plugin="ok") == 4
    assert _value(s, "bridge_run_duration_seconds_bucket", plugin="ok", le="+Inf") == 4
    assert _value(s, "bridge_runs_in_flight") == 0
    assert _value(s, "bridge_idempotent_replays_total") == 1
    assert ("bridge_runner_saturated_total", ()) in s
    assert ("bridge_storage_write_errors_total", ()) in s


def test_metrics_need_the_read_scope_once_keys_exist_and_can_be_turned_off(make_app):
    keys = [{"name": "r", "key": "r" * 32, "scopes": ["read"]}]
    client = make_app(auth={"api_keys": keys}).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": "r" * 32}).status_code == 200
    remote = make_app().test_client()
    r = remote.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert r.status_code == 403 and r.get_json()["code"] == 403
    off = make_app(metrics={"enabled": False}).test_client()
    assert off.get("/metrics").status_code == 404


@pytest.mark.slow
def test_metrics_add_up_across_two_gunicorn_workers(gunicorn):
    with gunicorn() as server:
        for i in range(40):  # a new connection each: either worker takes it
            requests.post(f"{server.base}/api/v1/webhook/ok", json={"i": i}, timeout=10)
        for _ in range(5):
            requests.post(f"{server.base}/api/v1/webhook/raising", json={}, timeout=10)
        # Each worker's own count (the stats' realtime part is per process)...
        own = set()
        for _ in range(30):
            stats = requests.get(f"{server.base}/api/v1/executions/stats/ok", timeout=10).json()
            own.add(stats["realtime"]["total_executions"])
        assert (len(own) == 2 and sum(own) == 40) or own == {20}, own
        # ...and every scrape, whichever worker answers it, adds both up.
        for _ in range(6):
            s = _samples(requests.get(f"{server.base}/metrics", timeout=10).text)
            ok = {"plugin": "ok", "status": "completed", "error_type": "none"}
            assert _value(s, "bridge_runs_total", **ok) == 40
            failed = {"plugin": "raising", "status": "failed", "error_type": "validation_error"}
            assert _value(s, "bridge_runs_total", **failed) == 5
            assert _value(s, "bridge_run_duration_seconds_count", plugin="ok") == 40
            assert _value(s, "bridge_runs_in_flight") == 0
