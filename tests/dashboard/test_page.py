"""The dashboard page itself, without a browser: who may open it and what it loads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import bridge.dashboard

STATIC = Path(bridge.dashboard.__file__).parent / "static"
TEMPLATES = Path(bridge.dashboard.__file__).parent / "templates"


def test_a_local_client_gets_the_page_with_a_strict_policy(client):
    response = client.get("/dashboard")
    assert response.status_code == 200
    assert b'id="runs-chart"' in response.data
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    assert response.headers["Cache-Control"] == "no-store"
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    "environ, headers",
    [({"REMOTE_ADDR": "203.0.113.9"}, {}), ({}, {"X-Forwarded-For": "203.0.113.9"})],
)
def test_without_keys_other_clients_get_a_clear_403_page(client, environ, headers):
    response = client.get("/dashboard", environ_base=environ, headers=headers)
    assert response.status_code == 403
    assert b"only for local clients until an API key is configured" in response.data


def test_with_keys_the_page_opens_anywhere_and_asks_for_a_key(make_app):
    app = make_app(auth={"api_keys": [{"name": "v", "key": "v" * 20, "scopes": ["read"]}]})
    response = app.test_client().get("/dashboard", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 200
    assert b'data-needs-key="true"' in response.data


def test_the_page_and_its_files_name_no_other_host():
    """Offline: nothing to fetch from a CDN or a font service (the browser test cuts the
    network; this names the file that would break it)."""
    urls = re.compile(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}", re.I)
    for path in [*STATIC.iterdir(), *TEMPLATES.iterdir()]:
        text = path.read_text()
        found = [u for u in urls.findall(text) if u != "http://www.w3.org"]
        assert not found, f"{path.name} refers to {found}"


def test_static_files_are_served(client):
    for name in ("dashboard.js", "api.js", "charts.js", "format.js", "dashboard.css"):
        with client.get(f"/dashboard/static/{name}") as response:
            assert response.status_code == 200, name
