"""Performance analysis: per plugin, how much, how fast, how reliable, and how that
moved against the previous period of the same length; and findings in plain words.

It reads rollups (daily, then hourly past them) and only the raw runs after the
rollup watermark, so its cost does not grow with the number of stored runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.config.sections import AnalysisConfig
from bridge.storage.base import DAILY_WATERMARK, DAY, HOUR, ExecutionStore, Reader, Rollup
from bridge.storage.closed_days import copied_each, merged
from bridge.storage.rollup import ALL_PLUGINS, ONE_DAY, day_start, watermark
from bridge.storage.rollups import Aggregate, day_range


def aggregates(
    store: ExecutionStore, reader: Reader, start: datetime, end: datetime, plugin: str | None
) -> dict[str, Aggregate]:
    """Each plugin's runs that started in [start, end): daily rollups (closed days' kept
    merged between calls), hourly ones past them, raw runs past the rollup watermark."""
    rolled = watermark(reader)
    daily = min(watermark(reader, DAILY_WATERMARK), rolled)
    per: dict[str, Aggregate] = defaultdict(Aggregate)
    closed = max(start, min(end, day_start(daily)))
    if start < closed:
        per.update(
            merged(
                store,
                reader,
                "analysis",
                start,
                closed,
                plugin,
                _plugins(start, closed, plugin),
                copied_each,
            )
        )
    if closed < min(end, daily):
        _add_days(per, reader.rollups(DAY, closed, min(end, daily), plugin))
    lo, hi = max(start, daily), min(end, rolled)
    if lo < hi:
        for r in reader.rollups(HOUR, lo, hi, plugin):
            per[r.plugin].merge(r.aggregate)
    if max(start, rolled) < end:
        for g in reader.run_groups(max(start, rolled), end, ONE_DAY, plugin):
            per[g.plugin].add_group(g)
    return per


def _plugins(
    start: datetime, end: datetime, plugin: str | None
) -> Callable[[Reader], dict[str, Aggregate]]:
    def merge(reader: Reader) -> dict[str, Aggregate]:
        per: dict[str, Aggregate] = defaultdict(Aggregate)
        _add_days(per, reader.rollups(DAY, start, end, plugin))
        return dict(per)

    return merge


def _add_days(per: dict[str, Aggregate], days: Iterable[Rollup]) -> None:
    for r in days:
        if r.plugin != ALL_PLUGINS:
            per[r.plugin].merge(r.aggregate)


def _pct(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def duration_text(ns: int) -> str:
    ms = ns / 1e6
    if ms >= 10_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _figures(agg: Aggregate) -> dict[str, Any]:
    return {
        "calls": agg.total,
        "success_rate": agg.success_rate,
        "failure_rate": _pct(agg.unsuccessful, agg.total),
        "p50_duration": agg.percentile(0.50),
        "p95_duration": agg.percentile(0.95),
        "p99_duration": agg.percentile(0.99),
        "max_duration": agg.duration_max,
        "timeout_share": _pct(agg.timeout, agg.total),
        "retry_share": _pct(agg.retried, agg.total),
        "retry_time_share": _pct(agg.retry_time, agg.duration_sum),
    }


def _findings(
    plugin: str, now: dict[str, Any], before: dict[str, Any], days: int, limits: AnalysisConfig
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if now["calls"] < limits.min_calls:
        return found
    period = f"over the last {days} day{'s' if days > 1 else ''}"
    if before["calls"] >= limits.min_calls and before["p95_duration"]:
        ratio = now["p95_duration"] / before["p95_duration"]
        if ratio >= limits.p95_rise_factor:
            found.append(
                {
                    "kind": "p95_rise",
                    "score": round(ratio / limits.p95_rise_factor, 2),
                    "message": f"`{plugin}` p95 rose from {duration_text(before['p95_duration'])} "
                    f"to {duration_text(now['p95_duration'])} ({ratio:.1f}x) {period}",
                    "figures": {
                        "p95_before": before["p95_duration"],
                        "p95_now": now["p95_duration"],
                        "ratio": round(ratio, 2),
                    },
                }
            )
    if before["calls"] >= limits.min_calls:
        change = now["failure_rate"] - before["failure_rate"]
        if change >= limits.failure_rate_rise:
            found.append(
                {
                    "kind": "failure_rate_rise",
                    "score": round(change / limits.failure_rate_rise, 2),
                    "message": f"`{plugin}` failure rate rose from {before['failure_rate']:g}% to "
                    f"{now['failure_rate']:g}% (+{change:.1f} points) {period}",
                    "figures": {
                        "failure_rate_before": before["failure_rate"],
                        "failure_rate_now": now["failure_rate"],
                    },
                }
            )
    if now["timeout_share"] >= limits.timeout_share:
        found.append(
            {
                "kind": "timeouts",
                "score": round(now["timeout_share"] / limits.timeout_share, 2),
                "message": f"`{plugin}` timed out in {now['timeout_share']:g}% of runs {period}",
                "figures": {"timeout_share": now["timeout_share"], "calls": now["calls"]},
            }
        )
    if now["retry_time_share"] >= limits.retry_share:
        found.append(
            {
                "kind": "retries",
                "score": round(now["retry_time_share"] / limits.retry_share, 2),
                "message": f"`{plugin}` spends {now['retry_time_share']:g}% of its time in "
                f"retries ({now['retry_share']:g}% of runs retried) {period}",
                "figures": {
                    "retry_time_share": now["retry_time_share"],
                    "retry_share": now["retry_share"],
                    "calls": now["calls"],
                },
            }
        )
    for item in found:
        item["plugin"] = plugin
    return found


def analysis(
    store: ExecutionStore,
    days: int,
    plugin: str | None,
    now: datetime,
    limits: AnalysisConfig | None = None,
) -> dict[str, Any]:
    """The last `days` days (today included) per plugin against the `days` before."""
    limits = limits or AnalysisConfig()
    window = day_range(days, now)
    start = datetime(window[0].year, window[0].month, window[0].day, tzinfo=UTC)
    before_start = start - timedelta(days=days)
    with store.snapshot() as reader:
        current = aggregates(store, reader, start, now + timedelta(microseconds=1), plugin)
        previous = aggregates(store, reader, before_start, start, plugin)
    plugins, findings = [], []
    for name in sorted(current):
        now_fig, before_fig = _figures(current[name]), _figures(previous.get(name, Aggregate()))
        ratio = (
            round(now_fig["p95_duration"] / before_fig["p95_duration"], 2)
            if before_fig["p95_duration"]
            else None
        )
        plugins.append(
            {
                "plugin": name,
                **now_fig,
                "previous": before_fig,
                "trend": {
                    "p95_ratio": ratio,
                    "failure_rate_change": round(
                        now_fig["failure_rate"] - before_fig["failure_rate"], 2
                    ),
                },
            }
        )
        findings += _findings(name, now_fig, before_fig, days, limits)
    findings.sort(key=lambda f: (-f["score"], f["plugin"], f["kind"]))
    return {
        "days": days,
        "window_start": window[0].isoformat(),
        "window_end": window[-1].isoformat(),
        "previous_start": before_start.date().isoformat(),
        "plugins": plugins,
        "findings": findings,
    }
