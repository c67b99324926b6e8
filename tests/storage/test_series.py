"""Time series through the store protocol: the same buckets from raw rows, from hourly
rollups and from daily ones, on every backend."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.model import Status
from bridge.storage.cleanup import cleanup
from bridge.storage.rollup import rollup
from bridge.storage.series import floor_to, series

from .runs import NOW, finished

FIGURES = (
    "total_executions",
    "completed_executions",
    "failed_executions",
    "timeout_executions",
    "p50_duration",
    "p95_duration",
    "error_types",
)


def _shape(doc: dict) -> dict:
    """What must not change with where the figures were read from."""
    return {
        "summary": {k: doc["summary"][k] for k in FIGURES},
        "buckets": [(b["start"], *(b[k] for k in FIGURES)) for b in doc["buckets"]],
        "plugins": {
            p["plugin"]: [b["total_executions"] for b in p["buckets"]] for p in doc["plugins"]
        },
    }


@pytest.mark.parametrize("grain, days", [("hour", 2), ("day", 5)])
def test_rollups_give_the_buckets_raw_rows_give(history, grain, days):
    since, until = NOW - timedelta(days=days), NOW
    raw = series(history, since, until, grain, plugin_buckets=True)
    rollup(history, NOW)
    rolled = series(history, since, until, grain, plugin_buckets=True)
    assert _shape(rolled) == _shape(raw)
    assert raw["summary"]["total_executions"] == days * 12
    assert len(raw["buckets"]) == (
        days * 24 + 1 if grain == "hour" else days + 1
    )  # since is floored: the bucket holding it is the first


def test_hourly_buckets_count_each_run_in_the_hour_it_started(history):
    doc = series(history, NOW - timedelta(hours=6), NOW, "hour")
    # sixty_runs: one run every two hours, at half past (NOW is 12:30): 11:30, 9:30, 7:30
    counts = {b["start"].hour: b["total_executions"] for b in doc["buckets"]}
    assert counts == {6: 0, 7: 1, 8: 0, 9: 1, 10: 0, 11: 1, 12: 0}
    assert [p["plugin"] for p in doc["plugins"]] == ["a", "b", "c"]
    a = next(p for p in doc["plugins"] if p["plugin"] == "a")
    assert a["summary"]["total_executions"] == 1
    assert a["last_seen"] == NOW - timedelta(hours=1)
    assert "buckets" not in a  # only when asked: a month of 20 plugins' days is large


def test_failures_and_error_types_per_bucket(store):
    store.insert_many(
        [
            finished("ok1", NOW - timedelta(minutes=50), duration_ms=10),
            finished("ok2", NOW - timedelta(minutes=40), duration_ms=30),
            finished(
                "t1", NOW - timedelta(minutes=20), status=Status.TIMEOUT, error_type="timeout"
            ),
            finished(
                "f1",
                NOW - timedelta(minutes=20),
                plugin="b",
                status=Status.FAILED,
                error_type="validation_error",
            ),
        ]
    )
    doc = series(store, NOW - timedelta(hours=1), NOW, "minute")
    assert len(doc["buckets"]) == 60
    at = {b["start"]: b for b in doc["buckets"]}
    failing = at[floor_to(NOW - timedelta(minutes=20), "minute")]
    assert failing["total_executions"] == 2 and failing["failed_executions"] == 2
    assert failing["timeout_executions"] == 1
    assert failing["error_types"] == {"timeout": 1, "validation_error": 1}
    assert doc["summary"]["error_types"] == {"timeout": 1, "validation_error": 1}
    assert doc["summary"]["success_rate"] == 50.0
    assert doc["summary"]["unique_plugins"] == 2
    only_b = series(store, NOW - timedelta(hours=1), NOW, "minute", plugin="b")
    assert only_b["summary"]["total_executions"] == 1
    assert [p["plugin"] for p in only_b["plugins"]] == ["b"]


def test_days_stay_after_cleanup_deletes_their_runs(history):
    before = series(history, NOW - timedelta(days=4), NOW, "day", plugin_buckets=True)
    cleanup(history, 1, NOW)  # rolls up, then deletes every run older than a day
    after = series(history, NOW - timedelta(days=4), NOW, "day", plugin_buckets=True)
    assert _shape(after) == _shape(before)


def test_a_plugins_last_run_is_exact_while_it_is_stored(history):
    """Read from rollups, a plugin's last run is still its run's start; once cleanup has
    deleted the run, the end of the hour the rollups keep."""

    def last_seen() -> dict[str, object]:
        doc = series(history, NOW - timedelta(days=3), NOW, "hour")
        return {p["plugin"]: p["last_seen"] for p in doc["plugins"]}

    raw = last_seen()
    assert raw["a"] == NOW - timedelta(hours=1)
    rollup(history, NOW + timedelta(hours=2))  # every run's hour rolled up
    assert last_seen() == raw
    cleanup(history, 0, NOW + timedelta(hours=2))
    hour = timedelta(hours=1)
    assert last_seen() == {p: floor_to(t, "hour") + hour for p, t in raw.items()}
