"""What a new user trips over in the first hour (issue 13): helper modules beside
plugins, syntax errors that say where, plugin options, bounded retries, a missing
plugin folder, config typos and environment overrides."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from bridge.config import from_dict, load, longest_run, retry_delay

USES_HELPER = """
from webhook_bridge.plugin import BasePlugin
from _greeting import greet


class Plugin(BasePlugin):
    def handle(self):
        return {"text": greet(self.data.get("name", "you"))}
"""

WITH_OPTIONS = """
from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    options = {"channel": "#general", "retries": 1}

    def handle(self):
        return {"options": self.options}
"""


def _touch_later(path: Path, text: str) -> None:
    """Rewrite `path` so that its mtime surely changes, as an editor's save does."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


def test_a_plugin_imports_a_helper_beside_it_and_reloads_when_it_changes(make_app, plugin_dir):
    helper = plugin_dir / "_greeting.py"
    helper.write_text("def greet(name):\n    return f'hello {name}'\n")
    (plugin_dir / "greeter.py").write_text(USES_HELPER)
    client = make_app().test_client()
    r = client.post("/api/v1/webhook/greeter", json={"name": "ada"})
    assert r.status_code == 200 and r.get_json()["data"] == {"text": "hello ada"}
    assert client.get("/api/v1/webhook/_greeting").status_code == 404  # not a route
    _touch_later(helper, "def greet(name):\n    return f'hi {name}!'\n")
    r = client.post("/api/v1/webhook/greeter", json={"name": "ada"})
    assert r.get_json()["data"] == {"text": "hi ada!"}
    names = [p["name"] for p in client.get("/api/v1/plugins").get_json()["plugins"]]
    assert "greeter" in names and "_greeting" not in names


def test_a_syntax_error_says_file_line_and_message(make_app, plugin_dir):
    (plugin_dir / "typo.py").write_text("x = 1\n\ndef handle(self)\n    return 1\n")
    client = make_app().test_client()
    error = client.get("/api/v1/plugins/typo").get_json()["error"]
    first = error.splitlines()[0]
    assert first.startswith("SyntaxError: ") and "typo.py, line 3)" in first
    assert "def handle(self)" in error


def test_plugin_options_from_config_with_env_values(make_app, plugin_dir, monkeypatch):
    (plugin_dir / "notifier.py").write_text(WITH_OPTIONS)
    monkeypatch.setenv("NOTIFIER_TOKEN", "t0ken")
    app = make_app(
        plugins={
            "settings": {"notifier": {"options": {"token": "env:NOTIFIER_TOKEN", "retries": 3}}}
        }
    )
    r = app.test_client().post("/api/v1/webhook/notifier", json={})
    assert r.get_json()["data"]["options"] == {
        "channel": "#general",
        "retries": 3,
        "token": "t0ken",
    }


def test_an_unset_option_variable_stops_start_up(make_app, plugin_dir, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(Exception, match=r"plugins\.settings\.x\.options\.token"):
        from_dict({"plugins": {"settings": {"x": {"options": {"token": "env:NOT_SET_ANYWHERE"}}}}})


def test_retry_waits_are_capped_and_jittered(make_app):
    assert [retry_delay(1, 60, n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert longest_run(10, 10, 1, 60) == 100 + (1 + 2 + 4 + 8 + 16 + 32 + 60 + 60 + 60)
    app = make_app(runner={"max_backoff": "15ms"})
    runner = app.extensions["bridge.runner"]
    waits: list[float] = []
    runner._stop.wait = lambda seconds: waits.append(seconds) or False  # record, don't sleep
    r = app.test_client().post("/api/v1/webhook/flaky", json={})
    assert r.status_code == 200 and r.get_json()["attempts"] == 3
    # flaky backs off 10 ms, then 20 ms capped at 15 ms; each wait is half to all of it
    assert len(waits) == 2
    assert 0.005 <= waits[0] <= 0.010 and 0.0075 <= waits[1] <= 0.015


def test_a_missing_plugin_folder_is_warned_and_shown_in_health(make_app, tmp_path, caplog):
    missing = tmp_path / "no-such-folder"
    with caplog.at_level(logging.WARNING):
        app = make_app(plugins={"dirs": [str(missing)]})
    assert f"Plugin folder {missing} does not exist" in caplog.text
    check = app.test_client().get("/health").get_json()["checks"]["plugins"]
    assert check["status"] == "degraded" and check["missing_dirs"] == [str(missing)]


def test_an_unknown_key_is_warned_once_with_a_suggestion(caplog):
    with caplog.at_level(logging.WARNING):
        from_dict({"execution_tracking": {"retention_day": 3}})
        from_dict({"execution_tracking": {"retention_day": 3}})
    lines = [r.getMessage() for r in caplog.records if "retention_day " in r.getMessage()]
    assert lines == [
        "Unknown config key execution_tracking.retention_day ignored (did you mean retention_days?)"
    ]


def test_environment_variables_override_the_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("server:\n  port: 8001\nexecution_tracking:\n  retention_days: 10\n")
    environ = {
        "BRIDGE_CONFIG": str(path),
        "BRIDGE_SERVER__PORT": "9000",
        "BRIDGE_EXECUTION_TRACKING__RETENTION_DAYS": "45",
        "BRIDGE_EXECUTION_TRACKING__REDACT_FIELDS": "[password, pin]",
        "BRIDGE_RUNNER__BACKOFF": "250ms",
        "BRIDGE_API_KEY": "not-a-config-key-0123456789",
    }
    cfg = load(None, environ)
    assert cfg.server.port == 9000 and cfg.retention_days == 45
    assert cfg.execution_tracking.redact_fields == ["password", "pin"]
    assert cfg.runner.backoff == pytest.approx(0.25)
    with pytest.raises(Exception, match=r"server\.port: expected a whole number"):
        load(None, {**environ, "BRIDGE_SERVER__PORT": "nine"})
