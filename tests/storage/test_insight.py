"""The store contract, insight: export pages and performance analysis on every backend."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

from bridge.config.sections import AnalysisConfig
from bridge.insight.analysis import analysis
from bridge.insight.export import FIELDS, chunks, pages
from bridge.model import ExecutionFilter, Status
from bridge.storage.cleanup import cleanup
from bridge.storage.rollup import rollup
from bridge.storage.stats import list_page

from .runs import NOW, finished


def test_export_reads_every_match_newest_first_in_pages(history):
    flt = ExecutionFilter(plugin="a")
    expected = list_page(history, flt, 1000, 0, None).records
    got = [r for page in pages(history, flt, size=7) for r in page]
    assert [r.id for r in got] == [r.id for r in expected] and len(got) == 20
    data = b"".join(chunks(pages(history, flt, size=7), "csv", FIELDS)).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(data, newline="")))
    assert [row["id"] for row in rows] == [r.id for r in expected]
    assert rows[0]["duration"] == str(expected[0].duration)
    items = json.loads(b"".join(chunks(pages(history, flt), "json", ("id", "tags"))))
    assert items == [{"id": r.id, "tags": {}} for r in expected]


def _runs(plugin, day, n, ms, failed=0, timeouts=0, retried=0):
    start = NOW - timedelta(days=day)
    runs = []
    for i in range(n):
        status = (
            Status.FAILED
            if i < failed
            else Status.TIMEOUT
            if i < failed + timeouts
            else Status.COMPLETED
        )
        run = finished(
            f"{plugin}-{day}-{i}",
            start + timedelta(seconds=i),
            plugin=plugin,
            status=status,
            error_type="timeout"
            if status is Status.TIMEOUT
            else "unknown_error"
            if i < failed
            else "",
            duration_ms=ms,
        )
        if i < retried:  # 4 of its 5 ms after the first attempt
            run.retry_count, run.retry_time = 1, 4_000_000
        runs.append(run)
    return runs


def test_analysis_finds_slower_failing_and_retrying_plugins_from_rollups(store):
    store.insert_many(
        _runs("billing", 10, 30, 120)  # the previous 7 days: 120 ms
        + _runs("billing", 2, 30, 480, failed=6)  # now: 480 ms, 20% failed
        + _runs("export", 1, 25, 5, timeouts=3)
        + _runs("sync", 1, 20, 5, retried=7)
        + _runs("quiet", 1, 3, 900, failed=3)  # under min_calls: no finding
    )
    before = analysis(store, 7, None, NOW)
    kinds = [(f["plugin"], f["kind"]) for f in before["findings"]]
    # Ranked by how far each is past its threshold: 20 points / 5, 4.0x / 1.5, 12% / 5%,
    # 28% / 20%.
    assert kinds == [
        ("billing", "failure_rate_rise"),
        ("billing", "p95_rise"),
        ("export", "timeouts"),
        ("sync", "retries"),
    ]
    assert before["findings"][0]["message"] == (
        "`billing` failure rate rose from 0% to 20% (+20.0 points) over the last 7 days"
    )
    assert before["findings"][1]["message"].startswith("`billing` p95 rose from 1")
    assert "(4.0x) over the last 7 days" in before["findings"][1]["message"]
    assert (
        before["findings"][2]["message"] == "`export` timed out in 12% of runs over the last 7 days"
    )
    billing = next(p for p in before["plugins"] if p["plugin"] == "billing")
    assert (billing["calls"], billing["previous"]["calls"]) == (30, 30)
    assert billing["failure_rate"] == 20.0 and billing["trend"]["failure_rate_change"] == 20.0
    sync = next(p for p in before["plugins"] if p["plugin"] == "sync")
    assert (sync["retry_share"], sync["retry_time_share"]) == (35.0, 28.0)
    assert before["findings"][3]["message"] == (
        "`sync` spends 28% of its time in retries (35% of runs retried) over the last 7 days"
    )

    # From rollups alone (raw rows gone), the same figures.
    rollup(store, NOW)
    cleanup(store, 0, NOW + timedelta(days=1))
    assert list_page(store, ExecutionFilter(), 1, 0, None).total == 0
    assert analysis(store, 7, None, NOW) == before
    only = analysis(store, 7, "sync", NOW, AnalysisConfig(retry_share=50.0))
    assert [p["plugin"] for p in only["plugins"]] == ["sync"] and only["findings"] == []
