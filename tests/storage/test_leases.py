"""Leases on every backend: closing leftover `running` rows closes only those of a
process whose lease ran out, never a live run of another host; a row of a process
that never had a lease is retired only by its age, as before leases."""

from __future__ import annotations

from bridge import clock
from bridge.model import ExecutionRecord, Status
from bridge.tracking.leases import PREFIX, Leases, lease_key
from bridge.tracking.tracker import LEASE_KEPT_S


def _open_row(store, run_id: str, worker: str) -> None:
    store.insert(
        ExecutionRecord(
            id=run_id,
            plugin_name="ok",
            http_method="POST",
            start_time=clock.utcnow(),
            status=Status.RUNNING,
            worker=worker,
        ),
        wait=True,
    )


def _lease_of(app, worker: str) -> Leases:
    tracker = app.extensions["bridge.tracker"]
    return Leases(tracker.storage, tracker.leases.every, lambda: worker)


def test_only_a_dead_hosts_rows_are_closed(backend_app, frozen_clock):
    app = backend_app
    tracker = app.extensions["bridge.tracker"]
    store = app.extensions["bridge.storage"].store
    live, dead = _lease_of(app, "live-host:11"), _lease_of(app, "dead-host:22")
    assert live.renew() and dead.renew()
    _open_row(store, "live-run", "live-host:11")
    _open_row(store, "dead-run", "dead-host:22")
    _open_row(store, "unleased-run", "old-host:33")

    assert tracker.recover_stale() == 0  # every lease still runs
    frozen_clock.advance(dead.ttl / 2)
    assert live.renew()  # the live host keeps renewing; the dead one stopped
    frozen_clock.advance(dead.ttl / 2 + 1)
    assert tracker.leases.alive("dead-host:22") is False
    assert tracker.leases.alive("live-host:11") is True
    assert tracker.leases.alive("old-host:33") is None

    assert tracker.recover_stale() == 1
    closed = store.get("dead-run")
    assert (closed.status, closed.error_type) == (Status.FAILED, "interrupted")
    assert "dead-host:22" in closed.error
    assert store.get("live-run").status is Status.RUNNING
    assert store.get("unleased-run").status is Status.RUNNING

    # A row older than any run can last is closed whatever its lease says.
    frozen_clock.advance(tracker.max_run_seconds + 301)
    assert live.renew()
    assert tracker.recover_stale() == 2
    assert store.get("live-run").status is Status.FAILED


def test_a_stopped_process_ends_its_lease(backend_app):
    leases = _lease_of(backend_app, "host-x:1")
    leases.start()
    assert leases.alive("host-x:1") is True
    leases.stop()
    assert leases.alive("host-x:1") is False


def test_leases_that_ran_out_a_day_ago_are_forgotten(backend_app, frozen_clock):
    app = backend_app
    tracker = app.extensions["bridge.tracker"]
    store = app.extensions["bridge.storage"].store
    gone, recent, live = (_lease_of(app, w) for w in ("gone:1", "recent:2", "live:3"))
    assert gone.renew()
    frozen_clock.advance(LEASE_KEPT_S)  # "gone" ran out a day ago, less its ttl
    assert recent.renew() and live.renew()
    frozen_clock.advance(gone.ttl + recent.ttl + 1)  # "recent" ran out just now
    assert live.renew()
    tracker.recover_stale()
    with store.snapshot() as reader:
        kept = set(reader.states(PREFIX))
    assert kept == {lease_key("recent:2"), lease_key("live:3")}
    assert tracker.leases.alive("recent:2") is False  # still told apart from "never had one"
