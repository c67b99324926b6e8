"""Every run ends in Tracker.end_run, however it ends, and emits one RunFinished that
listeners (live metrics, later Prometheus and alerts) hear."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

import pytest
from storage.databases import ON_EVERY_BACKEND

from bridge import clock
from bridge.events import RunFinished
from bridge.model import ExecutionRecord, Run, Status
from bridge.tracking import starts
from bridge.tracking.ids import uuid7
from bridge.tracking.tracker import worker_id


@pytest.fixture
def heard(app) -> list[RunFinished]:
    events: list[RunFinished] = []
    app.extensions["bridge.events"].add_listener(events.append)
    return events


def _open_row(store, run_id: str, worker: str, started=None) -> None:
    store.insert(
        ExecutionRecord(
            id=run_id,
            plugin_name="ok",
            http_method="POST",
            start_time=started or clock.utcnow(),
            status=Status.RUNNING,
            worker=worker,
        ),
        wait=True,
    )


@pytest.mark.parametrize(
    ("plugin", "status", "error_type", "code"),
    [
        ("ok", Status.COMPLETED, "", 200),
        ("raising", Status.FAILED, "validation_error", 500),
        ("hanging", Status.TIMEOUT, "timeout", 504),
    ],
)
def test_each_run_emits_one_event_matching_its_record(
    client, app, heard, plugin, status, error_type, code
):
    r = client.post(f"/api/v1/webhook/{plugin}", json={})
    assert r.status_code == code
    (event,) = heard
    record = app.extensions["bridge.storage"].store.get(r.get_json()["execution_id"])
    assert (event.execution_id, event.status, event.error_type) == (record.id, status, error_type)
    assert (record.status, record.error_type) == (status, error_type)
    assert event.how == "run" and event.attempts == record.attempts == 1
    assert event.duration == record.duration > 0
    assert len(record.attempt_records) == 1


@ON_EVERY_BACKEND
def test_rejected_delivery_ends_through_the_same_path(make_app, monkeypatch):
    monkeypatch.setenv("TEST_GITHUB_SECRET", "s3cret")
    app = make_app()
    heard: list[RunFinished] = []
    app.extensions["bridge.events"].add_listener(heard.append)
    r = app.test_client().post("/api/v1/webhook/signed", json={"x": 1})
    assert r.status_code == 401
    (event,) = heard
    assert (event.status, event.error_type, event.how) == (
        Status.FAILED,
        "unauthorized",
        "rejected",
    )
    realtime = app.test_client().get("/api/v1/executions/stats/signed").get_json()["realtime"]
    assert realtime["failed_executions"] == 1


@ON_EVERY_BACKEND
def test_stale_and_shutdown_endings_reach_live_metrics(app, heard):
    store = app.extensions["bridge.storage"].store
    tracker = app.extensions["bridge.tracker"]
    host = os.uname().nodename
    _open_row(store, "dead", f"{host}:999999")
    _open_row(store, "mine", f"{host}:{os.getpid()}")
    assert tracker.recover_stale() == 1
    assert tracker.close_own_runs() == 1
    assert [(e.execution_id, e.status, e.how) for e in heard] == [
        ("dead", Status.FAILED, "stale"),
        ("mine", Status.CANCELED, "shutdown"),
    ]
    assert all(e.error_type == "interrupted" for e in heard)
    assert store.get("dead").error.startswith("Interrupted: the process running it")
    assert store.get("mine").error == "Canceled: the server shut down during the run"
    realtime = app.test_client().get("/api/v1/executions/stats/ok").get_json()["realtime"]
    assert realtime["total_executions"] == 2 and realtime["failed_executions"] == 2


def _run_in_thread(app, plugin: str, data: dict) -> tuple[Run, threading.Thread]:
    """`plugin` run through the runner, as a webhook runs it, in a thread of its own."""
    run = Run(
        plugin=app.extensions["bridge.registry"].get(plugin),
        method="POST",
        data=data,
        execution_id=str(uuid7()),
        trace_id=uuid7().hex,
        start_time=clock.utcnow(),
    )
    thread = threading.Thread(target=app.extensions["bridge.runner"].run, args=(run,))
    thread.start()
    return run, thread


@ON_EVERY_BACKEND
def test_a_run_shows_as_running_once_it_lasts_and_a_quick_one_is_written_at_its_end(
    make_app,
):
    """A run's `running` row is written when it has lasted a few milliseconds (Starts);
    a run that ends first is written once, whole, and leaves nothing waiting."""
    app = make_app()
    store = app.extensions["bridge.storage"].store
    tracker = app.extensions["bridge.tracker"]
    run, thread = _run_in_thread(app, "sleepy", {"seconds": 1.5})
    deadline = time.monotonic() + 1.2
    while (record := store.get(run.execution_id)) is None:
        assert time.monotonic() < deadline, "the run never showed as running"
        time.sleep(0.01)
    assert record.status is Status.RUNNING and record.worker == worker_id()
    assert '"seconds": 1.5' in record.input
    thread.join(10)
    assert store.get(run.execution_id).status is Status.COMPLETED
    r = app.test_client().post("/api/v1/webhook/ok", json={"n": 1})
    record = store.get(r.get_json()["execution_id"])
    assert (record.status, record.input, record.attempts) == (Status.COMPLETED, '{"n": 1}', 1)
    assert len(tracker.starts) == 0


def test_a_run_that_lasts_after_a_quiet_spell_still_shows_as_running(make_app, monkeypatch):
    """The thread that writes `running` rows looks every few milliseconds while runs
    come, and sleeps once none came for a while: the first run after such a spell
    wakes it, and shows in the history while it runs."""
    monkeypatch.setattr(starts, "QUIET_S", 0.05)
    app = make_app()
    store = app.extensions["bridge.storage"].store
    assert app.test_client().post("/api/v1/webhook/ok", json={}).status_code == 200
    time.sleep(0.3)  # no run for six quiet spells: the thread sleeps
    run, thread = _run_in_thread(app, "sleepy", {"seconds": 1.5})
    deadline = time.monotonic() + 1.2
    while (record := store.get(run.execution_id)) is None:
        assert time.monotonic() < deadline, "the run never showed as running"
        time.sleep(0.01)
    assert record.status is Status.RUNNING
    thread.join(10)


@ON_EVERY_BACKEND
def test_shutdown_cancels_a_run_whose_running_row_is_not_written_yet(make_app, monkeypatch):
    app = make_app()
    store = app.extensions["bridge.storage"].store
    tracker = app.extensions["bridge.tracker"]
    monkeypatch.setattr(tracker.starts, "_delay", 30.0)  # as if shut down within the delay
    run, thread = _run_in_thread(app, "sleepy", {"seconds": 1})
    deadline = time.monotonic() + 5
    while not len(tracker.starts):
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.01)
    assert store.get(run.execution_id) is None
    assert tracker.close_own_runs() == 1
    record = store.get(run.execution_id)
    assert (record.status, record.error_type) == (Status.CANCELED, "interrupted")
    thread.join(10)


def test_a_plugin_whose_class_allows_longer_runs_is_not_stale_sooner(make_app, plugin_dir):
    """A plugin's class may set a timeout longer than the config's: a run of it, still
    going in a live process, is not closed as stale at the config's longest time."""
    (plugin_dir / "patient.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n"
        "class Plugin(BasePlugin):\n"
        "    timeout = '10m'\n"
        "    def handle(self):\n        return {}\n"
    )
    app = make_app()
    store = app.extensions["bridge.storage"].store
    tracker = app.extensions["bridge.tracker"]
    config_longest = app.extensions["bridge.config"].longest_run
    assert tracker.max_run_seconds >= 600 > config_longest
    started = clock.utcnow() - timedelta(seconds=config_longest + 301)
    _open_row(store, "patient-run", f"{os.uname().nodename}:{os.getpid()}", started=started)
    assert tracker.recover_stale() == 0
    assert store.get("patient-run").status is Status.RUNNING


def test_a_live_run_of_another_host_is_left_open_until_too_old(app, heard):
    store = app.extensions["bridge.storage"].store
    tracker = app.extensions["bridge.tracker"]
    _open_row(store, "elsewhere", "other-host:1")
    assert tracker.recover_stale() == 0 and heard == []
    long_ago = clock.utcnow() - timedelta(seconds=tracker.max_run_seconds + 301)
    _open_row(store, "ancient", "other-host:2", started=long_ago)
    assert tracker.recover_stale() == 1
    assert store.get("elsewhere").status is Status.RUNNING
    assert store.get("ancient").status is Status.FAILED


def test_a_failing_listener_never_affects_the_run(client, app, heard):
    def broken(event: RunFinished) -> None:
        raise RuntimeError("listener bug")

    app.extensions["bridge.events"].add_listener(broken)
    r = client.post("/api/v1/webhook/ok", json={})
    assert r.status_code == 200 and len(heard) == 1


def test_without_tracking_events_still_flow(make_app):
    app = make_app(execution_tracking={"enabled": False})
    heard: list[RunFinished] = []
    app.extensions["bridge.events"].add_listener(heard.append)
    assert app.test_client().post("/api/v1/webhook/ok", json={}).status_code == 200
    assert [e.status for e in heard] == [Status.COMPLETED]


def test_create_app_starts_nothing(make_app, tmp_path):
    import atexit
    import logging

    make_app()  # first imports (some libraries register exit hooks when imported)
    threads = set(threading.enumerate())
    handlers = list(logging.getLogger().handlers)
    exits = atexit._ncallbacks()
    app = make_app(scheduler={"enabled": True})
    assert set(threading.enumerate()) - threads == set()  # earlier tests' may end meanwhile
    assert atexit._ncallbacks() == exits
    assert logging.getLogger().handlers == handlers
    assert app.extensions["bridge.scheduler"].status()["leader"] is False

    from bridge import start_services

    start_services(app)
    start_services(app)  # a second call does nothing
    deadline = time.monotonic() + 5
    while not app.extensions["bridge.scheduler"].status()["jobs"]:
        assert time.monotonic() < deadline, "the scheduler never started"
        time.sleep(0.01)
    assert app.extensions["bridge.scheduler"].status()["leader"] is True


def test_a_job_the_shutdown_cuts_short_logs_one_line_not_a_traceback(make_app, caplog):
    """A cleanup still running when the process stops finds the store closed under it:
    an expected end, logged as one warning, where it was an ERROR with two tracebacks."""
    from bridge import shutdown_app, start_services

    app = make_app(scheduler={"enabled": True})
    start_services(app)
    scheduler = app.extensions["bridge.scheduler"]
    shutdown_app(app, timeout=1.0)
    caplog.clear()
    scheduler._job("cleanup", scheduler.run_cleanup)  # as APScheduler's thread runs it
    cut = [r for r in caplog.records if "cleanup" in r.getMessage()]
    assert [r.levelname for r in cut] == ["WARNING"], caplog.text
    assert "cut short by shutdown" in cut[0].getMessage() and cut[0].exc_info is None
    assert scheduler.last_runs["cleanup"]["ok"] is False
