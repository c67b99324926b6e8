"""API keys on the management API: scopes, the loopback-only default, the OpenAPI page."""

from __future__ import annotations

import hashlib

import pytest

from bridge.auth import parse_keys
from bridge.config import from_dict
from bridge.errors import ConfigError

READER = "reader-key-0123456789"
ADMIN = "admin-key-0123456789ab"


@pytest.fixture
def keyed(make_app, monkeypatch):
    monkeypatch.setenv("ADMIN_KEY_FOR_TESTS", ADMIN)
    app = make_app(
        auth={
            "api_keys": [
                {
                    "name": "dashboard",
                    "sha256": hashlib.sha256(READER.encode()).hexdigest(),
                    "scopes": ["read"],
                },
                {"name": "ops", "key": "env:ADMIN_KEY_FOR_TESTS", "scopes": ["admin"]},
            ]
        }
    )
    return app.test_client()


def test_no_key_is_401_in_the_error_shape(keyed):
    response = keyed.get("/api/v1/executions")
    assert response.status_code == 401
    body = response.get_json()
    assert body["code"] == 401 and "API key is required" in body["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": f"Bearer {READER}"},
        {"X-API-Key": READER},
    ],
)
def test_read_key_reads_by_either_header(keyed, headers):
    assert keyed.get("/api/v1/executions", headers=headers).status_code == 200
    assert keyed.get("/api/v1/plugins", headers=headers).status_code == 200
    assert keyed.get("/api/v1/executions/stats", headers=headers).status_code == 200


def test_wrong_key_is_401(keyed):
    response = keyed.get("/api/v1/executions", headers={"X-API-Key": READER + "x"})
    assert response.status_code == 401
    assert response.get_json()["message"] == "The API key is not valid"


def test_read_key_cannot_clean_up_but_admin_can(keyed):
    response = keyed.delete("/api/v1/executions/cleanup", headers={"X-API-Key": READER})
    assert response.status_code == 403
    assert "'dashboard' lacks the 'admin' scope" in response.get_json()["message"]
    response = keyed.delete(
        "/api/v1/executions/cleanup", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    assert response.status_code == 200


def test_health_and_webhooks_stay_open(keyed):
    assert keyed.get("/health").status_code == 200
    assert keyed.post("/api/v1/webhook/ok", json={"x": 1}).status_code == 200


def test_bridge_api_key_env_is_an_admin_key(make_app, monkeypatch):
    monkeypatch.setenv("BRIDGE_API_KEY", ADMIN)
    client = make_app().test_client()
    assert client.get("/api/v1/executions").status_code == 401
    response = client.delete("/api/v1/executions/cleanup", headers={"X-API-Key": ADMIN})
    assert response.status_code == 200


def test_without_keys_only_loopback_clients_are_answered(client):
    assert client.get("/api/v1/executions").status_code == 200
    remote = client.get("/api/v1/executions", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert remote.status_code == 403
    assert "auth.api_keys" in remote.get_json()["message"]
    # A proxy on the same host relays outside clients from 127.0.0.1: still refused.
    relayed = client.get("/api/v1/executions", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 403
    # Webhooks still answer outside clients.
    hook = client.post("/api/v1/webhook/ok", json={}, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert hook.status_code == 200


def test_protect_webhooks_needs_a_write_key(make_app):
    writer = "writer-key-0123456789"
    client = make_app(
        auth={
            "protect_webhooks": True,
            "api_keys": [
                {"name": "sender", "key": writer, "scopes": ["write"]},
                {"name": "dash", "key": READER, "scopes": ["read"]},
            ],
        }
    ).test_client()
    assert client.post("/api/v1/webhook/ok", json={}).status_code == 401
    assert (
        client.post("/api/v1/webhook/ok", json={}, headers={"X-API-Key": READER}).status_code == 403
    )
    assert (
        client.post("/api/v1/webhook/ok", json={}, headers={"X-API-Key": writer}).status_code == 200
    )


def test_openapi_documents_the_security_schemes(client):
    spec = client.get("/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["apiKeyHeader"] == {
        **schemes["apiKeyHeader"],
        "in": "header",
        "name": "X-API-Key",
    }
    listing = spec["paths"]["/api/v1/executions"]["get"]
    assert {"bearerAuth": []} in listing["security"]
    assert {"401", "403"} <= set(listing["responses"])
    assert "security" not in spec["paths"]["/health"]["get"]


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"name": "a", "key": "s3cr3t", "scopes": ["read"]}, "auth.api_keys[0].key"),
        ({"name": "a", "sha256": "abc", "scopes": ["read"]}, "auth.api_keys[0].sha256"),
        ({"name": "a", "key": "k" * 20, "scopes": ["root"]}, "auth.api_keys[0].scopes"),
        ({"name": "a", "key": "env:NOT_SET_ANYWHERE_42"}, "auth.api_keys[0].key"),
        ({"name": "a"}, "auth.api_keys[0]"),
    ],
)
def test_bad_key_config_is_one_line_without_the_secret(entry, key):
    with pytest.raises(ConfigError) as caught:
        from_dict({"auth": {"api_keys": [entry]}})
    message = str(caught.value)
    assert message.startswith(key)
    assert "s3cr3t" not in message and "k" * 20 not in message


def test_scopes_include_the_lower_ones():
    (key,) = parse_keys([{"name": "w", "key": "w" * 20, "scopes": ["write"]}], environ={})
    assert key.scopes == ["read", "write"]
