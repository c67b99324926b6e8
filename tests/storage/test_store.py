"""The store contract, the store itself: info, health, the leader lock, and the backend
list that config and open_store share."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

from bridge.config import StorageConfig
from bridge.model import AttemptRecord, ExecutionFilter, Status
from bridge.storage import BACKENDS as OPENERS
from bridge.storage import group_commit
from bridge.storage.rollup import EPOCH, hour_start, rollup
from bridge.storage.stats import list_page

from .conftest import BACKENDS
from .runs import NOW, finished, running, sixty_runs


def test_every_configurable_backend_opens_and_is_tested():
    assert set(OPENERS) == set(StorageConfig.types()) == set(BACKENDS)


def test_info_of_an_empty_store(store, backend):
    info = store.info()
    assert info.type == backend == store.kind
    assert (info.total_records, info.oldest_record, info.newest_record) == (0, None, None)
    assert info.schema_version > 0 and info.retention_days == 30
    assert info.last_cleanup is None and info.rollup_watermark == EPOCH
    assert info.location and info.size_bytes > 0
    assert 0 <= info.open_connections <= info.max_connections
    assert info.backend is not None


def test_info_of_a_store_with_runs(history):
    rollup(history, NOW)
    info = history.info()
    runs = sixty_runs()
    assert info.total_records == 60
    assert info.oldest_record == runs[-1].start_time and info.newest_record == runs[0].start_time
    assert info.rollup_watermark == hour_start(NOW)


def test_health(store):
    assert store.health() == (True, "ok")


def test_one_leader_at_a_time(store, make_store, backend):
    first, second = store.leader_lock("jobs"), make_store(backend).leader_lock("jobs")
    assert first.try_acquire() is True
    assert second.try_acquire() is False
    other = store.leader_lock("other")
    assert other.try_acquire() is True  # another name, another lock
    other.release()
    first.release()
    assert second.try_acquire() is True
    assert first.try_acquire() is False
    second.release()
    assert first.try_acquire() is True
    first.release()


def test_a_second_store_on_the_same_database_sees_the_runs(history, make_store, backend):
    other = make_store(backend)
    assert other.get("r7") == history.get("r7") and other.get("r7").start_time == (
        NOW - timedelta(hours=15)
    )


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_a_record_the_server_refuses_loses_only_itself_in_a_group_commit(
    store, backend, write_errors
):
    """Concurrent requests' records share one transaction on a server database; one
    the server refuses (an attempt count past its integer column) fails alone."""
    refused = replace(finished("refused", NOW - timedelta(minutes=2)), attempts=2**40)
    store.update(refused, wait=False)  # queued: the next waiting write commits it too
    store.update(finished("kept", NOW - timedelta(minutes=1)), wait=True)
    assert store.get("kept") is not None
    deadline = time.monotonic() + 10
    while not write_errors:
        assert time.monotonic() < deadline, "the refused write was never reported"
        time.sleep(0.05)
    assert store.get("refused") is None
    assert "range" in str(write_errors[0]).lower()
    store.update(finished("after", NOW), wait=True)  # the writer goes on
    assert store.get("after") is not None


def _busy_writer(store):
    """Keep the store's writer committing until the event returned is set: the writes
    queued meanwhile are committed together."""
    writer = store._writer() if callable(store._writer) else store._writer
    gate, inside = threading.Event(), threading.Event()

    def hold(conn):
        inside.set()
        gate.wait(10)

    writer.submit(hold, wait=False)
    assert inside.wait(10)
    return gate


def test_runs_queued_together_are_each_written_whole(store):
    """Records queued by concurrent requests are committed together (on PostgreSQL in
    one statement per kind): each keeps its own row, attempts, tags and claim."""
    assert store.claim_delivery("a", "k1", "done-1", NOW, 3600.0) is None
    assert store.claim_delivery("a", "k2", "done-2", NOW, 3600.0) is None
    second = NOW + timedelta(milliseconds=5)
    failed = finished("done-2", NOW, status=Status.FAILED, idempotency_key="k2")
    failed.attempts, failed.retry_count = 2, 1
    failed.attempt_records = [
        AttemptRecord(1, NOW, second, Status.FAILED, "boom", "E", 5_000_000),
        AttemptRecord(2, second, second, Status.FAILED, "boom again", "E", 1_000),
    ]
    gate = _busy_writer(store)
    store.insert(running("new-1", NOW, tags='{"env": "prod"}'), wait=False)
    store.insert(running("new-2", NOW, plugin="b"), wait=False)
    store.update(
        finished("done-1", NOW, idempotency_key="k1", delivery_answer='{"output": "1"}'),
        wait=False,
    )
    store.update(failed, wait=False)
    last = threading.Thread(
        target=store.update, args=(finished("last", NOW, tags='{"env": "prod"}'),)
    )
    last.start()
    time.sleep(group_commit.LINGER_S * 3)  # the start rows linger no more
    gate.set()
    last.join(10)

    assert store.get("new-1").status is Status.RUNNING and store.get("new-2").plugin_name == "b"
    assert store.get("done-1").status is Status.COMPLETED
    stored = store.get("done-2")
    assert (stored.status, stored.attempts, stored.retry_count) == (Status.FAILED, 2, 1)
    assert [(a.number, a.error) for a in stored.attempt_records] == [
        (1, "boom"),
        (2, "boom again"),
    ]
    assert len(store.get("last").attempt_records) == 1
    tagged = list_page(store, ExecutionFilter(tags=(("env", "prod"),)), 10, 0, None)
    assert sorted(r.id for r in tagged.records) == ["last", "new-1"]
    first = store.claim_delivery("a", "k1", "again", NOW, 3600.0)
    assert (first.state, first.answer) == ("completed", '{"output": "1"}')
    assert store.claim_delivery("a", "k2", "again", NOW, 3600.0).state == "failed"
