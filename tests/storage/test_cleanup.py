"""The store contract, cleanup: delete_batch and compact as bridge.storage.cleanup uses
them. Open runs are never deleted, and stats outlive the runs deleted."""

from __future__ import annotations

from datetime import timedelta

from bridge.model import ExecutionFilter
from bridge.storage.base import LAST_CLEANUP
from bridge.storage.cleanup import cleanup
from bridge.storage.stats import window_stats

from .runs import NOW, running


def _ids(store) -> list[str]:
    with store.snapshot() as reader:
        records, _ = reader.page(ExecutionFilter(), 1000, 0, None)
    return sorted(r.id for r in records)


def test_delete_batch_takes_the_oldest_finished_runs_first(history):
    history.insert(running("open-old", NOW - timedelta(days=30)), wait=True)
    cutoff = NOW - timedelta(hours=100)  # r50 .. r59 started before it
    assert history.delete_batch(cutoff, 4) == 4
    assert not {"r56", "r57", "r58", "r59"} & set(_ids(history))
    assert history.delete_batch(cutoff, 100) == 6
    assert history.delete_batch(cutoff, 100) == 0
    assert "open-old" in _ids(history) and len(_ids(history)) == 51
    assert history.get("r59") is None


def test_cleanup_never_deletes_open_runs(history):
    history.insert(running("open-old", NOW - timedelta(days=30)), wait=True)
    result = cleanup(history, 2, NOW)  # runs started more than 48 hours ago
    assert result.deleted == 36 and result.cutoff == NOW - timedelta(days=2)
    assert "open-old" in _ids(history) and len(_ids(history)) == 25


def test_cleanup_keeps_the_stats_and_notes_what_it_did(history):
    history.insert(running("open-now", NOW - timedelta(minutes=5)), wait=True)
    stats = window_stats(history, 7, None, NOW)
    assert cleanup(history, 2, NOW).deleted == 36
    assert window_stats(history, 7, None, NOW) == stats
    with history.snapshot() as reader:
        last = reader.state(LAST_CLEANUP)
    assert last["deleted"] == 36 and last["cutoff"] == "2026-03-08T12:30:00.000000Z"
    assert history.info().last_cleanup == last


def test_cleanup_of_everything_finished_and_compaction(history):
    assert cleanup(history, 0, NOW + timedelta(days=1)).deleted == 60
    history.compact(1.0)  # nothing left to compact: returns at once
    assert _ids(history) == []
    assert window_stats(history, 7, None, NOW)["total_executions"] == 60
