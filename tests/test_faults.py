"""Faults a real deployment meets: a worker SIGKILLed mid-run, concurrent load on two
gunicorn workers, and a database that cannot be written, is read-only, corrupt or on
a full disk. Webhooks keep answering; no acknowledged record is lost; the API says
what is wrong.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

import bridge.storage.sqlite as sqlite_backend

EXECUTION_ROUTES = [
    ("GET", "/api/v1/executions"),
    ("GET", "/api/v1/executions/stats"),
    ("GET", "/api/v1/executions/stats/ok"),
    ("GET", "/api/v1/executions/storage/info"),
    ("GET", "/api/v1/executions/some-id"),
    ("DELETE", "/api/v1/executions/cleanup"),
]


def _rows(db: Path) -> dict[str, tuple[str, str, str, str]]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return {
            r[0]: tuple(r[1:])
            for r in conn.execute(
                "SELECT id, plugin_name, status, error_type, worker FROM executions"
            )
        }
    finally:
        conn.close()


def _integrity(db: Path) -> tuple[str, list]:
    conn = sqlite3.connect(db, timeout=10)
    try:
        return (
            conn.execute("PRAGMA integrity_check").fetchone()[0],
            conn.execute("PRAGMA foreign_key_check").fetchall(),
        )
    finally:
        conn.close()


class Load:
    """Client threads posting to a plugin until `max_requests` or `seconds` run out."""

    def __init__(
        self, base: str, threads: int, max_requests: int, seconds: float, reads_every: int = 0
    ) -> None:
        self.base = base
        self.threads = threads
        self.max_requests = max_requests
        self.deadline = time.monotonic() + seconds
        self.reads_every = reads_every
        self.stop = threading.Event()
        self.sent = 0
        self.results: list[tuple[int | None, dict | None, str]] = []
        self.reads: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(30)

    def wait(self) -> None:
        for t in self._threads:
            t.join(max(0.0, self.deadline - time.monotonic()) + 15)

    def _take(self) -> int | None:
        with self._lock:
            if (
                self.stop.is_set()
                or self.sent >= self.max_requests
                or time.monotonic() > self.deadline
            ):
                return None
            self.sent += 1
            return self.sent

    def _run(self, worker: int) -> None:
        session = requests.Session()
        while (n := self._take()) is not None:
            try:
                r = session.post(f"{self.base}/api/v1/webhook/ok", json={"n": n}, timeout=15)
                body = (
                    r.json()
                    if r.headers.get("Content-Type", "").startswith("application/json")
                    else None
                )
                result = (r.status_code, body, r.text)
            except requests.RequestException as exc:
                session = requests.Session()
                result = (None, None, repr(exc))
            with self._lock:
                self.results.append(result)
            if self.reads_every and n % self.reads_every == 0:
                for url in (
                    "/api/v1/executions?limit=20",
                    "/api/v1/executions/stats?days=1",
                    "/health",
                ):
                    try:
                        r = session.get(f"{self.base}{url}", timeout=15)
                        read = (r.status_code, r.text)
                    except requests.RequestException as exc:
                        session = requests.Session()
                        read = (0, repr(exc))
                    with self._lock:
                        self.reads.append(read)


def _wait_until_closed(db: Path, seconds: float) -> dict[str, tuple[str, str, str, str]]:
    deadline = time.monotonic() + seconds
    while True:
        rows = _rows(db)
        if not any(r[1] in ("running", "pending") for r in rows.values()):
            return rows
        assert time.monotonic() < deadline, [
            r for r in rows.values() if r[1] in ("running", "pending")
        ]
        time.sleep(0.2)


@pytest.mark.slow
def test_sigkilled_worker_loses_no_acknowledged_record(gunicorn):
    """Kill the worker running most plugins while quick and slow runs are in flight."""
    with gunicorn(server={"threads": 6}) as server:
        slow: list[requests.Response | Exception] = []

        def post_slow() -> None:
            try:
                slow.append(
                    requests.post(
                        f"{server.base}/api/v1/webhook/sleepy", json={"seconds": 5}, timeout=30
                    )
                )
            except requests.RequestException as exc:
                slow.append(exc)

        slow_threads = [threading.Thread(target=post_slow) for _ in range(4)]
        with Load(server.base, threads=3, max_requests=400, seconds=30) as load:
            for t in slow_threads:
                t.start()
            deadline = time.monotonic() + 10
            by_worker: dict[str, int] = {}
            while sum(by_worker.values()) < 4:
                assert time.monotonic() < deadline, "the slow runs never showed as running"
                time.sleep(0.05)
                by_worker = {}
                for _plugin, status, _e, worker in _rows(server.db).values():
                    if status == "running" and _plugin == "sleepy":
                        by_worker[worker] = by_worker.get(worker, 0) + 1
            victim = max(by_worker, key=lambda w: by_worker[w])
            killed = int(victim.rpartition(":")[2])
            assert killed in server.workers()
            sent_before_kill = load.sent
            os.kill(killed, signal.SIGKILL)
            for t in slow_threads:
                t.join(30)
            # Keep the load on until the respawned worker has served a while too.
            deadline = time.monotonic() + 15
            while load.sent < sent_before_kill + 60 and time.monotonic() < deadline:
                time.sleep(0.05)
        rows = _wait_until_closed(server.db, 20)

    acked = [
        body["execution_id"]
        for status, body, _text in load.results
        if status is not None and 200 <= status < 300
    ]
    acked += [r.json()["execution_id"] for r in slow if isinstance(r, requests.Response) and r.ok]
    assert len(acked) > 60
    missing = [i for i in acked if i not in rows]
    assert not missing, f"{len(missing)} acknowledged runs have no record"
    assert all(rows[i][1] == "completed" for i in acked)
    interrupted = {i: r for i, r in rows.items() if r[1] != "completed"}
    assert interrupted, "the killed worker's runs were not closed"
    for _plugin, status, error_type, worker in interrupted.values():
        assert (status, error_type) == ("failed", "interrupted")
        assert worker.endswith(f":{killed}")
    killed_slow = [r for r in rows.values() if r[0] == "sleepy" and r[3] == victim]
    assert killed_slow and all(r[2] == "interrupted" for r in killed_slow)
    assert _integrity(server.db) == ("ok", [])


@pytest.mark.slow
def test_concurrent_load_on_two_workers_never_reports_a_locked_database(gunicorn):
    """Six client threads against two workers, with the background jobs running every
    second in one of them: each write waits its turn instead of failing."""
    with gunicorn(
        execution_tracking={
            "cleanup_interval": "1s",
            "metrics_aggregation_interval": "1s",
            "stale_check_interval": "1s",
        },
    ) as server:
        with Load(server.base, threads=6, max_requests=600, seconds=40, reads_every=10) as load:
            load.wait()
        healths = [requests.get(f"{server.base}/health", timeout=5).json() for _ in range(4)]
    log = server.log.read_text()
    assert load.sent == len(load.results) > 0
    failures = [(status, text[:200]) for status, _body, text in load.results if status != 200]
    assert not failures, failures[:5]
    assert all(status == 200 for status, _text in load.reads), [
        r for r in load.reads if r[0] != 200
    ][:5]
    for _status, _body, text in load.results:
        assert "database is locked" not in text
    assert not [text for _status, text in load.reads if "database is locked" in text]
    assert "database is locked" not in log
    assert "Execution tracking could not" not in log
    for health in healths:
        storage = health["checks"]["storage"]
        assert storage["status"] == "healthy" and storage["write_failures"]["count"] == 0
    rows = _rows(server.db)
    ids = {body["execution_id"] for _s, body, _t in load.results}
    assert len(rows) == load.sent and set(rows) == ids
    assert {r[1] for r in rows.values()} == {"completed"}
    assert _integrity(server.db) == ("ok", [])


@pytest.mark.slow
def test_chunked_body_over_the_limit_is_413_not_truncated(gunicorn):
    """A chunked body (no Content-Length) past the limit is refused, not run cut short."""
    limit = 64 * 1024

    def chunked(body: bytes):
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    with gunicorn(server={"max_body_size": limit}) as server:
        answers = []
        for content_type, body in [
            ("application/x-www-form-urlencoded", b"a=" + b"x" * (2 * limit)),
            ("application/json", b'{"a": 1}' + b" " * (2 * limit)),
        ]:
            r = requests.post(
                f"{server.base}/api/v1/webhook/ok",
                data=chunked(body),
                headers={"Content-Type": content_type},
                timeout=20,
            )
            answers.append((content_type, r.status_code, r.text[:120]))
        assert _rows(server.db) == {}
    assert [a[1] for a in answers] == [413, 413], answers


# -- storage faults, in process ----------------------------------------------------------
def _assert_webhooks_still_run(client) -> str:
    r = client.post("/api/v1/webhook/ok", json={"still": "works"})
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["data"]["echo"] == {"still": "works"}
    return r.get_json()["execution_id"]


def _assert_storage_reported(client, *reasons: str) -> dict:
    storage = client.get("/health").get_json()["checks"]["storage"]
    assert storage["status"] == "degraded", storage
    shown = f"{storage['message']} {storage['write_failures']['last_error']}"
    assert any(reason in shown for reason in reasons), storage
    return storage


def _assert_api_503(client, method: str, url: str, *reasons: str) -> None:
    r = client.open(url, method=method)
    body = r.get_json()
    assert r.status_code == 503, (url, r.status_code, body)
    assert r.mimetype == "application/json"
    assert body["code"] == 503 and body["status"] == "Service Unavailable"
    assert any(reason in body["message"] for reason in reasons), body


def _assert_tracking_off(client, *reasons: str) -> None:
    _assert_webhooks_still_run(client)
    _assert_storage_reported(client, *reasons)
    for method, url in EXECUTION_ROUTES:
        _assert_api_503(client, method, url, *reasons)


@pytest.fixture
def mounted(tmp_path):
    """Mount helpers for root; tests skip, saying why, where mounting is not allowed."""
    points: list[Path] = []

    def mount(*args: str, target: Path) -> None:
        target.mkdir(exist_ok=True)
        done = subprocess.run(
            ["mount", *args, str(target)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.skip(
                f"mount {' '.join(args)} is not permitted here (needs root with "
                f"CAP_SYS_ADMIN): {done.stderr.strip()}"
            )
        points.append(target)

    yield mount
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False)


def _chattr(flag: str, path: Path) -> None:
    done = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr {flag} does not work here: {done.stderr.strip()}")


def test_database_path_under_a_file(make_app, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    db = tmp_path / "afile" / "ex.db"
    client = make_app(storage={"sqlite": {"database_path": str(db)}}).test_client()
    _assert_tracking_off(client, f"{tmp_path / 'afile'} is a file, not a folder")
    assert (tmp_path / "afile").read_text() == "not a folder"


def test_database_folder_that_even_root_cannot_write(make_app, tmp_path):
    folder = tmp_path / "immutable"
    folder.mkdir()
    _chattr("+i", folder)
    try:
        client = make_app(
            storage={"sqlite": {"database_path": str(folder / "ex.db")}}
        ).test_client()
        _assert_tracking_off(client, "read-only")
    finally:
        _chattr("-i", folder)


def _database_with_records(make_app, db: Path, count: int = 3) -> list[str]:
    app = make_app(storage={"sqlite": {"database_path": str(db)}})
    client = app.test_client()
    ids = [
        client.post("/api/v1/webhook/ok", json={"i": i}).get_json()["execution_id"]
        for i in range(count)
    ]
    from bridge import shutdown_app

    shutdown_app(app, timeout=1)
    return ids


def test_read_only_database_file(make_app, tmp_path):
    db = tmp_path / "data" / "ex.db"
    _database_with_records(make_app, db)
    _chattr("+i", db)
    try:
        client = make_app(storage={"sqlite": {"database_path": str(db)}}).test_client()
        _assert_tracking_off(client, "readonly", "read-only")
    finally:
        _chattr("-i", db)


def test_database_on_a_read_only_mount(make_app, tmp_path, mounted):
    source = tmp_path / "volume"
    _database_with_records(make_app, source / "ex.db")
    target = tmp_path / "ro"
    mounted("--bind", str(source), target=target)
    mounted("-o", "remount,ro,bind", target=target)
    client = make_app(storage={"sqlite": {"database_path": str(target / "ex.db")}}).test_client()
    _assert_tracking_off(client, "read-only")


@pytest.mark.parametrize("damage", ["garbage", "damaged pages"])
def test_corrupt_database_file(make_app, tmp_path, damage):
    db = tmp_path / "data" / "ex.db"
    if damage == "garbage":
        db.parent.mkdir()
        db.write_bytes(os.urandom(16 * 1024))
        reason = "file is not a database"
    else:
        _database_with_records(make_app, db, count=40)
        data = bytearray(db.read_bytes())
        assert len(data) > 8 * 4096
        for offset in range(4096, len(data), 4096):  # every page but the first
            data[offset + 8 : offset + 512] = os.urandom(504)
        db.write_bytes(bytes(data))
        reason = "malformed"
    before = db.read_bytes()
    client = make_app(storage={"sqlite": {"database_path": str(db)}}).test_client()
    _assert_tracking_off(client, reason)
    assert db.read_bytes() == before, "the damaged file was changed: nothing left to rescue"


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


def test_full_disk(make_app, tmp_path, mounted):
    disk = tmp_path / "tiny"
    mounted("-t", "tmpfs", "-o", "size=512k", "tmpfs", target=disk)
    client = make_app(storage={"sqlite": {"database_path": str(disk / "ex.db")}}).test_client()
    first = _assert_webhooks_still_run(client)
    filler = _fill(disk)

    answered_while_full = []
    for _ in range(3):
        r = client.post("/api/v1/webhook/ok", json={"blob": "x" * 20_000})
        assert r.status_code == 200 and r.get_json()["data"]["echo"]["blob"] == "x" * 20_000
        answered_while_full.append(r.get_json()["execution_id"])
    storage = _assert_storage_reported(client, "database or disk is full")
    assert storage["write_failures"]["count"] >= 1
    assert storage["write_failures"]["last_at"].endswith("Z")
    info = client.get("/api/v1/executions/storage/info").get_json()
    assert info["healthy"] is False and "disk is full" in info["health_message"]
    listed = client.get("/api/v1/executions").get_json()
    assert first in [e["id"] for e in listed["executions"]]
    _assert_api_503(client, "DELETE", "/api/v1/executions/cleanup", "database or disk is full")

    filler.unlink()
    later = _assert_webhooks_still_run(client)
    record = client.get(f"/api/v1/executions/{later}").get_json()["execution"]
    assert record["status"] == "completed"
    # The runs answered while the disk was full end as their callers were told.
    deadline = time.monotonic() + 10
    for execution_id in answered_while_full:
        while client.get(f"/api/v1/executions/{execution_id}").status_code != 200:
            assert time.monotonic() < deadline, f"{execution_id} was never written"
            time.sleep(0.05)
        kept = client.get(f"/api/v1/executions/{execution_id}").get_json()["execution"]
        assert kept["status"] == "completed" and kept["attempts"] == 1
    while (health := client.get("/health").get_json()["checks"]["storage"])["unsaved_records"]:
        assert time.monotonic() < deadline, health
        time.sleep(0.02)
    assert health["status"] == "healthy", health


class _Fault:
    error: str | None = None


class _FailingConnection:
    """A real connection whose COMMIT fails with `fault.error` while it is set."""

    def __init__(self, conn: sqlite3.Connection, fault: _Fault) -> None:
        self._conn = conn
        self._fault = fault

    def execute(self, sql: str, *args):
        if self._fault.error and sql.strip().upper() == "COMMIT":
            raise sqlite3.OperationalError(self._fault.error)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


@pytest.mark.parametrize(
    "error", ["database or disk is full", "attempt to write a readonly database"]
)
def test_injected_write_errors_then_recovery(make_app, monkeypatch, error):
    fault = _Fault()
    real_connect = sqlite_backend.connect
    monkeypatch.setattr(
        sqlite_backend, "connect", lambda *a, **k: _FailingConnection(real_connect(*a, **k), fault)
    )
    client = make_app().test_client()
    _assert_webhooks_still_run(client)
    fault.error = error
    lost = _assert_webhooks_still_run(client)
    _assert_storage_reported(client, error)
    _assert_api_503(client, "DELETE", "/api/v1/executions/cleanup", error)
    assert client.get(f"/api/v1/executions/{lost}").status_code == 404
    fault.error = None
    kept = _assert_webhooks_still_run(client)
    assert client.get(f"/api/v1/executions/{kept}").get_json()["execution"]["status"] == "completed"
    # The run answered during the fault is written once writes work again.
    deadline = time.monotonic() + 10
    while client.get(f"/api/v1/executions/{lost}").status_code != 200:
        assert time.monotonic() < deadline, "the held final record was never written"
        time.sleep(0.02)
    assert client.get(f"/api/v1/executions/{lost}").get_json()["execution"]["status"] == "completed"
    while (storage := client.get("/health").get_json()["checks"]["storage"])["unsaved_records"]:
        assert time.monotonic() < deadline, storage
        time.sleep(0.02)
    assert storage["status"] == "healthy" and storage["write_failures"]["count"] >= 1


@pytest.mark.slow
def test_full_disk_under_gunicorn_ends_each_answered_run_as_answered(gunicorn, tmp_path, mounted):
    """The disk fills while a real server runs: webhooks keep answering 200, and once
    space is freed every run they answered is in the history as completed."""
    disk = tmp_path / "tiny"
    mounted("-t", "tmpfs", "-o", "size=4m", "tmpfs", target=disk)
    db = disk / "ex.db"
    with gunicorn(storage={"sqlite": {"database_path": str(db)}}) as server:
        url = f"{server.base}/api/v1/webhook/ok"
        assert requests.post(url, json={"before": True}, timeout=10).status_code == 200
        filler = _fill(disk)
        answered = []
        for i in range(6):  # each needs new pages: more than any WAL space left over
            r = requests.post(url, json={"blob": "x" * 100_000, "i": i}, timeout=30)
            assert r.status_code == 200, r.text
            answered.append(r.json()["execution_id"])
        # Each /health answers for the worker it reaches: one that wrote says degraded.
        states = [
            requests.get(f"{server.base}/health", timeout=10).json()["checks"]["storage"]
            for _ in range(20)
        ]
        assert any(s["status"] == "degraded" and s["unsaved_records"] for s in states), states
        filler.unlink()
        deadline = time.monotonic() + 20
        for execution_id in answered:
            while True:
                r = requests.get(f"{server.base}/api/v1/executions/{execution_id}", timeout=10)
                if r.status_code == 200 and r.json()["execution"]["status"] == "completed":
                    break
                assert time.monotonic() < deadline, (execution_id, r.status_code, r.text[:300])
                time.sleep(0.1)


@pytest.mark.slow
def test_a_store_that_could_not_open_is_opened_once_it_can_be(gunicorn, tmp_path):
    """The database folder is blocked when gunicorn starts (a file in the way): webhooks
    run, /health says degraded; once the path is fixed every worker opens the store
    on its own and records runs again, with no restart."""
    (tmp_path / "blocked").write_text("a file where the database folder should be")
    db = tmp_path / "blocked" / "ex.db"
    with gunicorn(storage={"sqlite": {"database_path": str(db)}}) as server:
        url = f"{server.base}/api/v1/webhook/ok"
        assert requests.post(url, json={}, timeout=10).status_code == 200
        health = requests.get(f"{server.base}/health", timeout=10).json()["checks"]["storage"]
        assert health["status"] == "degraded" and "is a file" in health["message"]
        (tmp_path / "blocked").unlink()
        deadline = time.monotonic() + 20
        recorded: set[int] = set()
        while len(recorded) < 2:  # a run recorded by each of the two workers
            r = requests.post(f"{server.base}/api/v1/webhook/sleepy", json={}, timeout=10)
            assert r.status_code == 200
            got = requests.get(
                f"{server.base}/api/v1/executions/{r.json()['execution_id']}", timeout=10
            )
            if got.status_code == 200:
                recorded.add(r.json()["data"]["pid"])
            assert time.monotonic() < deadline, "the store was never opened again"
            time.sleep(0.1)
        health = requests.get(f"{server.base}/health", timeout=10).json()["checks"]["storage"]
        assert health["status"] == "healthy", health
        while True:  # and one of the workers now leads the background jobs
            sched = requests.get(f"{server.base}/health", timeout=10).json()["checks"]
            if sched["scheduler"]["leader"] and sched["scheduler"]["jobs"]:
                break
            assert time.monotonic() < deadline, sched["scheduler"]
            time.sleep(0.1)


@pytest.mark.slow
def test_a_read_only_shm_file_while_serving_ends_in_recovery(gunicorn, tmp_path):
    """The -shm file is made immutable while gunicorn serves. A worker that writes
    through its mapping of it dies of SIGBUS (the kernel refuses the page; SQLite cannot
    catch that) and gunicorn starts another; the new workers cannot open the store
    for writing, answer webhooks without tracking and say so; once the file is
    writable again they open the store by themselves and record runs."""
    with gunicorn() as server:
        url = f"{server.base}/api/v1/webhook/sleepy"
        assert requests.post(url, json={}, timeout=10).status_code == 200
        shm = Path(f"{server.db}-shm")
        assert shm.exists()
        _chattr("+i", shm)
        try:
            deadline = time.monotonic() + 30
            while True:  # until every worker is one that started after the fault
                with contextlib.suppress(requests.RequestException):
                    requests.post(url, json={}, timeout=5)
                    checks = requests.get(f"{server.base}/health", timeout=5).json()["checks"]
                    if checks["storage"]["status"] == "degraded" and "readonly" in (
                        checks["storage"]["message"] + checks["storage"]["disabled_reason"]
                    ):
                        break
                assert time.monotonic() < deadline, "the workers never reported the fault"
                time.sleep(0.2)
            r = requests.post(url, json={}, timeout=10)
            assert r.status_code == 200  # webhooks still run
        finally:
            _chattr("-i", shm)
        deadline = time.monotonic() + 30
        while True:
            r = requests.post(url, json={}, timeout=10)
            got = requests.get(
                f"{server.base}/api/v1/executions/{r.json()['execution_id']}", timeout=10
            )
            if r.status_code == 200 and got.status_code == 200:
                break
            assert time.monotonic() < deadline, "tracking never came back"
            time.sleep(0.2)


@pytest.mark.slow
def test_the_database_file_deleted_while_serving_loses_no_answered_run(gunicorn):
    """`rm data/executions.db` while gunicorn serves: /health says so until the next
    write, which puts the database back from the open connections; every run answered
    before and after is in it, also after a restart."""
    answered: list[str] = []
    with gunicorn() as server:
        url = f"{server.base}/api/v1/webhook/ok"

        def deliver(n: int) -> None:
            for i in range(n):
                r = requests.post(url, json={"n": i}, timeout=10)
                assert r.status_code == 200
                answered.append(r.json()["execution_id"])

        deliver(10)
        server.db.unlink()
        health = requests.get(f"{server.base}/health", timeout=10).json()["checks"]["storage"]
        # Degraded until the next write, unless a background job's write (a rollup,
        # say) put the file back already.
        deleted = health["status"] == "degraded" and "was deleted" in health["message"]
        assert deleted or server.db.exists(), health
        deliver(10)
        assert server.db.exists()
        for execution_id in answered:
            r = requests.get(f"{server.base}/api/v1/executions/{execution_id}", timeout=10)
            assert r.status_code == 200 and r.json()["execution"]["status"] == "completed"
        health = requests.get(f"{server.base}/health", timeout=10).json()["checks"]["storage"]
        assert health["status"] == "healthy", health
    assert "was deleted while running; it was written again" in server.log.read_text()
    with sqlite3.connect(server.db) as conn:  # after a clean stop
        stored = {row[0] for row in conn.execute("SELECT id FROM executions")}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert set(answered) <= stored
