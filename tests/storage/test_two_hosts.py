"""Two bridges (two real gunicorn masters, one worker each) on one PostgreSQL or one
MySQL database act as one system: one leads the background jobs, cleanup runs in the
leader only, leftover rows are closed only for a host whose lease ran out, a duplicate
delivery sent to both at once runs its plugin once, and when the leader dies the other
takes the lead."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from bridge.model import ExecutionRecord, Status
from bridge.tracking.leases import lease_key

from .conftest import BACKENDS

ROOT = Path(__file__).resolve().parents[2]
TAKEOVER_S = 0.5


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _bridge(folder: Path, plugin_dir: Path, storage: dict[str, Any]) -> Iterator[Any]:
    """One gunicorn master with one worker, its config and log in `folder`."""
    folder.mkdir()
    port = _free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port, "workers": 1, "threads": 4},
        "plugins": {"dirs": [str(plugin_dir)]},
        "storage": {**storage, "spool_path": str(folder / "spool")},
        "execution_tracking": {"stale_check_interval": "1s", "cleanup_interval": "1s"},
        "scheduler": {"takeover_interval": f"{TAKEOVER_S}s"},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    log = open(folder / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env={**os.environ, "BRIDGE_CONFIG": str(folder / "config.yaml")},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: killed whole, master and worker
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _health(base) is not None, f"{folder.name} up", 40, proc)
        yield type("Bridge", (), {"base": base, "proc": proc, "log": folder / "gunicorn.log"})
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


def _health(base: str) -> dict[str, Any] | None:
    try:
        return requests.get(f"{base}/health", timeout=5).json()
    except (requests.RequestException, ValueError):
        return None


def _until(check: Callable[[], Any], what: str, within: float, proc: Any = None) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert proc is None or proc.poll() is None, f"{what}: the server exited"
        assert time.monotonic() < deadline, f"still not {what} after {within:g}s"
        time.sleep(0.1)


def _leads(base: str) -> bool:
    health = _health(base)
    return bool(health and health["checks"]["scheduler"]["leader"])


@pytest.fixture(params=["postgresql", "mysql"])
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    backend = request.param
    with BACKENDS[backend](tmp_path) as section:
        yield {"type": backend, backend: section}


def _store(storage: dict[str, Any]) -> Any:
    from bridge.config import from_dict
    from bridge.storage import open_store

    return open_store(from_dict({"storage": storage}), lambda *a: None)


@pytest.mark.slow
def test_two_hosts_on_one_database(shared, tmp_path, plugin_dir):
    store = _store(shared)
    try:
        now = time.time()
        # Rows of two other hosts: one alive (its lease runs), one dead (its lease ran out).
        for worker, expires in (("live-host:1", now + 3600), ("dead-host:2", now - 1)):
            value = {"worker": worker, "renewed_at": now - 60, "expires_at": expires}
            key = lease_key(worker)
            store.write(lambda w, k=key, v=value: w.set_state(k, v))
            for n in range(3):
                store.insert(
                    ExecutionRecord(
                        id=f"{worker}-{n}",
                        plugin_name="ok",
                        http_method="POST",
                        start_time=_utc(now - 30),
                        status=Status.RUNNING,
                        worker=worker,
                    ),
                    wait=True,
                )
        with (
            _bridge(tmp_path / "a", plugin_dir, shared) as a,
            _bridge(tmp_path / "b", plugin_dir, shared) as b,
        ):
            _until(lambda: _leads(a.base) or _leads(b.base), "led", 20)
            leader, other = (a, b) if _leads(a.base) else (b, a)
            assert not _leads(other.base)

            def closed() -> bool:
                return store.get("dead-host:2-2").status is Status.FAILED

            _until(closed, "the dead host's rows closed", 20)
            for n in range(3):
                dead = store.get(f"dead-host:2-{n}")
                assert (dead.status, dead.error_type) == (Status.FAILED, "interrupted")
                assert store.get(f"live-host:1-{n}").status is Status.RUNNING

            # Cleanup (every second here) runs in the leader only; both hosts' /health
            # show its latest run, from the database.
            leader_worker = f":{_health(leader.base)['checks']['scheduler']['pid']}"
            _until(
                lambda: "cleanup" in _health(other.base)["checks"]["scheduler"]["last_runs"],
                "cleaned up",
                20,
            )
            for _ in range(20):  # two seconds: two runs at least
                for host in (leader, other):
                    run = _health(host.base)["checks"]["scheduler"]["last_runs"]["cleanup"]
                    assert run["ok"] and run["worker"].endswith(leader_worker), run
                time.sleep(0.1)

            # One delivery sent to both hosts at once runs its plugin once.
            key = f"dup-{uuid.uuid4().hex}"
            ran = tmp_path / "ran.log"
            answers: list[requests.Response] = []

            def deliver(base: str) -> None:
                answers.append(
                    requests.post(
                        f"{base}/api/v1/webhook/counter",
                        json={"seconds": 1, "log": str(ran)},
                        headers={"Idempotency-Key": key},
                        timeout=30,
                    )
                )

            threads = [threading.Thread(target=deliver, args=(h.base,)) for h in (a, b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert len(ran.read_text().splitlines()) == 1
            assert all(r.status_code in (200, 409) for r in answers), [r.text for r in answers]
            assert any(r.status_code == 200 for r in answers)

            # The leader dies (master and worker, SIGKILL): the other leads within moments.
            os.killpg(leader.proc.pid, signal.SIGKILL)
            leader.proc.wait(10)
            _until(lambda: _leads(other.base), "taken over", 10 + TAKEOVER_S)
    finally:
        store.close()


def _utc(ts: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC)
