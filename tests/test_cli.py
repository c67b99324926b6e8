"""`flask --app app bridge ...`, each command run as a subprocess on the config and
database an app in this process writes to (as a server would, meanwhile)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridge import create_app, shutdown_app

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # each command is a new Python process


@pytest.fixture
def setup(tmp_path: Path, plugin_dir: Path):
    config = {
        "plugins": {"dirs": [str(plugin_dir)]},
        "storage": {"sqlite": {"database_path": str(tmp_path / "ex.db")}},
        "scheduler": {"enabled": False},
        "logging": {"level": "WARNING"},
        "analysis": {"min_calls": 2, "retry_share": 0.01},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    app = create_app(str(path))
    client = app.test_client()
    ids = {
        "ok": client.post("/api/v1/webhook/ok", json={"n": 1}).get_json()["execution_id"],
        "failed": client.post("/api/v1/webhook/raising", json={}).get_json()["execution_id"],
    }
    for _ in range(2):
        client.post("/api/v1/webhook/flaky", json={})

    def flask(
        *args: str, stdin: str | None = None, config: Path = path
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "app", "bridge", *args],
            cwd=ROOT,
            env={**os.environ, "BRIDGE_CONFIG": str(config)},
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
            check=False,
        )

    yield flask, ids, tmp_path
    shutdown_app(app, timeout=1)


def test_history_commands(setup):
    flask, ids, _ = setup
    r = flask("list", "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert listed["total"] == 4 and {e["id"] for e in listed["executions"]} >= set(ids.values())
    r = flask("list", "--status", "failed")
    assert r.returncode == 0 and ids["failed"] in r.stdout and ids["ok"] not in r.stdout
    r = flask("show", ids["ok"], "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["plugin_name"] == "ok"
    r = flask("show", "no-such-id")
    assert r.returncode == 1 and "not found" in r.stderr
    r = flask("stats")
    assert r.returncode == 0 and "4 runs" in r.stdout


def test_insight_commands(setup):
    flask, ids, tmp_path = setup
    r = flask("errors", "--json")
    assert r.returncode == 1, r.stderr  # a new group: a problem found
    (group,) = json.loads(r.stdout)["groups"]
    assert group["plugin"] == "raising" and group["new"] is True

    r = flask("analysis")
    assert r.returncode == 1 and "`flaky` spends " in r.stdout

    out = tmp_path / "out.csv"
    r = flask("export", "--format", "csv", "--output", str(out), "--include", "input")
    assert r.returncode == 0, r.stderr
    assert "Exporting" not in r.stderr  # no progress bar when not on a terminal
    assert "Exported 4 runs to" in r.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8-sig"), newline="")))
    assert len(rows) == 4 and {row["id"] for row in rows} >= set(ids.values())
    r = flask(
        "export", "--format", "ndjson", "--output", "-", "--error-group", group["fingerprint"]
    )
    assert [json.loads(line)["id"] for line in r.stdout.splitlines()] == [ids["failed"]]
    assert flask("export", "--fields", "id,nope", "-o", "-").returncode == 2  # usage
    # The bridge's own errors, a file it cannot write, bad numbers: one line each.
    for args, code in (
        (("export", "--error-group", "0123456789abcdef", "-o", "-"), 1),
        (("list", "--error-group", "0123456789abcdef"), 1),
        (("export", "-o", str(tmp_path / "no-such-folder" / "x.csv")), 1),
        (("alerts", "--events", "-1"), 2),
    ):
        r = flask(*args)
        assert r.returncode == code and "Traceback" not in r.stderr, (args, r.stderr)
    # An error type no run can have is refused, as the API refuses it, not listed as none.
    for args in (("list", "--error-type", "Timeout"), ("export", "--error-type", "x y", "-o", "-")):
        r = flask(*args)
        assert r.returncode == 2 and "a type a plugin names" in r.stderr, (args, r.stderr)
    r = flask("list", "--error-type", "validation_error", "--json")
    assert [e["id"] for e in json.loads(r.stdout)["executions"]] == [ids["failed"]]

    r = flask("replay", ids["ok"], "--json")
    assert r.returncode == 0, r.stderr
    replay = json.loads(r.stdout)
    assert replay["replay_of"] == ids["ok"] and replay["data"]["echo"] == {"n": 1}
    r = flask("replay", ids["ok"], "--input", "-", stdin='{"n": 2}')
    assert r.returncode == 0 and "'n': 2" in r.stdout
    for edited in ('{"n": NaN}', '{"n": 1e999}'):  # as the API: not JSON numbers
        assert flask("replay", ids["ok"], "--input", "-", stdin=edited).returncode == 2
    r = flask("list", "--replay-of", ids["ok"], "--json")
    assert r.returncode == 0, r.stderr
    listed = json.loads(r.stdout)
    assert listed["total"] == 2 and {e["replay_of"] for e in listed["executions"]} == {ids["ok"]}
    r = flask("replay", ids["failed"])
    assert r.returncode == 1 and "validation_error" in r.stdout
    assert flask("replay", "no-such-id").returncode == 1


def test_cleanup_and_check_config(setup, monkeypatch):
    flask, _, tmp_path = setup
    r = flask("cleanup", "--older-than-days", "0", "--dry-run", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["would_delete"] == 4
    r = flask("cleanup", "--older-than-days", "0")
    assert r.returncode == 0 and "Deleted 4 executions" in r.stdout

    monkeypatch.setenv("BRIDGE_TEST_PGPASS", "hunter2")  # read by the command (env:NAME)
    good = tmp_path / "good.yaml"
    good.write_text(
        yaml.safe_dump(
            {
                "auth": {"api_keys": [{"name": "ci", "key": "k" * 32, "scopes": ["read"]}]},
                "storage": {"postgresql": {"password": "env:BRIDGE_TEST_PGPASS"}},
            }
        )
    )
    r = flask("check-config", str(good))
    assert r.returncode == 0, r.stderr
    assert "k" * 32 not in r.stdout and "hunter2" not in r.stdout and "***" in r.stdout
    headers = tmp_path / "headers.yaml"
    options = {"headers": {"Authorization": "Bearer abcdef123456"}, "passwd": "plainpw"}
    headers.write_text(yaml.safe_dump({"plugins": {"settings": {"ok": {"options": options}}}}))
    r = flask("check-config", str(headers))
    assert r.returncode == 0 and "abcdef123456" not in r.stdout and "plainpw" not in r.stdout
    for path, reason in ((tmp_path, "directory"), (tmp_path / "latin.yaml", "not UTF-8")):
        if path.name == "latin.yaml":
            path.write_bytes(b"\xff\xfe garbage")
        r = flask("check-config", str(path))
        assert r.returncode in (1, 2) and "Traceback" not in r.stderr and reason in r.stderr
    r = flask("stats", config=tmp_path)  # the server's own config a folder
    assert r.returncode == 1 and "Traceback" not in r.stderr and "Invalid configuration" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: 99999\n")
    r = flask("check-config", str(bad))
    assert r.returncode == 1 and "server.port" in r.stderr
    # The server's own config invalid: one line, no traceback, whatever the command.
    r = flask("stats", config=bad)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().endswith("Invalid configuration: server.port: out of range 99999")
