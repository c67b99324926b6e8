"""The stats window and the list's total, computed through the store protocol: from raw
rows, from rollups, or both, with the same figures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.insight.analysis import analysis
from bridge.model import ExecutionFilter, Status
from bridge.storage.base import DAILY_WATERMARK, DAY, ROLLUP_WATERMARK, Span
from bridge.storage.cleanup import cleanup
from bridge.storage.rollup import ALL_PLUGINS, EPOCH, rollup
from bridge.storage.stats import list_page, window_stats

from .runs import NOW, finished, running


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
def test_total_above_the_limit_is_an_estimate_from_rollups(history, flt, expected):
    rollup(history, NOW)
    page = list_page(history, flt, limit=3, offset=0, cursor=None, exact_up_to=5)
    assert page.total_is_estimate is True
    assert page.total == expected  # whole hours only, so the rollups count exactly here
    assert len(page.records) == 3


def test_total_just_above_the_limit_is_counted_then_estimated(history):
    rollup(history, NOW)
    # 60 matches against a limit of 40: the estimate (60) is under twice the limit, so
    # the capped count runs too, and says the limit is passed.
    page = list_page(history, ExecutionFilter(), limit=3, offset=0, cursor=None, exact_up_to=40)
    assert (page.total, page.total_is_estimate) == (60, True)
    page = list_page(history, ExecutionFilter(), limit=3, offset=0, cursor=None, exact_up_to=60)
    assert (page.total, page.total_is_estimate) == (60, False)


def test_total_at_or_below_the_limit_is_exact(history):
    page = list_page(history, ExecutionFilter(plugin="b"), 50, 0, None, exact_up_to=20)
    assert (page.total, page.total_is_estimate, len(page.records)) == (20, False, 20)


def test_what_rollups_do_not_count_keeps_the_capped_count(history):
    """Rollups count runs by plugin, status, error type and hour, and nothing else: a
    filter on anything else is counted (as far as the cap), never estimated from them."""
    group, original = "0123456789abcdef", "r59"
    history.insert_many(
        [finished(f"g{i}", NOW - timedelta(minutes=90 + i), error_group=group) for i in range(8)]
        + [finished(f"p{i}", NOW - timedelta(minutes=80 + i), replay_of=original) for i in range(3)]
    )
    rollup(history, NOW)  # every run above is rolled up: an estimate would count all 71
    for flt, expected in (
        (ExecutionFilter(error_group=group), (6, True)),
        (ExecutionFilter(error_group=group, plugin="a"), (6, True)),
        (ExecutionFilter(replay_of=original), (3, False)),
        (ExecutionFilter(tags=(("env", "prod"),)), (0, False)),
    ):
        page = list_page(history, flt, 2, 0, None, exact_up_to=5)
        assert (page.total, page.total_is_estimate) == expected, flt
    history.insert(running("open", NOW), wait=True)
    page = list_page(history, ExecutionFilter(status=Status.RUNNING), 5, 0, None, exact_up_to=0)
    assert (page.total, page.total_is_estimate) == (1, True)
    page = list_page(history, ExecutionFilter(trace_id=""), 5, 0, None, exact_up_to=5)
    assert (page.total, page.total_is_estimate) == (6, True)  # counted as far as the cap


def test_estimate_counts_runs_after_the_watermark_and_not_deleted_hours(history):
    rollup(history, NOW - timedelta(days=2))  # the last two days are raw rows only
    cleanup(history, 4, NOW)  # deletes the runs older than 4 days: 12 are left
    page = list_page(history, ExecutionFilter(), limit=1, offset=0, cursor=None, exact_up_to=5)
    assert page.total_is_estimate is True
    assert abs(page.total - 48) <= 1  # the oldest hour still held is counted whole


def test_cursor_pages_walk_every_row_once(history):
    seen, cursor = [], None
    while True:
        page = list_page(history, ExecutionFilter(), limit=7, offset=0, cursor=cursor)
        seen += [r.id for r in page.records]
        assert page.total == 60 and not page.total_is_estimate
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"r{i}" for i in range(60)]


@pytest.mark.parametrize("plugin", [None, "b"])
def test_stats_from_daily_rollups_match_stats_from_raw_rows(history, plugin):
    raw = window_stats(history, 7, plugin, NOW)
    assert rollup(history, NOW) > 0
    rolled = window_stats(history, 7, plugin, NOW)
    assert rolled == raw
    assert raw["total_executions"] == (60 if plugin is None else 20)
    assert raw["unique_plugins"] == (3 if plugin is None else 1)


def test_stats_of_a_window(history):
    stats = window_stats(history, 7, None, NOW)
    assert (stats["total_executions"], stats["failed_executions"]) == (60, 15)
    assert stats["successful_executions"] == 45 and stats["success_rate"] == 75.0
    assert stats["min_duration"] == 1_000_000 and stats["max_duration"] == 60_000_000
    assert stats["error_types"] == {"timeout": 15}
    assert [d["date"] for d in stats["daily_stats"]][-1] == NOW.date().isoformat()
    assert sum(d["total_executions"] for d in stats["daily_stats"]) == 60
    assert window_stats(history, 1, None, NOW)["total_executions"] == 6  # 00:30 .. 10:30


def test_stats_mixing_rollups_and_runs_after_the_watermark(history):
    expected = window_stats(history, 7, None, NOW)
    rollup(history, NOW - timedelta(hours=30))  # days, then hours, then raw rows
    assert window_stats(history, 7, None, NOW) == expected
    history.update(finished("late", NOW - timedelta(minutes=10), plugin="d"))
    later = window_stats(history, 7, None, NOW)
    assert later["total_executions"] == 61 and later["unique_plugins"] == 4


def test_daily_rollups_are_rebuilt_when_missing(history):
    rollup(history, NOW)
    expected = window_stats(history, 7, None, NOW)

    def forget_days(writer):  # as after the upgrade that added daily rollups
        writer.delete_rollups(DAY, EPOCH, NOW + timedelta(days=1))
        writer.set_state(DAILY_WATERMARK, None)

    history.write(forget_days)
    rollup(history, NOW)
    assert window_stats(history, 7, None, NOW) == expected
    with history.snapshot() as reader:
        assert reader.rollup_count([Span(DAY, EPOCH, NOW, ALL_PLUGINS)]) == 60


def test_closed_days_kept_merged_follow_rewritten_and_deleted_rollups(history):
    """Stats and analysis keep the merge of closed days between calls; a late run rolled
    into a closed day, or a day's rollups deleted, shows in the next call."""
    rollup(history, NOW)
    first = window_stats(history, 7, None, NOW)
    assert window_stats(history, 7, None, NOW) == first  # the kept merge, same figures
    before = {p["plugin"]: p for p in analysis(history, 7, None, NOW)["plugins"]}

    three_days_ago = NOW - timedelta(days=3)
    history.update(finished("late", three_days_ago, plugin="b", duration_ms=900))

    def roll_again(writer):  # a rebuild of every rollup, as after restoring a backup
        writer.set_state(DAILY_WATERMARK, None)
        writer.set_state(ROLLUP_WATERMARK, None)

    history.write(roll_again)
    rollup(history, NOW)
    second = window_stats(history, 7, None, NOW)
    assert second["total_executions"] == first["total_executions"] + 1
    assert second["max_duration"] == 900_000_000
    after = {p["plugin"]: p for p in analysis(history, 7, None, NOW)["plugins"]}
    assert after["b"]["calls"] == before["b"]["calls"] + 1
    assert after["b"]["max_duration"] == 900_000_000

    day = three_days_ago.replace(hour=0, minute=0)
    gone = next(d for d in second["daily_stats"] if d["date"] == day.date().isoformat())
    history.write(lambda w: w.delete_rollups(DAY, day, day + timedelta(days=1)))
    third = window_stats(history, 7, None, NOW)
    assert third["total_executions"] == second["total_executions"] - gone["total_executions"]
