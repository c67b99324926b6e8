"""What an attacker tried against the running bridge (issue 12): signed data that
unsigned query parameters could extend, keys that leak to plugins, proxies that make the
management API public, redaction that stopped at some depth, NaN in JSON, form floods,
and a slow plugin import that held up every other request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from pathlib import Path

import pytest

CONTEXT_ECHO = """
from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    def handle(self):
        return {"data": self.data, "headers": self.context["headers"],
                "query": self.context["query"]}
"""

NAN_PLUGIN = """
from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    def handle(self):
        return {"ratio": float("nan"), "nested": [float("inf"), 1.5]}
"""

SLOW_IMPORT = """
import time
from pathlib import Path

from webhook_bridge.plugin import BasePlugin

deadline = time.monotonic() + 10
while not Path({gate!r}).exists() and time.monotonic() < deadline:
    time.sleep(0.01)


class Plugin(BasePlugin):
    def handle(self):
        return {{"imported": True}}
"""

WHSEC = "whsec_" + base64.b64encode(b"standard-webhooks-test-key").decode()


def _strict(text: str):
    """JSON as any other parser reads it: NaN and Infinity are errors."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def _standard(body: bytes, msg_id: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    key = base64.b64decode(WHSEC.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        "Content-Type": "application/json",
    }


@pytest.fixture
def signed_app(make_app, plugin_dir: Path, monkeypatch):
    (plugin_dir / "context_echo.py").write_text(CONTEXT_ECHO)
    monkeypatch.setenv("STANDARD_SECRET_FOR_TESTS", WHSEC)
    signature = {"type": "standard", "secret": "env:STANDARD_SECRET_FOR_TESTS"}
    return make_app(plugins={"settings": {"context_echo": {"signature": signature}}})


def test_unsigned_query_parameters_never_reach_a_signed_plugins_data(signed_app):
    body = json.dumps({"amount": 5}).encode()
    r = signed_app.test_client().post(
        "/api/v1/webhook/context_echo?amount=5000&admin=true",
        data=body,
        headers=_standard(body, "msg_1"),
    )
    assert r.status_code == 200, r.get_json()
    answer = r.get_json()["data"]
    assert answer["data"] == {"amount": 5}
    assert answer["query"] == {"amount": "5000", "admin": "true"}


def test_an_added_idempotency_key_cannot_rerun_a_signed_delivery(signed_app):
    client = signed_app.test_client()
    body = b'{"order": 1}'
    headers = _standard(body, "msg_captured")
    first = client.post("/api/v1/webhook/context_echo", data=body, headers=headers)
    again = client.post(
        "/api/v1/webhook/context_echo",
        data=body,
        headers={**headers, "Idempotency-Key": "attacker-fresh-key"},
    )
    assert first.status_code == again.status_code == 200
    assert again.get_json()["replayed"] is True
    assert again.get_json()["execution_id"] == first.get_json()["execution_id"]


def test_the_bridges_own_key_is_not_handed_to_plugins(make_app, plugin_dir):
    (plugin_dir / "context_echo.py").write_text(CONTEXT_ECHO)
    key = "k" * 32
    app = make_app(
        auth={
            "protect_webhooks": True,
            "api_keys": [{"name": "s", "key": key, "scopes": ["write"]}],
        }
    )
    for header in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        r = app.test_client().post(
            "/api/v1/webhook/context_echo", json={}, headers={**header, "X-Sender": "yes"}
        )
        assert r.status_code == 200
        seen = {k.lower() for k in r.get_json()["data"]["headers"]}
        assert "x-sender" in seen and not seen & {"authorization", "x-api-key"}


def test_cookies_are_redacted_by_default(client, app):
    r = client.post("/api/v1/webhook/ok", json={"Cookie": "session=abc", "set-cookie": "x=1"})
    record = app.extensions["bridge.storage"].store.get(r.get_json()["execution_id"])
    assert json.loads(record.input) == {"Cookie": "[REDACTED]", "set-cookie": "[REDACTED]"}


@pytest.mark.parametrize(
    "header",
    [
        {"X-Real-IP": "203.0.113.9"},
        {"Via": "1.1 cdn"},
        {"CF-Connecting-IP": "203.0.113.9"},
        {"True-Client-IP": "203.0.113.9"},
    ],
)
def test_any_forwarding_header_marks_a_request_as_relayed(client, header):
    assert client.get("/api/v1/executions").status_code == 200
    r = client.get("/api/v1/executions", headers=header)
    assert r.status_code == 403 and r.get_json()["code"] == 403


def test_redaction_reaches_every_depth_and_the_tags(client, app):
    payload: dict = {"password": "top"}
    inner = payload
    for _ in range(300):
        inner["child"] = {"password": "deep", "list": [{"api_key": "x"}]}
        inner = inner["child"]
    r = client.post(
        "/api/v1/webhook/ok?tag=password:hunter2",
        json=payload,
        headers={"X-Bridge-Tags": "api_token=abc, env=prod"},
    )
    assert r.status_code == 200
    record = app.extensions["bridge.storage"].store.get(r.get_json()["execution_id"])
    assert "deep" not in record.input and '"x"' not in record.input
    assert record.input.count("[REDACTED]") == 601
    assert json.loads(record.tags) == {
        "api_token": "[REDACTED]",
        "env": "prod",
        "password": "[REDACTED]",
    }


def test_a_configured_key_with_a_trailing_newline_still_matches(make_app, monkeypatch):
    monkeypatch.setenv("KEY_FROM_A_FILE", "abcdefghijklmnopqrstuvwxyz\n")
    app = make_app(auth={"api_keys": [{"name": "ops", "key": "env:KEY_FROM_A_FILE"}]})
    r = app.test_client().get(
        "/api/v1/executions", headers={"X-API-Key": "abcdefghijklmnopqrstuvwxyz"}
    )
    assert r.status_code == 200


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-2.5E400"])
def test_nan_and_infinity_in_a_body_get_400(client, literal):
    """Also as a number too large for a float, which Python reads as Infinity; and in
    a replay's edited input."""
    r = client.post(
        "/api/v1/webhook/ok",
        data=f'{{"x": {literal}}}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.get_json()["code"] == 400
    r = client.post("/api/v1/webhook/ok", json={}, headers={"X-Bridge-Tags": f'{{"x": {literal}}}'})
    assert r.status_code == 400
    first = client.post("/api/v1/webhook/ok", json={"x": 1}).get_json()["execution_id"]
    r = client.post(
        f"/api/v1/executions/{first}/replay",
        data=f'{{"x": {literal}}}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.get_json()["code"] == 400
    listed = client.get("/api/v1/executions?parse_json=true").get_data(as_text=True)
    assert _strict(listed)["total"] == 1  # nothing but the first run was stored


def test_a_plugin_returning_nan_is_answered_and_stored_as_valid_json(make_app, plugin_dir):
    (plugin_dir / "nan_result.py").write_text(NAN_PLUGIN)
    app = make_app()
    r = app.test_client().post("/api/v1/webhook/nan_result", json={})
    assert r.status_code == 200
    assert _strict(r.get_data(as_text=True))["data"] == {"ratio": None, "nested": [None, 1.5]}
    record = app.extensions["bridge.storage"].store.get(r.get_json()["execution_id"])
    assert _strict(record.output) == {"ratio": None, "nested": [None, 1.5]}


def test_form_fields_and_query_parameters_are_bounded(make_app):
    client = make_app(server={"max_form_fields": 50}).test_client()
    fields = {f"f{i}": "v" for i in range(50)}
    assert client.post("/api/v1/webhook/ok", data=fields).status_code == 200
    r = client.post("/api/v1/webhook/ok", data={**fields, "one_more": "v"})
    assert r.status_code == 413 and "at most 50" in r.get_json()["message"]
    r = client.post(
        "/api/v1/webhook/ok", data={**fields, "one_more": "v"}, content_type="multipart/form-data"
    )
    assert r.status_code == 413
    query = "&".join(f"q{i}=1" for i in range(51))
    r = client.post(f"/api/v1/webhook/ok?{query}", json={})
    assert r.status_code == 400 and "at most 50" in r.get_json()["message"]


def test_a_slow_plugin_import_holds_up_nothing_else(make_app, plugin_dir, tmp_path):
    gate = tmp_path / "gate"
    app = make_app()
    (plugin_dir / "slow_import.py").write_text(SLOW_IMPORT.format(gate=str(gate)))
    client = app.test_client()
    answers: dict[str, int] = {}

    def call(name: str, url: str) -> None:
        answers[name] = app.test_client().post(url, json={}).status_code

    slow = threading.Thread(target=call, args=("slow", "/api/v1/webhook/slow_import"))
    slow.start()
    try:
        time.sleep(0.2)  # let it start importing
        others = [
            threading.Thread(
                target=lambda: answers.update(health=client.get("/health").status_code)
            ),
            threading.Thread(target=call, args=("ok", "/api/v1/webhook/ok")),
        ]
        for t in others:
            t.start()
        for t in others:
            t.join(5)
        assert slow.is_alive(), "the import should still be waiting for its gate"
        assert answers == {"health": 200, "ok": 200}
    finally:
        gate.touch()
        slow.join(15)
    assert answers["slow"] == 200
