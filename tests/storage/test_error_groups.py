"""The store contract, error groups: a failure's fingerprint stored with it, listed by
group, counted per day and rolled up so that a group outlives its raw rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.errors import ErrorGroupNotFound
from bridge.insight.errors import error_groups, require_group
from bridge.model import ExecutionFilter, Status
from bridge.storage.base import DAY, ErrorHour
from bridge.storage.cleanup import cleanup
from bridge.storage.stats import list_page
from bridge.tracking.fingerprint import error_group

from .runs import NOW, finished

TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/srv/bridge/bridge/runner.py", line 440, in _call\n'
    "    result = plugin.handle()\n"
    '  File "/srv/plugins/billing.py", line {line}, in charge\n'
    '    raise ValueError(f"invoice {{n}} not found")\n'
    "ValueError: invoice {n} not found\n"
)


def _failure(run_id: str, start, n: int, plugin: str = "billing"):
    error = TRACE.format(line=10 + n, n=n)
    key = error_group(plugin, "validation_error", error)
    run = finished(
        run_id,
        start,
        plugin=plugin,
        status=Status.FAILED,
        error_type="validation_error",
        error_group=key.fingerprint,
    )
    run.error = error
    return run


def test_failures_with_one_fingerprint_are_one_group_listed_with_their_runs(store):
    runs = [_failure(f"f{i}", NOW - timedelta(hours=i), i) for i in range(5)]
    other = _failure("g1", NOW - timedelta(hours=1), 1, plugin="shipping")
    ok = finished("ok", NOW - timedelta(hours=2))
    store.insert_many([*runs, other, ok])
    fingerprint = runs[0].error_group
    assert {r.error_group for r in runs} == {fingerprint} != {other.error_group}

    listed = error_groups(store, 7, None, NOW)
    assert [(g["plugin"], g["count"]) for g in listed["groups"]] == [
        ("billing", 5),
        ("shipping", 1),
    ]
    group = listed["groups"][0]
    assert group["fingerprint"] == fingerprint
    assert group["message"] == "ValueError: invoice <n> not found"
    assert group["example_execution_id"] == "f0"  # the latest
    assert group["first_seen"] == NOW - timedelta(hours=4)
    assert group["last_seen"] == NOW
    assert group["new"] is True
    assert sum(d["count"] for d in group["daily"]) == 5 and len(group["daily"]) == 7
    assert [g["plugin"] for g in error_groups(store, 7, "shipping", NOW)["groups"]] == ["shipping"]
    # The first `limit` groups are answered, whole; the totals count every group.
    top = error_groups(store, 7, None, NOW, limit=1)
    assert (top["total_groups"], top["total_failures"]) == (2, 6)
    assert top["groups"] == [group]

    page = list_page(store, ExecutionFilter(error_group=fingerprint), 50, 0, None)
    assert sorted(r.id for r in page.records) == [f"f{i}" for i in range(5)] and page.total == 5
    require_group(store, fingerprint)
    with pytest.raises(ErrorGroupNotFound):
        require_group(store, "0" * 16)


def test_a_group_outlives_its_raw_rows_and_rises_against_the_previous_period(store):
    old = [_failure(f"old{i}", NOW - timedelta(days=40, hours=i), i) for i in range(2)]
    recent = [_failure(f"new{i}", NOW - timedelta(days=1, hours=i), i) for i in range(5)]
    store.insert_many([*old, *recent])
    result = cleanup(store, 30, NOW)
    assert result.deleted == 2
    assert store.get("old0") is None

    # 40 days ago is in the previous period of a 45-day window... and counted there.
    listed = error_groups(store, 45, None, NOW)
    (group,) = listed["groups"]
    assert group["count"] == 7
    assert group["first_seen"] == NOW - timedelta(days=40, hours=1)
    assert group["new"] is True
    # A 35-day window: the old failures are the previous period; five is not twice two.
    (group,) = error_groups(store, 35, None, NOW)["groups"]
    assert (group["count"], group["previous_count"], group["new"]) == (5, 2, False)
    assert group["rising"] is True  # 5 >= 2.0 x 2
    assert error_groups(store, 35, None, NOW, rising_factor=3.0)["groups"][0]["rising"] is False
    require_group(store, old[0].error_group)  # still known, from its rollup


def _hour(fingerprint, at, count, first, last, example, plugin="billing"):
    kind, message = ("timeout", "slow") if plugin == "billing" else ("plugin_error", "gone")
    return ErrorHour(fingerprint, at, plugin, kind, message, count, first, last, example)


def test_error_hours_read_per_day_are_each_groups_hours_summed(store):
    """What the error groups of a long window read: a row per group and UTC day, with
    the day's count, first and last failure, and the example of its latest."""
    day = NOW.replace(hour=0, minute=0)
    h, m = timedelta(hours=1), timedelta(minutes=1)
    hours = [  # group a: three hours over two days; group b: one hour, another plugin
        _hour("a", day - 2 * h, 2, day - 2 * h, day - 2 * h + 29 * m, "a-1"),
        _hour("a", day + 3 * h, 1, day + 3 * h + 5 * m, day + 3 * h + 5 * m, "a-3"),
        _hour("a", day + h, 4, day + h + m, day + h + 50 * m, "a-2"),
        _hour("b", day + 5 * h, 1, day + 5 * h, day + 5 * h, "b-1", plugin="shipping"),
    ]
    store.write(lambda w: w.put_error_hours(hours))
    start, end = day - timedelta(days=1), day + timedelta(days=1)
    with store.snapshot() as reader:
        days = reader.error_hours(start, end, None, DAY)
        billing = reader.error_hours(start, end, "billing", DAY)
        hourly = reader.error_hours(start, end)
    assert sorted(days, key=lambda e: (e.fingerprint, e.hour)) == [
        _hour("a", day - timedelta(days=1), 2, day - 2 * h, day - 2 * h + 29 * m, "a-1"),
        _hour("a", day, 5, day + h + m, day + 3 * h + 5 * m, "a-3"),
        _hour("b", day, 1, day + 5 * h, day + 5 * h, "b-1", plugin="shipping"),
    ]
    assert sorted(e.hour for e in billing) == [day - timedelta(days=1), day]
    assert sorted(hourly, key=lambda e: e.hour) == sorted(hours, key=lambda e: e.hour)
