"""The store contract, rollups: written through the protocol's rollup primitives by
bridge.storage.rollup, idempotent, never past a run still open."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.errors import StorageError
from bridge.model import Status
from bridge.storage.base import (
    DAILY_WATERMARK,
    DAY,
    HOUR,
    LAST_CLEANUP,
    ROLLUP_WATERMARK,
    Rollup,
    Span,
)
from bridge.storage.rollup import ALL_PLUGINS, EPOCH, hour_start, rollup, watermark
from bridge.storage.rollups import Aggregate
from bridge.storage.stats import window_stats

from .runs import NOW, finished, running


def _rollups(store, grain):
    with store.snapshot() as reader:
        return sorted(
            (r.plugin, r.start, r.aggregate.counts(), dict(r.aggregate.histogram))
            for r in reader.rollups(grain, EPOCH, NOW + timedelta(days=1))
        )


def test_rollup_rows_are_written_and_read_back(store):
    agg = Aggregate()
    agg.add("completed", "", 5_000_000)
    agg.add("failed", "timeout", 7_000_000)
    hour = hour_start(NOW)
    store.write(lambda w: w.put_rollups(HOUR, [Rollup("a", hour, agg), Rollup("b", hour, agg)]))
    store.write(lambda w: w.put_rollups(HOUR, [Rollup("a", hour, agg)]))  # replaces
    with store.snapshot() as reader:
        rows = reader.rollups(HOUR, hour, hour + timedelta(hours=1), "a")
        assert [(r.plugin, r.start) for r in rows] == [("a", hour)]
        assert rows[0].aggregate == agg
        assert reader.rollup_plugins(HOUR, hour, hour + timedelta(hours=1)) == {"a", "b"}
        assert reader.rollup_plugins(HOUR, EPOCH, hour) == set()
        span = (hour, hour + timedelta(hours=1))
        assert reader.rollup_count([Span(HOUR, *span)]) == 4
        assert reader.rollup_count([Span(HOUR, *span, "b")]) == 2
        assert reader.rollup_count([Span(HOUR, *span)], status=Status.FAILED) == 2
        assert reader.rollup_count([Span(HOUR, *span)], error_type="timeout") == 2
        assert reader.rollup_count([Span(HOUR, *span)], error_type="unknown_error") == 0
        # Spans are summed: the same hour of each plugin, an empty one, and none at all.
        both = [Span(HOUR, *span, "a"), Span(HOUR, *span, "b"), Span(HOUR, EPOCH, hour)]
        assert reader.rollup_count(both, error_type="timeout") == 2
        assert reader.rollup_count(both, status=Status.COMPLETED) == 2
        assert reader.rollup_count([]) == 0
    store.write(lambda w: w.delete_rollups(HOUR, hour, hour + timedelta(hours=1)))
    assert _rollups(store, HOUR) == []


def test_state_values_are_kept(store):
    with store.snapshot() as reader:
        assert reader.state("k") is None
    store.write(lambda w: w.set_state("k", {"at": "now", "n": [1, 2]}))
    store.write(lambda w: w.set_state("n", 7))
    with store.snapshot() as reader:
        assert (reader.state("k"), reader.state("n")) == ({"at": "now", "n": [1, 2]}, 7)


def test_the_kept_states_are_read_together_and_a_write_sees_its_own(store):
    """A snapshot reads the watermarks and the last cleanup in one go (each of its
    readers asks for two or three); one of them unset is None, and a write transaction
    that sets one reads the new value back."""
    store.write(lambda w: w.set_state(ROLLUP_WATERMARK, 3600))
    store.write(lambda w: w.set_state(LAST_CLEANUP, {"deleted": 5}))
    with store.snapshot() as reader:
        assert reader.state(DAILY_WATERMARK) is None
        assert reader.state(ROLLUP_WATERMARK) == 3600
        assert reader.state(LAST_CLEANUP) == {"deleted": 5}

    def move(writer):
        before = writer.state(ROLLUP_WATERMARK)
        writer.set_state(ROLLUP_WATERMARK, 7200)
        return before, writer.state(ROLLUP_WATERMARK)

    assert store.write(move) == (3600, 7200)


def test_a_failed_write_changes_nothing(store):
    def half(writer):
        writer.set_state("k", 1)
        raise RuntimeError("half way")

    with pytest.raises(StorageError):
        store.write(half)
    with store.snapshot() as reader:
        assert reader.state("k") is None


def test_rollup_twice_changes_nothing(history):
    written = rollup(history, NOW)
    assert written == 60  # one per plugin and hour: every run in an hour of its own
    hours, days = _rollups(history, HOUR), _rollups(history, DAY)
    stats = window_stats(history, 7, None, NOW)
    assert rollup(history, NOW) == 1  # the hour before the watermark, rolled up again
    assert (_rollups(history, HOUR), _rollups(history, DAY)) == (hours, days)
    assert window_stats(history, 7, None, NOW) == stats
    with history.snapshot() as reader:
        assert watermark(reader) == hour_start(NOW)
        assert reader.state(ROLLUP_WATERMARK) == int(hour_start(NOW).timestamp())


def test_days_hold_each_plugin_and_all_plugins(history):
    rollup(history, NOW)
    days = _rollups(history, DAY)
    per_plugin = sum(c["total_executions"] for p, _, c, _ in days if p != ALL_PLUGINS)
    everyone = sum(c["total_executions"] for p, _, c, _ in days if p == ALL_PLUGINS)
    assert per_plugin == everyone == 60
    assert {p for p, *_ in days} == {"a", "b", "c", ALL_PLUGINS}


def test_rollup_stops_at_the_oldest_open_run_and_counts_it_once_it_ends(history):
    began = NOW - timedelta(hours=5, minutes=10)
    history.insert(running("slow", began, plugin="z"), wait=True)
    rollup(history, NOW)
    with history.snapshot() as reader:
        assert watermark(reader) == hour_start(began)
    history.update(finished("slow", began, plugin="z", duration_ms=60_000))
    rollup(history, NOW)
    with history.snapshot() as reader:
        assert watermark(reader) == hour_start(NOW)
    stats = window_stats(history, 7, "z", NOW)
    assert stats["total_executions"] == 1 and stats["max_duration"] == 60_000_000_000
    assert window_stats(history, 7, None, NOW)["total_executions"] == 61


def test_a_run_committed_just_after_a_rollup_is_rolled_up_by_the_next(history):
    rollup(history, NOW)
    history.update(finished("straggler", hour_start(NOW) - timedelta(minutes=1), plugin="late"))
    assert window_stats(history, 7, "late", NOW)["total_executions"] == 0  # before the mark
    rollup(history, NOW + timedelta(hours=1))
    assert window_stats(history, 7, "late", NOW)["total_executions"] == 1
