"""SQLiteStore at a size where its shortcuts kick in: estimated totals, daily rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.config import from_dict
from bridge.model import AttemptRecord, ExecutionFilter, ExecutionRecord, Status
from bridge.storage.cleanup import cleanup
from bridge.storage.rollup import rollup
from bridge.storage.sqlite import SQLiteStore
from bridge.storage.stats import list_page, window_stats

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    config = from_dict(
        {
            "storage": {"sqlite": {"database_path": str(tmp_path / "s.db")}},
            "scheduler": {"enabled": False},
        }
    )
    store = SQLiteStore(config, on_error=lambda action, exc: None)
    # 60 runs, one every 2 hours back from NOW: plugins a/b/c, every 4th one failed.
    records = []
    for i in range(60):
        began = NOW - timedelta(hours=2 * i + 1)
        failed = i % 4 == 0
        records.append(
            ExecutionRecord(
                id=f"r{i}",
                plugin_name="abc"[i % 3],
                http_method="POST",
                start_time=began,
                end_time=began,
                status=Status.FAILED if failed else Status.COMPLETED,
                error_type="timeout" if failed else "",
                duration=1_000_000 * (i + 1),
                attempts=1,
                attempt_records=[AttemptRecord(1, began, began, Status.COMPLETED)],
            )
        )
    store.insert_many(records)
    yield store
    store.close()


@pytest.mark.parametrize(
    "flt, expected",
    [
        (ExecutionFilter(), 60),
        (ExecutionFilter(plugin="a"), 20),
        (ExecutionFilter(status=Status.FAILED), 15),
        (ExecutionFilter(plugin="a", status=Status.COMPLETED), 15),
        (ExecutionFilter(error_type="timeout"), 15),
        (ExecutionFilter(since=NOW - timedelta(days=3), until=NOW - timedelta(days=1)), 24),
    ],
)
def test_total_above_the_limit_is_an_estimate_from_rollups(store, flt, expected):
    rollup(store, NOW)
    page = list_page(store, flt, limit=3, offset=0, cursor=None, exact_up_to=5)
    assert page.total_is_estimate is True
    assert page.total == expected  # whole hours only, so the rollups count exactly here
    assert len(page.records) == 3


def test_total_at_or_below_the_limit_is_exact(store):
    page = list_page(
        store, ExecutionFilter(plugin="b"), limit=50, offset=0, cursor=None, exact_up_to=20
    )
    assert (page.total, page.total_is_estimate, len(page.records)) == (20, False, 20)


def test_estimate_counts_runs_after_the_watermark_and_not_deleted_hours(store):
    rollup(store, NOW - timedelta(days=2))  # the last two days are raw rows only
    cleanup(store, 4, NOW)  # deletes the runs older than 4 days: 12 are left
    page = list_page(store, ExecutionFilter(), limit=1, offset=0, cursor=None, exact_up_to=5)
    assert page.total_is_estimate is True
    assert abs(page.total - 48) <= 1  # the oldest hour still held is counted whole


def test_cursor_pages_walk_every_row_once(store):
    seen, cursor = [], None
    while True:
        page = list_page(store, ExecutionFilter(), limit=7, offset=0, cursor=cursor)
        seen += [r.id for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"r{i}" for i in range(60)]


@pytest.mark.parametrize("plugin", [None, "b"])
def test_stats_from_daily_rollups_match_stats_from_raw_rows(store, plugin):
    raw = window_stats(store, 7, plugin, NOW)
    assert rollup(store, NOW) > 0
    rolled = window_stats(store, 7, plugin, NOW)
    assert rolled == raw
    assert raw["total_executions"] == (60 if plugin is None else 20)


def test_daily_rollups_are_rebuilt_when_missing(store):
    rollup(store, NOW)
    expected = window_stats(store, 7, None, NOW)
    # As after the upgrade that added the daily table: hourly rows, no daily ones.
    store._write(lambda c: c.execute("DELETE FROM execution_metrics_daily"))
    store._write(lambda c: c.execute("DELETE FROM bridge_state WHERE key = 'daily_watermark'"))
    rollup(store, NOW)
    assert window_stats(store, 7, None, NOW) == expected
