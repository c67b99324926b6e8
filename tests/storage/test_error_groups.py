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


def test_error_hours_read_per_day_are_each_groups_hours_summed(store):
    """What the error groups of a long window read: a row per group and UTC day, with
    the day's count, first and last failure, and the example of its latest."""
    day = NOW.replace(hour=0, minute=0)
    hours = [  # group a: three hours over two days; group b: one hour, another plugin
        ErrorHour(
            "a",
            day - timedelta(hours=2),
            "billing",
            "timeout",
            "slow",
            2,
            day - timedelta(hours=2),
            day - timedelta(hours=1, minutes=31),
            "a-1",
        ),
        ErrorHour(
            "a",
            day + timedelta(hours=3),
            "billing",
            "timeout",
            "slow",
            1,
            day + timedelta(hours=3, minutes=5),
            day + timedelta(hours=3, minutes=5),
            "a-3",
        ),
        ErrorHour(
            "a",
            day + timedelta(hours=1),
            "billing",
            "timeout",
            "slow",
            4,
            day + timedelta(hours=1, minutes=1),
            day + timedelta(hours=1, minutes=50),
            "a-2",
        ),
        ErrorHour(
            "b",
            day + timedelta(hours=5),
            "shipping",
            "plugin_error",
            "gone",
            1,
            day + timedelta(hours=5),
            day + timedelta(hours=5),
            "b-1",
        ),
    ]
    store.write(lambda w: w.put_error_hours(hours))
    start, end = day - timedelta(days=1), day + timedelta(days=1)
    with store.snapshot() as reader:
        days = sorted(
            reader.error_hours(start, end, None, DAY), key=lambda h: (h.fingerprint, h.hour)
        )
        billing = reader.error_hours(start, end, "billing", DAY)
        hourly = reader.error_hours(start, end)
    assert days == [
        ErrorHour(
            "a",
            day - timedelta(days=1),
            "billing",
            "timeout",
            "slow",
            2,
            day - timedelta(hours=2),
            day - timedelta(hours=1, minutes=31),
            "a-1",
        ),
        ErrorHour(
            "a",
            day,
            "billing",
            "timeout",
            "slow",
            5,
            day + timedelta(hours=1, minutes=1),
            day + timedelta(hours=3, minutes=5),
            "a-3",
        ),
        ErrorHour(
            "b",
            day,
            "shipping",
            "plugin_error",
            "gone",
            1,
            day + timedelta(hours=5),
            day + timedelta(hours=5),
            "b-1",
        ),
    ]
    assert sorted(h.hour for h in billing) == [day - timedelta(days=1), day]
    assert len(hourly) == 4
