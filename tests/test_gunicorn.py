"""Against a real gunicorn process on a free loopback port."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture
def server(gunicorn):
    with gunicorn() as s:
        yield s


def test_webhooks_and_one_scheduler_under_gunicorn(server):
    base, tmp_path = server.base, server.db.parent
    r = requests.post(f"{base}/api/v1/webhook/ok", json={"a": 1}, timeout=5)
    assert r.status_code == 200 and r.json()["data"]["echo"] == {"a": 1}
    leaders = {}
    deadline = time.monotonic() + 10
    while len(leaders) < 2 and time.monotonic() < deadline:
        sched = requests.get(f"{base}/health", timeout=5).json()["checks"]["scheduler"]
        leaders[sched["pid"]] = sched["leader"]
    assert len(leaders) == 2, leaders
    assert sorted(leaders.values()) == [False, True]
    log = (tmp_path / "gunicorn.log").read_text()
    assert log.count("✅ Execution cleanup worker started") == 1
    assert "✅ Execution storage initialized successfully" in log


def test_sigkilled_worker_leaves_interrupted_record(server):
    base = server.base
    result: dict = {}

    def call():
        try:
            result["r"] = requests.post(
                f"{base}/api/v1/webhook/sleepy", json={"seconds": 30}, timeout=20
            )
        except requests.RequestException as exc:
            result["error"] = exc

    thread = threading.Thread(target=call)
    thread.start()
    deadline = time.monotonic() + 10
    running = []
    while not running and time.monotonic() < deadline:
        running = requests.get(f"{base}/api/v1/executions?status=running", timeout=5).json()[
            "executions"
        ]
        time.sleep(0.1)
    assert running, "the run never showed as running"
    # Kill every worker, so the one running the plugin surely dies; gunicorn respawns.
    for pid in server.workers():
        os.kill(pid, signal.SIGKILL)
    thread.join(25)
    assert "r" not in result or result["r"].status_code >= 500
    execution_id = running[0]["id"]
    deadline = time.monotonic() + 15
    record = {}
    while time.monotonic() < deadline:
        r = requests.get(f"{base}/api/v1/executions/{execution_id}", timeout=5)
        if r.status_code == 200:
            record = r.json()["execution"]
            if record["status"] != "running":
                break
        time.sleep(0.2)
    assert record["status"] == "failed" and record["error_type"] == "interrupted"


def test_scheduler_moves_to_another_worker_when_leader_dies(server):
    base = server.base

    def leader_pids(seconds: float) -> dict[int, bool]:
        seen: dict[int, bool] = {}
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and len(seen) < 2:
            sched = requests.get(f"{base}/health", timeout=5).json()["checks"]["scheduler"]
            seen[sched["pid"]] = sched["leader"]
        return seen

    before = leader_pids(10)
    leader = next(pid for pid, is_leader in before.items() if is_leader)
    os.kill(leader, signal.SIGKILL)
    deadline = time.monotonic() + 15
    after: dict[int, bool] = {}
    while time.monotonic() < deadline:
        try:
            after = leader_pids(3)
        except requests.RequestException:
            continue
        if leader not in after and sorted(after.values()) == [False, True]:
            break
        time.sleep(0.2)
    assert leader not in after and sorted(after.values()) == [False, True], after


def test_bad_config_stops_startup_with_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("execution_tracking:\n  cleanup_interval: soon\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={**os.environ, "BRIDGE_CONFIG": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "Invalid configuration: execution_tracking.cleanup_interval: invalid duration 'soon'"
    ]


@pytest.mark.parametrize(
    ("bind", "api_key", "warned"),
    [
        ("0.0.0.0:8001", "", True),
        ("0.0.0.0:8001", "a-key-of-sixteen-chars", False),
        ("127.0.0.1:8001", "", False),
    ],
)
def test_startup_warns_when_exposed_without_keys(tmp_path, plugin_dir, bind, api_key, warned):
    """gunicorn --check-config reads gunicorn.conf.py and loads the app without binding."""
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "plugins": {"dirs": [str(plugin_dir)]},
                "storage": {"sqlite": {"database_path": str(tmp_path / "ex.db")}},
                "scheduler": {"enabled": False},
            }
        )
    )
    env = {**os.environ, "BRIDGE_CONFIG": str(path), "BRIDGE_BIND": bind}
    env.pop("BRIDGE_API_KEY", None)
    if api_key:
        env["BRIDGE_API_KEY"] = api_key
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    said = proc.stdout + proc.stderr  # the log goes to stdout
    assert ("SECURITY WARNING: listening on 0.0.0.0" in said) is warned


def test_sigterm_cancels_a_run_that_outlasts_the_graceful_timeout(server):
    base, proc, tmp_path = server.base, server.proc, server.db.parent
    thread = threading.Thread(
        target=lambda: _post_quietly(f"{base}/api/v1/webhook/sleepy", {"seconds": 20})
    )
    thread.start()
    deadline = time.monotonic() + 10
    running = []
    while not running and time.monotonic() < deadline:
        running = requests.get(f"{base}/api/v1/executions?status=running", timeout=5).json()[
            "executions"
        ]
        time.sleep(0.1)
    assert running
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    thread.join(20)
    import sqlite3

    with sqlite3.connect(tmp_path / "ex.db") as conn:
        status, error_type = conn.execute(
            "SELECT status, error_type FROM executions WHERE id = ?", (running[0]["id"],)
        ).fetchone()
    assert (status, error_type) == ("canceled", "interrupted")


def test_a_clean_stop_closes_the_database(server):
    """SIGTERM: every worker closes its connections, the last one folds the WAL into the
    database file and removes it."""
    base, proc, tmp_path = server.base, server.proc, server.db.parent
    for _ in range(4):
        assert requests.post(f"{base}/api/v1/webhook/ok", json={"a": 1}, timeout=10).ok
    assert (tmp_path / "ex.db-wal").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert not (tmp_path / "ex.db-wal").exists(), (tmp_path / "gunicorn.log").read_text()


def _post_quietly(url: str, body: dict) -> None:
    with contextlib.suppress(requests.RequestException):
        requests.post(url, json=body, timeout=25)


def test_duplicate_deliveries_across_workers_run_once(server):
    base, tmp_path = server.base, server.db.parent
    runs = tmp_path / "runs.txt"
    barrier = threading.Barrier(6)
    answers: list[requests.Response] = []

    def deliver() -> None:
        barrier.wait(10)
        answers.append(
            requests.post(
                f"{base}/api/v1/webhook/counter",
                json={"log": str(runs), "seconds": 0.5},
                headers={"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
                timeout=30,
            )
        )

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    assert sorted(a.status_code for a in answers) == [200] * 6
    assert len(runs.read_text().splitlines()) == 1
    assert len({a.json()["execution_id"] for a in answers}) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 5


def test_two_bridges_on_one_host_each_have_their_own_control_socket(gunicorn, tmp_path):
    """gunicornc reaches each bridge through the socket beside its own database."""
    second_db = tmp_path / "second" / "ex.db"
    with (
        gunicorn() as first,
        gunicorn(storage={"sqlite": {"database_path": str(second_db)}}) as second,
    ):
        pids = {}
        for server, db in ((first, first.db), (second, second_db)):
            socket_path = f"{db.resolve()}.gunicorn.ctl"
            status = subprocess.run(
                [
                    Path(sys.executable).parent / "gunicornc",
                    "-s",
                    socket_path,
                    "-j",
                    "-c",
                    "show workers",
                ],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert status.returncode == 0, status.stderr
            pids[server.base] = sorted(w["pid"] for w in json.loads(status.stdout)["workers"])
        assert pids[first.base] == sorted(first.workers())
        assert pids[second.base] == sorted(second.workers())


def test_a_sync_delivery_and_an_async_duplicate_run_the_plugin_once(server):
    """Each key is sent twice at once, once waiting for the answer and once async: the
    claim alone decides who runs, whatever the first run's record says yet."""
    base, tmp_path = server.base, server.db.parent
    runs = tmp_path / "runs.txt"
    keys = [f"race-{i}" for i in range(20)]
    answers: dict[str, list[int]] = {key: [] for key in keys}

    def deliver(key: str, asynchronous: bool, barrier: threading.Barrier) -> None:
        barrier.wait(10)
        r = requests.post(
            f"{base}/api/v1/webhook/counter" + ("?async=true" if asynchronous else ""),
            json={"log": str(runs)},
            headers={"Idempotency-Key": key},
            timeout=30,
        )
        answers[key].append(r.status_code)

    for key in keys:
        barrier = threading.Barrier(2)
        pair = [threading.Thread(target=deliver, args=(key, a, barrier)) for a in (False, True)]
        for t in pair:
            t.start()
        for t in pair:
            t.join(30)
    deadline = time.monotonic() + 10
    while len(runs.read_text().splitlines()) < len(keys) and time.monotonic() < deadline:
        time.sleep(0.05)  # async runs finish in the background
    time.sleep(0.3)  # a second run of a key, if there were one, would show by now
    assert len(runs.read_text().splitlines()) == len(keys)
    assert all(sorted(codes) in ([200, 200], [200, 202]) for codes in answers.values())


def test_a_failing_job_shows_in_health_from_every_worker(gunicorn):
    """The leader's cleanup fails (a table it writes is gone): /health says so whichever
    worker answers, and says healthy again once a run succeeds."""
    with gunicorn(execution_tracking={"cleanup_interval": "1s"}) as server:

        def schedulers(seconds: float = 10) -> dict[int, dict]:
            seen: dict[int, dict] = {}
            deadline = time.monotonic() + seconds
            while len(seen) < 2 and time.monotonic() < deadline:
                health = requests.get(f"{server.base}/health", timeout=5)
                assert health.status_code == 200  # degraded, not unhealthy
                check = health.json()["checks"]["scheduler"]
                seen[check["pid"]] = {
                    **check,
                    "checks": {k: c["status"] for k, c in health.json()["checks"].items()},
                }
            assert len(seen) == 2, seen
            return seen

        def until(cleanup_ok: bool) -> dict[int, dict]:
            deadline = time.monotonic() + 20
            while True:
                seen = schedulers()
                runs = [s["last_runs"].get("cleanup") for s in seen.values()]
                if all(r is not None and r["ok"] is cleanup_ok for r in runs):
                    return seen
                assert time.monotonic() < deadline, seen
                time.sleep(0.2)

        for check in until(cleanup_ok=True).values():
            assert check["status"] == "healthy" and check["message"] == "", check
        conn = sqlite3.connect(server.db, timeout=10)
        conn.execute("ALTER TABLE alert_events RENAME TO alert_events_away")
        conn.commit()
        seen = until(cleanup_ok=False)
        assert sorted(s["leader"] for s in seen.values()) == [False, True]
        for check in seen.values():
            assert check["status"] == "degraded" and check["checks"]["storage"] == "healthy", check
            assert "job cleanup failed at" in check["message"], check
            assert "no such table: alert_events" in check["message"], check
        conn.execute("ALTER TABLE alert_events_away RENAME TO alert_events")
        conn.commit()
        conn.close()
        for check in until(cleanup_ok=True).values():
            assert check["status"] == "healthy", check["checks"]
