"""The store contract, runs: write, read back, filter, page, count, find open ones."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from bridge.errors import InvalidCursor
from bridge.model import AttemptRecord, ExecutionFilter, Status
from bridge.storage.rollup import ONE_DAY, ONE_HOUR
from bridge.storage.rollups import Aggregate

from .runs import NOW, finished, running, sixty_runs


def _walk(store, flt: ExecutionFilter, limit: int) -> list[str]:
    seen, cursor = [], None
    while True:
        with store.snapshot() as reader:
            records, cursor = reader.page(flt, limit, 0, cursor)
        seen += [r.id for r in records]
        if cursor is None:
            return seen


def test_a_run_from_start_to_end_with_its_attempts(store, write_errors):
    start = NOW - timedelta(minutes=5)
    store.insert(
        running(
            "run-1",
            start,
            trace_id="t1",
            input='{"a": 1}',
            tags='{"env": "prod"}',
            worker="host:1",
            idempotency_key="k1",
        ),
        wait=True,
    )
    started = store.get("run-1")
    assert started.status is Status.RUNNING and started.end_time is None
    assert (started.start_time, started.input, started.tags) == (
        start,
        '{"a": 1}',
        '{"env": "prod"}',
    )
    assert started.attempt_records == []

    end = start + timedelta(seconds=3)
    attempts = [
        AttemptRecord(1, start, start + timedelta(seconds=1), Status.FAILED, "boom", "timeout", 10),
        AttemptRecord(2, start + timedelta(seconds=2), end, Status.COMPLETED, duration=20),
    ]
    store.update(
        replace(
            started,
            status=Status.COMPLETED,
            end_time=end,
            updated_at=end,
            output='{"ok": true}',
            duration=3_000_000_000,
            attempts=2,
            retry_count=1,
            attempt_records=attempts,
        )
    )
    done = store.get("run-1")
    assert done.status is Status.COMPLETED and done.end_time == end and done.updated_at == end
    assert (done.output, done.duration, done.attempts, done.retry_count) == (
        '{"ok": true}',
        3_000_000_000,
        2,
        1,
    )
    assert (done.trace_id, done.worker, done.idempotency_key, done.replays) == (
        "t1",
        "host:1",
        "k1",
        0,
    )
    assert done.attempt_records == attempts
    assert write_errors == []


def test_a_run_whose_start_was_lost_is_written_by_its_end(store):
    store.update(finished("late", NOW))
    assert store.get("late").status is Status.COMPLETED
    assert store.get("late").attempt_records[0].number == 1


def test_a_first_attempt_that_succeeded_is_the_run_and_gets_no_row_of_its_own(store):
    """Most runs succeed at once: their attempt is read back from the run's row. An
    attempt that failed keeps its row (its error). The bulk path (a copy) keeps the
    rows it is given, and writes none for an attempt that was read back that way."""
    ok = finished("ok", NOW, duration_ms=7)
    ok.attempt_records[0].start_time += timedelta(microseconds=40)  # the hand-off
    store.update(ok)
    store.update(finished("bad", NOW, status=Status.FAILED, error_type="plugin_error"))
    assert store.table_counts()["execution_attempts"] == 1

    (attempt,) = store.get("ok").attempt_records
    assert attempt == AttemptRecord(
        1, NOW, NOW + timedelta(milliseconds=7), Status.COMPLETED, "", "", 7_000_000
    )
    (failed,) = store.get("bad").attempt_records
    assert (failed.status, failed.error_type) == (Status.FAILED, "plugin_error")

    kept = replace(ok, id="kept", attempt_records=[replace(ok.attempt_records[0])])
    read_back = replace(store.get("ok"), id="read-back")
    assert store.insert_many([kept, read_back]) == 2
    assert store.table_counts()["execution_attempts"] == 2
    assert store.get("kept").attempt_records == ok.attempt_records
    assert store.get("read-back").attempt_records == [attempt]


def test_a_start_nobody_waits_for_is_written_soon(store, write_errors):
    store.insert(running("quiet", NOW))
    store.update(finished("other", NOW))  # another run's end: it may leave the start
    deadline = time.monotonic() + 5
    while store.get("quiet") is None:
        assert time.monotonic() < deadline, "the running row was never written"
        time.sleep(0.01)
    assert store.get("quiet").status is Status.RUNNING and write_errors == []


def test_an_unknown_run_is_none(store):
    assert store.get("nope") is None


def test_open_runs_of_one_worker_or_all(store):
    store.insert(running("w1-a", NOW, worker="h:1"), wait=True)
    store.insert(running("w2-a", NOW, worker="h:2"), wait=True)
    store.insert(replace(running("w1-p", NOW, worker="h:1"), status=Status.PENDING), wait=True)
    store.update(finished("w1-done", NOW, worker="h:1"))
    assert sorted(r.id for r in store.open_runs()) == ["w1-a", "w1-p", "w2-a"]
    assert sorted(r.id for r in store.open_runs("h:1")) == ["w1-a", "w1-p"]
    assert store.open_runs("h:3") == []


@pytest.mark.parametrize(
    "flt, expected",
    [
        (ExecutionFilter(), 60),
        (ExecutionFilter(plugin="a"), 20),
        (ExecutionFilter(status=Status.FAILED), 15),
        (ExecutionFilter(plugin="a", status=Status.COMPLETED), 15),
        (ExecutionFilter(error_type="timeout"), 15),
        (ExecutionFilter(trace_id="none"), 0),
        (ExecutionFilter(since=NOW - timedelta(days=3), until=NOW - timedelta(days=1)), 24),
    ],
)
def test_filters_count_exactly_and_pages_walk_every_match_once(history, flt, expected):
    everything = [r.id for r in sixty_runs()]  # newest first
    with history.snapshot() as reader:
        assert reader.count(flt) == expected
        assert reader.count(flt, cap=5) == min(5, expected)
        first, _ = reader.page(flt, 1000, 0, None)
    seen = _walk(history, flt, 7)
    assert seen == [r.id for r in first] and len(seen) == expected
    assert seen == [i for i in everything if i in set(seen)]


def test_offset_and_limit(history):
    with history.snapshot() as reader:
        records, cursor = reader.page(ExecutionFilter(), 5, 10, None)
        assert [r.id for r in records] == [f"r{i}" for i in range(10, 15)] and cursor
        records, cursor = reader.page(ExecutionFilter(), 5, 58, None)
        assert [r.id for r in records] == ["r58", "r59"] and cursor is None


def test_runs_that_started_together_are_paged_once(store):
    store.insert_many([finished(f"same-{i}", NOW) for i in range(5)])
    assert sorted(_walk(store, ExecutionFilter(), 2)) == [f"same-{i}" for i in range(5)]


@pytest.mark.parametrize("cursor", ["garbage", "!!", "MTp4", "-"])
def test_a_cursor_the_store_did_not_make_is_invalid(history, cursor):
    with pytest.raises(InvalidCursor), history.snapshot() as reader:
        reader.page(ExecutionFilter(), 5, 0, cursor)


def test_oldest_start_of_all_runs_or_of_open_ones(store):
    with store.snapshot() as reader:
        assert reader.oldest_start() is None and reader.oldest_start(open_only=True) is None
    store.insert_many([finished("old", NOW - timedelta(days=2))])
    store.insert(running("open", NOW - timedelta(hours=1)), wait=True)
    with store.snapshot() as reader:
        assert reader.oldest_start() == NOW - timedelta(days=2)
        assert reader.oldest_start(open_only=True) == NOW - timedelta(hours=1)


def _aggregates(groups) -> dict[tuple[str, datetime], Aggregate]:
    out: dict[tuple[str, datetime], Aggregate] = defaultdict(Aggregate)
    for g in groups:
        out[(g.plugin, g.slot)].add_group(g)
    return dict(out)


def test_run_groups_sum_what_each_run_would_add(store):
    """The database sums the runs of each plugin and slot: the same counts, durations,
    histogram buckets, error types and retries as adding the runs one by one, for
    durations on a bucket's edge too (an exact power of two, 1 µs and below)."""
    edges = [math.ceil(1_000 * 2 ** (b / 8)) for b in range(1, 240, 7)]  # 1 µs .. 1 h
    durations = [0, 999, 1_000, 1_024_000, 1_048_576_000, 7**13] + edges + [e - 1 for e in edges]
    statuses = [Status.COMPLETED, Status.FAILED, Status.TIMEOUT, Status.CANCELED]
    runs = []
    for i, ns in enumerate(durations * 3):
        status = statuses[i % 4]
        run = finished(
            f"g{i}",
            NOW - timedelta(minutes=7 * i, microseconds=i * 101),
            plugin="ab"[i % 2],
            status=status,
            error_type="" if status is Status.COMPLETED else ["timeout", "http_error"][i % 2],
            retry_count=i % 3,
            retry_time=(i % 3) * 5_000,
        )
        runs.append(replace(run, duration=ns))
    store.insert_many(runs)
    store.insert(running("open", NOW - timedelta(minutes=1)), wait=True)
    lo = NOW - timedelta(hours=20)
    expected: dict[tuple[str, datetime], Aggregate] = defaultdict(Aggregate)
    for r in runs:
        if r.start_time >= lo:
            hour = r.start_time.replace(minute=0, second=0, microsecond=0)
            expected[(r.plugin_name, hour)].add(
                r.status.value, r.error_type, r.duration, r.retry_count, r.retry_time
            )
    with store.snapshot() as reader:
        got = _aggregates(reader.run_groups(lo, None, ONE_HOUR))
        assert got == dict(expected)
        newest = max(r.start_time for r in runs if r.plugin_name == "a")
        last = max(g.last_start for g in reader.run_groups(lo, None, ONE_DAY, "a"))
        assert last == newest and last.tzinfo is not None  # to the microsecond
        assert {g.plugin for g in reader.run_groups(lo, None, ONE_HOUR, "b")} == {"b"}
        assert reader.run_groups(NOW + timedelta(hours=1), None, ONE_HOUR) == []


def test_run_groups_of_a_time_range(history):
    history.insert(running("open", NOW - timedelta(minutes=30)), wait=True)
    lo, hi = NOW - timedelta(hours=8), NOW - timedelta(hours=2)
    with history.snapshot() as reader:
        groups = reader.run_groups(lo, hi, ONE_DAY)
        assert sorted((g.plugin, g.runs, g.duration_sum) for g in groups) == sorted(
            (r.plugin_name, 1, r.duration) for r in sixty_runs() if lo <= r.start_time < hi
        )
        (g0,) = reader.run_groups(NOW - timedelta(hours=1), None, ONE_HOUR)
        assert (g0.plugin, g0.status, g0.error_type, g0.duration_min, g0.runs) == (
            "a",
            "failed",
            "timeout",
            1_000_000,
            1,
        )
        month = reader.run_groups(NOW - timedelta(days=30), None, ONE_DAY)
        assert sum(g.runs for g in month) == 60


def test_a_snapshot_sees_one_state(history):
    # Again and again, with writes of every kind between them: a pooled connection that
    # served a snapshot or a write serves the next snapshot as well.
    for n in range(3):
        with history.snapshot() as reader:
            before = reader.count(ExecutionFilter())
            history.update(finished(f"meanwhile{n}", NOW))
            assert reader.count(ExecutionFilter()) == before
        with history.snapshot() as reader:
            assert reader.count(ExecutionFilter()) == before + 1
        history.mark_replayed("r3", NOW)
        history.write(lambda w, n=n: w.set_state("probe", n))


def test_a_replayed_run_counts_its_replays(history):
    history.mark_replayed("r3", NOW)
    history.mark_replayed("r3", NOW + timedelta(seconds=1))
    record = history.get("r3")
    assert record.replays == 2 and record.updated_at == NOW + timedelta(seconds=1)


def test_runs_are_found_by_every_tag_they_carry_until_deleted(store):
    tagged = [
        finished("prod-a", NOW, tags='{"env": "prod", "team": "a"}'),
        finished("prod-b", NOW + timedelta(seconds=1), tags='{"env": "prod", "team": "b"}'),
        finished("dev-a", NOW + timedelta(seconds=2), tags='{"env": "dev", "team": "a"}'),
        finished("plain", NOW + timedelta(seconds=3)),
    ]
    for record in tagged:
        store.update(record, wait=True)
    prod = ExecutionFilter(tags=(("env", "prod"),))
    both = ExecutionFilter(tags=(("env", "prod"), ("team", "a")))
    with store.snapshot() as reader:
        assert [r.id for r in reader.page(prod, 10, 0, None)[0]] == ["prod-b", "prod-a"]
        assert reader.count(prod) == 2 and reader.count(both) == 1
        groups = reader.run_groups(NOW, None, timedelta(minutes=1), None, (("team", "a"),))
        assert [g.plugin for g in groups] == ["a"] and groups[0].runs == 2
    assert store.delete_batch(NOW + timedelta(seconds=1), 10) == 1  # prod-a goes
    with store.snapshot() as reader:
        assert [r.id for r in reader.page(prod, 10, 0, None)[0]] == ["prod-b"]
