"""What the executions API reads: the stats of a window of days, and pages of runs with
their total (exact up to a cap, estimated from the rollups above it).

Written once above the store protocol. Each reads in one snapshot, so that the rollups
and the raw rows it combines are split at the same watermark.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from bridge.model import ExecutionFilter, Page
from bridge.storage.base import DAILY_WATERMARK, DAY, HOUR, ExecutionStore, Reader, Span
from bridge.storage.closed_days import copied, merged
from bridge.storage.rollup import (
    ALL_PLUGINS,
    ONE_DAY,
    ONE_HOUR,
    day_start,
    hour_start,
    watermark,
)
from bridge.storage.rollups import Aggregate, build_stats, day_range

EXACT_COUNT_LIMIT = 10_000  # above this many matches, the list's total is an estimate


def window_stats(
    store: ExecutionStore,
    days: int,
    plugin: str | None,
    now: datetime,
    tags: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """The stats of the last `days` days (today included): daily rollups, then hourly
    ones past them, then raw rows after the rollup watermark. Rollups keep no tags:
    with `tags`, every figure comes from the runs still stored."""
    window = day_range(days, now)
    start = datetime(window[0].year, window[0].month, window[0].day, tzinfo=UTC)
    per_day: dict[date, Aggregate] = defaultdict(Aggregate)
    plugins: set[str] = set()
    overall, counted = None, frozenset[date]()
    with store.snapshot() as reader:
        if tags:
            for g in reader.run_groups(start, None, ONE_DAY, plugin, tags):
                per_day[g.slot.date()].add_group(g)
                plugins.add(g.plugin)
            return build_stats(per_day, window, len(plugins))
        rolled_upto = watermark(reader)
        daily_upto = min(watermark(reader, DAILY_WATERMARK), rolled_upto)
        if start < daily_upto:
            name = plugin or ALL_PLUGINS
            closed = max(start, day_start(daily_upto))
            if start < closed:
                days, overall = merged(
                    store, reader, "stats", start, closed, name, _days(start, closed, name), _copy
                )
                per_day.update(days)
                counted = frozenset(days)
            for day in reader.rollups(DAY, closed, daily_upto, name):
                _merge(per_day, day.start.date(), day.aggregate)
            plugins.update(
                name
                for name in reader.rollup_plugins(DAY, start, daily_upto)
                if name != ALL_PLUGINS and plugin in (None, name)
            )
        for hour in reader.rollups(HOUR, max(start, daily_upto), rolled_upto, plugin):
            _merge(per_day, hour.start.date(), hour.aggregate)
            plugins.add(hour.plugin)
        for g in reader.run_groups(max(start, rolled_upto), None, ONE_DAY, plugin):
            per_day[g.slot.date()].add_group(g)
            plugins.add(g.plugin)
    return build_stats(per_day, window, len(plugins), overall, counted)


ClosedDays = tuple[dict[date, Aggregate], Aggregate]


def _days(start: datetime, end: datetime, name: str) -> Callable[[Reader], ClosedDays]:
    """The closed days' rollups, and their sum."""

    def merge(reader: Reader) -> ClosedDays:
        per_day: dict[date, Aggregate] = {}
        for day in reader.rollups(DAY, start, end, name):
            _merge(per_day, day.start.date(), day.aggregate)
        overall = Aggregate()
        for agg in per_day.values():
            overall.merge(agg)
        return per_day, overall

    return merge


def _copy(value: ClosedDays) -> ClosedDays:
    """Only the sum is changed by the caller (today's runs go into it); the closed days
    are read, never changed: nothing after them falls on them."""
    return value[0], copied(value[1])


def _merge(per_day: dict[date, Aggregate], day: date, agg: Aggregate) -> None:
    """Merge into the day's aggregate; the first one for a day is taken as it is."""
    if day in per_day:
        per_day[day].merge(agg)
    else:
        per_day[day] = agg


def list_page(
    store: ExecutionStore,
    flt: ExecutionFilter,
    limit: int,
    offset: int,
    cursor: str | None,
    exact_up_to: int = EXACT_COUNT_LIMIT,
) -> Page:
    """Matching runs newest first; `cursor` replaces `offset` for deep pages. `total` is
    exact up to `exact_up_to` matches, above it an estimate from the rollups (counting a
    million index entries takes longer than the whole page should). The estimate comes
    first: at twice the limit or more, counting up to the limit (a few ms at 10,000
    index entries) could not change the answer, and is skipped."""
    with store.snapshot() as reader:
        records, next_cursor = reader.page(flt, limit, offset, cursor)
        guess = estimate(reader, flt)
        if guess is not None and guess >= 2 * (exact_up_to + 1):
            return Page(records, guess, True, next_cursor)
        total = reader.count(flt, exact_up_to + 1)
        estimated = total > exact_up_to
        if estimated:
            total = max(total, guess or 0)
    return Page(records, total, estimated, next_cursor)


def estimate(reader: Reader, flt: ExecutionFilter) -> int | None:
    """Matches counted from rollups before the watermark plus raw rows after it; None
    for what rollups do not count: open runs, and any filter but plugin, status, error
    type and time (a trace id, tags, an error group, the replays of a run)."""
    counted = replace(flt, plugin=None, status=None, error_type=None, since=None, until=None)
    if counted != ExecutionFilter() or (flt.status is not None and not flt.status.is_final):
        return None
    rolled_upto = watermark(reader)
    oldest = reader.oldest_start()
    if oldest is None:
        return 0
    lo = hour_start(oldest)  # rollups outlive raw rows: count only hours still held
    if flt.since is not None:
        lo = max(lo, _ceil_hour(flt.since))
    hi = rolled_upto
    if flt.until is not None:
        hi = min(hi, hour_start(flt.until))
    rolled = _rolled_count(reader, flt, lo, hi) if lo < hi else 0
    since = rolled_upto if flt.since is None else max(flt.since, rolled_upto)
    return rolled + reader.count(replace(flt, since=since))


def _rolled_count(reader: Reader, flt: ExecutionFilter, lo: datetime, hi: datetime) -> int:
    """Matches in the rollups of [lo, hi): daily ones for whole days, hourly at the edges."""
    first_day = day_start(lo)
    if first_day < lo:
        first_day += ONE_DAY
    last_day = min(day_start(hi), day_start(watermark(reader, DAILY_WATERMARK)))
    spans = [Span(HOUR, lo, hi, flt.plugin)]
    if first_day < last_day:
        spans = [
            Span(DAY, first_day, last_day, flt.plugin or ALL_PLUGINS),
            Span(HOUR, lo, first_day, flt.plugin),
            Span(HOUR, last_day, hi, flt.plugin),
        ]
    spans = [s for s in spans if s.start < s.end]
    return reader.rollup_count(spans, flt.status, flt.error_type)


def _ceil_hour(t: datetime) -> datetime:
    """The first hour start at or after t (in the last hour of year 9999: that hour's
    start, which no run can follow)."""
    start = hour_start(t)
    if start == t or start > datetime.max.replace(tzinfo=UTC) - ONE_HOUR:
        return start
    return start + ONE_HOUR
