"""Repeated deliveries: answered from the first run, which the record shows."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from storage.databases import ON_EVERY_BACKEND


def _post(client, log: Path, key: str | None, header: str = "Idempotency-Key", **data):
    headers = {header: key} if key else {}
    return client.post("/api/v1/webhook/counter", json={"log": str(log), **data}, headers=headers)


def _runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("header", ["Idempotency-Key", "X-GitHub-Delivery", "webhook-id"])
def test_a_repeated_delivery_is_replayed_not_run(client, tmp_path, header):
    log = tmp_path / "runs.txt"
    first = _post(client, log, "delivery-1", header)
    second = _post(client, log, "delivery-1", header)
    assert first.status_code == second.status_code == 200
    assert _runs(log) == 1
    body = second.get_json()
    assert body["replayed"] is True and second.headers["Idempotent-Replayed"] == "true"
    assert body["execution_id"] == first.get_json()["execution_id"]
    assert body["data"] == first.get_json()["data"]
    assert "replayed" not in first.get_json()
    record = client.get(f"/api/v1/executions/{body['execution_id']}").get_json()["execution"]
    assert record["idempotency_key"] == "delivery-1" and record["replays"] == 1
    assert client.get("/api/v1/executions").get_json()["total"] == 1


def test_other_keys_and_other_plugins_run(client, tmp_path):
    log = tmp_path / "runs.txt"
    _post(client, log, "a")
    _post(client, log, "b")
    _post(client, log, None)
    _post(client, log, None)
    assert _runs(log) == 4
    ok = client.post("/api/v1/webhook/ok", json={}, headers={"Idempotency-Key": "a"})
    assert ok.status_code == 200 and "replayed" not in ok.get_json()


@ON_EVERY_BACKEND
def test_a_failed_first_run_runs_again_on_redelivery(client, tmp_path):
    log = tmp_path / "runs.txt"
    assert _post(client, log, "k", fail=True).status_code == 500
    retry = _post(client, log, "k")
    assert retry.status_code == 200 and "replayed" not in retry.get_json()
    assert _runs(log) == 2
    again = _post(client, log, "k")
    assert again.get_json()["replayed"] is True and _runs(log) == 2


@ON_EVERY_BACKEND
def test_the_window_expires(make_app, tmp_path, frozen_clock):
    client = make_app(idempotency={"window": "10m"}).test_client()
    log = tmp_path / "runs.txt"
    _post(client, log, "k")
    frozen_clock.advance(599)
    assert _post(client, log, "k").get_json()["replayed"] is True
    frozen_clock.advance(2)
    again = _post(client, log, "k")
    assert again.status_code == 200 and "replayed" not in again.get_json()
    assert _runs(log) == 2


@ON_EVERY_BACKEND
def test_simultaneous_duplicates_run_once(client, tmp_path):
    log = tmp_path / "runs.txt"
    answers: list = []
    barrier = threading.Barrier(4)

    def deliver() -> None:
        barrier.wait(5)
        answers.append(_post(client, log, "same", seconds=0.3))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert [a.status_code for a in answers] == [200] * 4
    assert _runs(log) == 1
    assert len({a.get_json()["execution_id"] for a in answers}) == 1
    assert sum(1 for a in answers if a.get_json().get("replayed")) == 3


def test_invalid_key_is_400(client, tmp_path):
    response = _post(client, tmp_path / "runs.txt", "x" * 201)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.get_json()["message"]
    assert not (tmp_path / "runs.txt").exists()


def test_disabled_runs_every_delivery(make_app, tmp_path):
    client = make_app(idempotency={"enabled": False}).test_client()
    log = tmp_path / "runs.txt"
    _post(client, log, "k")
    _post(client, log, "k")
    assert _runs(log) == 2


@ON_EVERY_BACKEND
def test_a_repeat_after_cleanup_took_the_record_is_answered_from_the_claim(client, tmp_path):
    log = tmp_path / "runs.txt"
    first = _post(client, log, "cleaned-1")
    cleaned = client.delete("/api/v1/executions/cleanup?older_than_days=0").get_json()
    assert cleaned["deleted"] == 1
    assert client.get(f"/api/v1/executions/{first.get_json()['execution_id']}").status_code == 404
    again = _post(client, log, "cleaned-1")  # at once: no wait for a record that is gone
    assert again.status_code == 200 and again.get_json()["replayed"] is True
    assert again.get_json()["data"] == first.get_json()["data"]
    later = client.post(
        "/api/v1/webhook/counter?async=true",
        json={"log": str(log)},
        headers={"Idempotency-Key": "cleaned-1"},
    )
    assert later.status_code == 202 and later.get_json()["replayed"] is True
    assert _runs(log) == 1


def test_a_replay_answers_what_the_first_caller_got_without_output_tracking(make_app, tmp_path):
    client = make_app(execution_tracking={"track_output": False}).test_client()
    log = tmp_path / "runs.txt"
    first = _post(client, log, "untracked-1")
    again = _post(client, log, "untracked-1")
    assert first.get_json()["data"] == {"ran": True}
    assert again.get_json()["replayed"] is True and again.get_json()["data"] == {"ran": True}
    record = client.get(f"/api/v1/executions/{first.get_json()['execution_id']}").get_json()
    assert record["execution"]["output"] == ""  # the history still keeps no output
