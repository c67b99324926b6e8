"""Time series of runs: counts, failures and duration percentiles per minute, hour or
day, for the whole range and per plugin (what the dashboard's charts and table draw).

Written once above the store protocol, like stats.py: daily rollups for whole days
before the daily watermark, hourly rollups before the rollup watermark, raw rows after
it, all read in one snapshot. Minute buckets come from raw rows only (rollups are
hourly), so a minute series covers at most a day.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bridge.model import ExecutionFilter
from bridge.storage.base import DAILY_WATERMARK, DAY, HOUR, ExecutionStore, RunGroup
from bridge.storage.rollup import ALL_PLUGINS, EPOCH, watermark
from bridge.storage.rollups import Aggregate

GRAINS = {"minute": 60, "hour": 3600, "day": 86400}
MAX_BUCKETS = 1500
MAX_MINUTE_SPAN = timedelta(days=1)


def floor_to(t: datetime, grain: str) -> datetime:
    """The start of the bucket of `grain` holding `t` (UTC)."""
    step = GRAINS[grain]
    seconds = int((t.astimezone(UTC) - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=seconds - seconds % step)


@dataclass
class _Buckets:
    """Aggregates keyed by bucket index for every plugin together; for each plugin its
    summary, and its own buckets only when `per_plugin` (they cost a merge per rollup)."""

    start: datetime
    step: int
    count: int
    per_plugin: bool
    total: dict[int, Aggregate] = field(default_factory=lambda: defaultdict(Aggregate))
    summaries: dict[str, Aggregate] = field(default_factory=lambda: defaultdict(Aggregate))
    plugins: dict[str, dict[int, Aggregate]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Aggregate))
    )
    last_seen: dict[str, datetime] = field(default_factory=dict)
    # Plugins whose last_seen is a rollup bucket's end: no raw run of theirs was read.
    rolled_only: set[str] = field(default_factory=set)

    def index(self, t: datetime) -> int | None:
        i = int((t - self.start).total_seconds()) // self.step
        return i if 0 <= i < self.count else None

    def merge(self, plugin: str, t: datetime, agg: Aggregate, span: int) -> None:
        i = self.index(t)
        if i is None:
            return
        self.total[i].merge(agg)
        self.summaries[plugin].merge(agg)
        if self.per_plugin:
            self.plugins[plugin][i].merge(agg)
        if agg.total:
            seen = t + timedelta(seconds=span)
            if seen >= self.last_seen.get(plugin, seen):
                self.last_seen[plugin] = seen
                self.rolled_only.add(plugin)

    def add(self, group: RunGroup) -> None:
        """Runs grouped by this series' step (`run_groups`)."""
        plugin = group.plugin
        i = self.index(group.slot)
        if i is None:
            return
        self.total[i].add_group(group)
        self.summaries[plugin].add_group(group)
        if self.per_plugin:
            self.plugins[plugin][i].add_group(group)
        seen = group.last_start
        if seen >= self.last_seen.get(plugin, seen):
            self.last_seen[plugin] = seen
            self.rolled_only.discard(plugin)


def series(
    store: ExecutionStore,
    since: datetime,
    until: datetime,
    grain: str,
    plugin: str | None = None,
    plugin_buckets: bool = False,
) -> dict[str, Any]:
    """Buckets of `grain` from the one holding `since` up to `until`, oldest first, each
    with its counts and percentiles; the range's summary; each plugin's summary and when
    it last ran in the range (the end of a rollup's hour or day for a run no longer
    stored), and with
    `plugin_buckets` its buckets too."""
    start = floor_to(since, grain)
    step = GRAINS[grain]
    count = max(1, -(-int((until - start).total_seconds()) // step))
    b = _Buckets(start, step, count, plugin_buckets)
    with store.snapshot() as reader:
        raw_from = start
        if grain != "minute":
            rolled_upto = floor_to(watermark(reader), "hour")
            hourly_from = start
            if grain == "day":
                daily_upto = min(watermark(reader, DAILY_WATERMARK), rolled_upto)
                daily_upto = max(start, floor_to(min(daily_upto, until), "day"))
                for day in reader.rollups(DAY, start, daily_upto, plugin):
                    if day.plugin != ALL_PLUGINS:
                        b.merge(day.plugin, day.start, day.aggregate, 86400)
                hourly_from = daily_upto
            hourly_upto = max(hourly_from, floor_to(min(rolled_upto, until), "hour"))
            for hour in reader.rollups(HOUR, hourly_from, hourly_upto, plugin):
                b.merge(hour.plugin, hour.start, hour.aggregate, 3600)
            raw_from = hourly_upto
        for group in reader.run_groups(raw_from, until, timedelta(seconds=step), plugin):
            b.add(group)
        for name in b.rolled_only:  # the run itself, while it is stored: one index probe
            newest, _ = reader.page(
                ExecutionFilter(plugin=name, since=start, until=until), 1, 0, None
            )
            if newest:
                b.last_seen[name] = newest[0].start_time
    return {
        "grain": grain,
        "since": start,
        "until": until,
        "plugin": plugin,
        "summary": _summary(b.total.values(), len(b.summaries)),
        "buckets": _buckets(b, b.total),
        "plugins": [
            {
                "plugin": name,
                "last_seen": b.last_seen.get(name),
                "summary": _figures(b.summaries[name]),
                **({"buckets": _buckets(b, b.plugins[name])} if plugin_buckets else {}),
            }
            for name in sorted(b.summaries)
        ],
    }


def _figures(agg: Aggregate) -> dict[str, Any]:
    return {
        **agg.counts(),
        "completed_executions": agg.completed,
        "canceled_executions": agg.canceled,
        "p50_duration": agg.percentile(0.50),
        "p95_duration": agg.percentile(0.95),
        "p99_duration": agg.percentile(0.99),
        "max_duration": agg.duration_max,
        "error_types": dict(sorted(agg.error_types.items())),
    }


def _summary(aggs: Any, unique_plugins: int | None = None) -> dict[str, Any]:
    overall = Aggregate()
    for agg in aggs:
        overall.merge(agg)
    figures = _figures(overall)
    if unique_plugins is not None:
        figures["unique_plugins"] = unique_plugins
    return figures


def _buckets(b: _Buckets, aggs: dict[int, Aggregate]) -> list[dict[str, Any]]:
    return [
        {"start": b.start + timedelta(seconds=i * b.step), **_figures(aggs.get(i, Aggregate()))}
        for i in range(b.count)
    ]
