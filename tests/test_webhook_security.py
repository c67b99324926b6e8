"""Signed webhooks, per-plugin concurrency limits and redaction, through the HTTP API."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

SECRET = "It's a Secret to Everybody"


def _github(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture
def signed_client(make_app, monkeypatch):
    monkeypatch.setenv("TEST_GITHUB_SECRET", SECRET)
    return make_app().test_client()


def test_a_valid_github_signature_reaches_the_plugin(signed_client):
    body = json.dumps({"ref": "main"}).encode()
    response = signed_client.post("/api/v1/webhook/signed", data=body, headers=_github(body))
    assert response.status_code == 200
    assert response.get_json()["data"]["got"] == {"ref": "main"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "garbage"},
    ],
)
def test_a_bad_signature_is_401_recorded_without_payload(signed_client, headers):
    body = json.dumps({"password": "hunter2", "ref": "main"}).encode()
    response = signed_client.post(
        "/api/v1/webhook/signed", data=body, headers={"Content-Type": "application/json", **headers}
    )
    assert response.status_code == 401
    error = response.get_json()
    assert error["code"] == 401 and error["message"].startswith("Webhook signature rejected")
    page = signed_client.get("/api/v1/executions?plugin=signed").get_json()
    assert page["total"] == 1
    record = page["executions"][0]
    assert record["status"] == "failed" and record["error_type"] == "unauthorized"
    assert record["input"] == "" and "hunter2" not in json.dumps(record)
    assert json.loads(record["metadata"])["rejected"] == "signature"
    realtime = signed_client.get("/api/v1/executions/stats/signed").get_json()["realtime"]
    assert realtime["failed_executions"] == 1
    assert realtime["error_types"] == {"unauthorized": 1}


def test_a_rejected_delivery_with_a_lone_surrogate_tag_is_still_recorded(signed_client):
    response = signed_client.post(
        "/api/v1/webhook/signed",
        data=b'{"ref": "main"}',
        headers={"Content-Type": "application/json", "X-Bridge-Tags": '{"k": "\\udfff"}'},
    )
    assert response.status_code == 401
    page = signed_client.get("/api/v1/executions?plugin=signed").get_json()
    assert page["total"] == 1
    assert json.loads(page["executions"][0]["tags"]) == {"k": "\udfff"}


def test_a_body_changed_after_signing_is_rejected(signed_client):
    body = json.dumps({"amount": 1}).encode()
    headers = _github(body)
    response = signed_client.post(
        "/api/v1/webhook/signed", data=body.replace(b"1", b"9"), headers=headers
    )
    assert response.status_code == 401


def test_a_missing_secret_makes_the_plugin_unavailable_not_open(make_app, monkeypatch):
    monkeypatch.delenv("TEST_GITHUB_SECRET", raising=False)
    client = make_app().test_client()
    body = b"{}"
    response = client.post("/api/v1/webhook/signed", data=body, headers=_github(body))
    assert response.status_code == 503
    # The reason is for the operator (log, key-protected plugin list), not the caller.
    assert "TEST_GITHUB_SECRET" not in response.get_json()["message"]
    listed = client.get("/api/v1/plugins/signed").get_json()
    assert listed["is_available"] is False and SECRET not in json.dumps(listed)
    assert "TEST_GITHUB_SECRET" in listed["error"]


def test_config_signature_stripe_with_timestamp(make_app, monkeypatch):
    monkeypatch.setenv("STRIPE_SECRET_FOR_TESTS", "whsec_stripe_test_secret")
    client = make_app(
        plugins={
            "settings": {
                "ok": {"signature": {"type": "stripe", "secret": "env:STRIPE_SECRET_FOR_TESTS"}}
            }
        }
    ).test_client()
    body = b'{"id": "evt_1"}'

    def header(t: int) -> str:
        mac = hmac.new(b"whsec_stripe_test_secret", f"{t}.".encode() + body, hashlib.sha256)
        return f"t={t},v1={mac.hexdigest()}"

    now = int(time.time())
    fresh = client.post(
        "/api/v1/webhook/ok",
        data=body,
        headers={"Stripe-Signature": header(now), "Content-Type": "application/json"},
    )
    assert fresh.status_code == 200
    stale = client.post(
        "/api/v1/webhook/ok",
        data=body,
        headers={"Stripe-Signature": header(now - 3600), "Content-Type": "application/json"},
    )
    assert stale.status_code == 401 and "tolerance" in stale.get_json()["message"]


def test_a_svix_delivery_is_verified_and_its_redelivery_replayed(make_app, monkeypatch, tmp_path):
    """A default (unbranded) Svix sender: svix-* headers, svix-id as the delivery key."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    monkeypatch.setenv("SVIX_SECRET_FOR_TESTS", secret)
    signature = {"type": "standard", "secret": "env:SVIX_SECRET_FOR_TESTS"}
    client = make_app(plugins={"settings": {"counter": {"signature": signature}}}).test_client()
    log = tmp_path / "runs.txt"
    body = json.dumps({"log": str(log), "type": "invoice.paid"}).encode()
    msg_id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
    now = datetime.now(UTC)
    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(int(now.timestamp())),
        "svix-signature": Webhook(secret).sign(msg_id, now, body.decode()),
        "Content-Type": "application/json",
    }
    first = client.post("/api/v1/webhook/counter", data=body, headers=headers)
    again = client.post("/api/v1/webhook/counter", data=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["replayed"] is True
    assert again.get_json()["execution_id"] == first.get_json()["execution_id"]
    assert len(log.read_text().splitlines()) == 1
    record = client.get(f"/api/v1/executions/{first.get_json()['execution_id']}").get_json()
    assert record["execution"]["idempotency_key"] == msg_id
    forged = client.post(
        "/api/v1/webhook/counter", data=body.replace(b"paid", b"void"), headers=headers
    )
    assert forged.status_code == 401


def test_a_bad_signature_setting_stops_start_up(make_app):
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"plugins\.settings\.ok\.signature\.type"):
        make_app(plugins={"settings": {"ok": {"signature": {"type": "md5", "secret": "x"}}}})


# -- per-plugin concurrency ------------------------------------------------
def test_over_max_concurrency_is_429_and_nothing_recorded(make_app):
    app = make_app(plugins={"settings": {"sleepy": {"max_concurrency": 1}}})
    client = app.test_client()
    started = threading.Event()
    first: list = []

    def slow() -> None:
        started.set()
        first.append(client.post("/api/v1/webhook/sleepy", json={"seconds": 1.0}))

    thread = threading.Thread(target=slow)
    thread.start()
    started.wait(5)
    deadline = time.monotonic() + 5
    while app.extensions["bridge.runner"].snapshot()["plugins_running"].get("sleepy") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    busy = client.post("/api/v1/webhook/sleepy", json={"seconds": 0})
    thread.join(10)
    assert busy.status_code == 429 and busy.headers["Retry-After"] == "1"
    assert busy.get_json()["code"] == 429 and "concurrency limit (1)" in busy.get_json()["message"]
    assert first[0].status_code == 200
    page = client.get("/api/v1/executions?plugin=sleepy").get_json()
    assert page["total"] == 1 and page["executions"][0]["status"] == "completed"
    assert client.get("/health").get_json()["checks"]["runner"]["plugin_limit_rejections"] == 1


def test_a_hung_plugin_uses_up_only_its_share(make_app, tmp_path):
    app = make_app(
        runner={"max_workers": 4}, plugins={"settings": {"blocker": {"max_concurrency": 2}}}
    )
    client = app.test_client()
    hold = {"release": str(tmp_path / "release")}
    # Each times out after 0.2 s, but its thread hangs on: its share stays taken.
    codes = [client.post("/api/v1/webhook/blocker", json=hold).status_code for _ in range(2)]
    assert codes == [504, 504]
    assert client.post("/api/v1/webhook/blocker", json=hold).status_code == 429
    for _ in range(4):
        assert client.post("/api/v1/webhook/ok", json={}).status_code == 200
    runner = app.extensions["bridge.runner"]
    assert runner.snapshot()["abandoned"] == 2
    assert runner.snapshot()["plugins_running"] == {"blocker": 2}
    (tmp_path / "release").touch()
    deadline = time.monotonic() + 10
    while runner.snapshot()["plugins_running"]:
        assert time.monotonic() < deadline, "the hung threads never gave their share back"
        time.sleep(0.02)
    assert client.post("/api/v1/webhook/blocker", json=hold).status_code == 200


# -- redaction -------------------------------------------------------------
def test_redacted_fields_reach_the_plugin_but_not_the_store(client):
    payload = {
        "user": "ann",
        "password": "hunter2",
        "nested": {"X-Api-Key": "k-123"},
        "items": [{"access_token": "t-456"}],
    }
    response = client.post("/api/v1/webhook/ok?session_token=q-789", json=payload)
    assert response.status_code == 200
    echoed = response.get_json()["data"]["echo"]
    assert echoed["password"] == "hunter2" and echoed["session_token"] == "q-789"
    execution_id = response.get_json()["execution_id"]
    record = client.get(f"/api/v1/executions/{execution_id}").get_json()["execution"]
    text = json.dumps(record)
    for secret in ("hunter2", "k-123", "t-456", "q-789"):
        assert secret not in text
    stored = json.loads(record["input"])
    assert stored["user"] == "ann" and stored["password"] == "[REDACTED]"
    assert stored["items"][0]["access_token"] == "[REDACTED]"


def test_a_body_is_stored_as_sent_and_escapes_do_not_hide_a_field(client):
    sent = b'{"user":  "ann",\n "note": "caf\xc3\xa9"}'
    response = client.post(
        "/api/v1/webhook/ok", data=sent, headers={"Content-Type": "application/json"}
    )
    record = client.get(f"/api/v1/executions/{response.get_json()['execution_id']}").get_json()
    assert record["execution"]["input"] == sent.decode("utf-8")
    # "\u0070assword" is "password": the stored text must not be the body as sent.
    escaped = b'{"\\u0070assword": "hunter2", "user": "ann"}'
    response = client.post(
        "/api/v1/webhook/ok", data=escaped, headers={"Content-Type": "application/json"}
    )
    assert response.get_json()["data"]["echo"]["password"] == "hunter2"
    record = client.get(f"/api/v1/executions/{response.get_json()['execution_id']}").get_json()
    assert "hunter2" not in json.dumps(record)
    assert json.loads(record["execution"]["input"]) == {"password": "[REDACTED]", "user": "ann"}


def test_redact_fields_are_configurable(make_app):
    client = make_app(execution_tracking={"redact_fields": ["card"]}).test_client()
    response = client.post("/api/v1/webhook/ok", json={"card_number": "4242", "token": "t"})
    record = client.get(f"/api/v1/executions/{response.get_json()['execution_id']}").get_json()
    stored = json.loads(record["execution"]["input"])
    assert stored == {"card_number": "[REDACTED]", "token": "t"}
