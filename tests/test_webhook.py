from __future__ import annotations

import time

import pytest


def test_ok_plugin_answers_with_result_and_ids(client):
    r = client.post(
        "/api/v1/webhook/ok?source=q", json={"a": 1}, headers={"X-Request-ID": "trace-123"}
    )
    assert r.status_code == 200
    body = r.get_json()
    assert body["data"] == {"echo": {"source": "q", "a": 1}, "method": "POST"}
    assert body["plugin"] == "ok" and body["status_code"] == 200
    assert body["trace_id"] == "trace-123" == r.headers["X-Request-ID"]
    assert r.headers["X-Execution-ID"] == body["execution_id"]


def test_traceparent_gives_trace_id(client):
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    r = client.get("/api/v1/webhook/ok", headers={"traceparent": tp})
    assert r.get_json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_form_and_query_input(client):
    r = client.put("/api/v1/webhook/ok", data={"f": "v"})
    assert r.get_json()["data"]["echo"] == {"f": "v"}
    r = client.delete("/api/v1/webhook/ok?id=7")
    assert r.get_json()["data"] == {"echo": {"id": "7"}, "method": "DELETE"}


def _is_error_shape(r, code):
    body = r.get_json()
    assert r.status_code == code, body
    assert body["code"] == code and isinstance(body["status"], str) and body["message"]
    return body


def test_errors_share_one_shape(client):
    _is_error_shape(client.post("/api/v1/webhook/nope", json={}), 404)
    body = _is_error_shape(client.get("/api/v1/webhook/post_only"), 405)
    assert "POST" in body["message"]
    _is_error_shape(
        client.post("/api/v1/webhook/ok", data=b"{bad", content_type="application/json"), 400
    )
    _is_error_shape(client.post("/api/v1/webhook/ok", json=[1, 2]), 400)
    _is_error_shape(
        client.post("/api/v1/webhook/ok", data=b"\xff\xfe", content_type="application/json"), 400
    )
    _is_error_shape(
        client.post("/api/v1/webhook/ok", data=b"<x/>", content_type="application/xml"), 415
    )
    _is_error_shape(client.post("/api/v1/webhook/..%2Fetc", json={}), 404)
    _is_error_shape(client.get("/no/such/page"), 404)


def test_body_over_limit_is_413(make_app):
    client = make_app(server={"max_body_size": 100}).test_client()
    _is_error_shape(client.post("/api/v1/webhook/ok", json={"x": "y" * 200}), 413)


def test_raising_plugin_is_500_with_type_and_message(client):
    body = _is_error_shape(client.post("/api/v1/webhook/raising", json={}), 500)
    assert body["error_type"] == "validation_error"
    assert "amount must be positive" in body["message"]
    assert "Traceback" not in body["message"]


def test_an_exception_that_cannot_be_printed_still_ends_its_run(client, plugin_dir):
    """A plugin's exception whose __str__ raises is a failure like any other: the
    answer names the type, and the run's record ends instead of staying `running`."""
    (plugin_dir / "mute.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n"
        "class Mute(Exception):\n"
        "    def __str__(self):\n        raise RuntimeError('no words')\n"
        "class Plugin(BasePlugin):\n    def handle(self):\n        raise Mute()\n"
    )
    body = _is_error_shape(client.post("/api/v1/webhook/mute", json={}), 500)
    assert "Mute" in body["message"] and body["error_type"] == "unknown_error"
    record = client.get(f"/api/v1/executions/{body['execution_id']}").get_json()["execution"]
    assert record["status"] == "failed" and "Mute" in record["error"]


def test_a_plugin_may_name_its_own_error_type_if_it_is_a_word(client, plugin_dir):
    """A word is kept and can be filtered on; anything else (a number, a sentence) is
    classified from the error's message instead."""
    (plugin_dir / "named.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n"
        "class Plugin(BasePlugin):\n"
        "    def handle(self):\n"
        "        return {'status': 'error', 'error': 'connection refused by upstream',\n"
        "                'error_type': self.data['type']}\n"
    )
    for given, kept in (
        ("upstream_rejected", "upstream_rejected"),
        (123, "connection_error"),
        ("upstream_rejected\n", "connection_error"),  # a word, then a line break
    ):
        body = _is_error_shape(client.post("/api/v1/webhook/named", json={"type": given}), 500)
        assert body["error_type"] == kept
    bad = client.post("/api/v1/webhook/named", json={"type": "Two Words"}).get_json()
    assert bad["error_type"] == "connection_error"
    listed = client.get("/api/v1/executions?error_type=upstream_rejected").get_json()
    assert listed["total"] == 1 and listed["executions"][0]["plugin_name"] == "named"
    assert client.get("/api/v1/executions?error_type=Two%20Words").status_code == 422
    refused = _is_error_shape(client.get("/api/v1/executions?error_type=upstream_rejected%0A"), 422)
    assert "or a type a plugin names" in refused["errors"]["error_type"][0]


def test_status_error_result_counts_as_failure(client):
    body = _is_error_shape(client.post("/api/v1/webhook/reports_error", json={}), 500)
    assert body["data"]["error"] == "upstream rejected the order"


def test_timeout_is_504_and_recorded(client):
    body = _is_error_shape(client.post("/api/v1/webhook/hanging", json={}), 504)
    assert body["error_type"] == "timeout"
    record = client.get(f"/api/v1/executions/{body['execution_id']}").get_json()
    assert record["execution"]["status"] == "timeout"
    assert record["execution"]["error_type"] == "timeout"


def test_retries_are_counted(client):
    r = client.post("/api/v1/webhook/flaky", json={})
    assert r.status_code == 200 and r.get_json()["data"] == {"attempt": 3}
    detail = client.get(f"/api/v1/executions/{r.get_json()['execution_id']}").get_json()
    assert detail["execution"]["attempts"] == 3
    assert detail["execution"]["retry_count"] == 2
    assert [a["status"] for a in detail["attempts"]] == ["failed", "failed", "completed"]
    assert detail["attempts"][0]["error_type"] == "connection_error"


def test_saturated_runner_answers_503_fast(make_app):
    client = make_app(runner={"max_workers": 1}).test_client()
    assert client.post("/api/v1/webhook/stubborn", json={}).status_code == 504
    # The timed-out thread still holds the only slot until it returns.
    r = client.post("/api/v1/webhook/ok", json={})
    body = _is_error_shape(r, 503)
    assert r.headers["Retry-After"]
    assert "saturated" in body["message"]
    assert client.get("/health").get_json()["checks"]["runner"]["abandoned"] == 1
    deadline = time.monotonic() + 3
    while client.post("/api/v1/webhook/ok", json={}).status_code != 200:
        assert time.monotonic() < deadline, "the slot was never freed"
        time.sleep(0.05)


def test_legacy_and_compat_import(client):
    r = client.post("/api/v1/webhook/legacy", json={"name": "Ada"})
    assert r.get_json()["data"] == {"legacy": True, "name": "Ada"}
    r = client.post("/api/v1/webhook/post_only", json={})
    assert r.get_json()["data"] == {"result": "created"}


@pytest.mark.parametrize(
    "query,status",
    [
        ("async=maybe", 422),
        ("async=on", 202),
        ("async=false&tag=env:prod", 200),
        ("tag=no-separator", 400),
    ],
)
def test_control_parameters_are_validated(client, query, status):
    r = client.post(f"/api/v1/webhook/ok?{query}", json={"k": 1})
    assert r.status_code == status, r.get_json()
    assert r.mimetype == "application/json"
    if status == 422:
        assert r.get_json()["errors"] == {"async": ["Not a valid boolean."]}


def test_async_mode_returns_202_and_completes(client):
    r = client.post("/api/v1/webhook/ok?async=true", json={"k": 1})
    assert r.status_code == 202
    location = r.headers["Location"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = client.get(location).get_json()["execution"]["status"]
        if status == "completed":
            break
        time.sleep(0.02)
    assert status == "completed"


def test_plugins_listing_and_reload(client, plugin_dir):
    body = client.get("/api/v1/plugins").get_json()
    by_name = {p["name"]: p for p in body["plugins"]}
    assert body["total_count"] == len(body["plugins"])
    assert by_name["broken"]["is_available"] is False
    assert "module_that_does_not_exist" in by_name["broken"]["error"]
    assert by_name["post_only"]["supported_methods"] == ["POST"]
    assert client.get("/api/v1/plugins/nope").status_code == 404
    (plugin_dir / "fresh.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n"
        "class Plugin(BasePlugin):\n    def handle(self):\n        return {'v': 1}\n"
    )
    assert client.post("/api/v1/webhook/fresh", json={}).get_json()["data"] == {"v": 1}
    (plugin_dir / "fresh.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n"
        "class Plugin(BasePlugin):\n    def handle(self):\n        return {'v': 22}\n"
    )
    assert client.post("/api/v1/webhook/fresh", json={}).get_json()["data"] == {"v": 22}
    (plugin_dir / "fresh.py").unlink()
    assert client.post("/api/v1/webhook/fresh", json={}).status_code == 404


def test_health_and_openapi(client):
    body = client.get("/health").get_json()
    assert body["status"] in {"healthy", "degraded"}
    assert {"runner", "plugins", "storage"} <= set(body["checks"])
    spec = client.get("/openapi.json").get_json()
    assert "/api/v1/webhook/{plugin}" in spec["paths"]
    assert "/api/v1/executions/stats" in spec["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and b"/docs/assets/swagger-ui-bundle.js" in docs.data
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and b"SwaggerUIBundle" in asset.data
    asset.close()
