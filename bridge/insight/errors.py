"""Error groups: failures sharing a fingerprint, counted per day over a window, with
whether each group is new in the window or rising against the previous one.

Rolled-up hours (error_group_hours) before the rollup watermark, raw failed runs after
it, read in one snapshot: a group outlives its raw rows, as the stats do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bridge.errors import ErrorGroupNotFound
from bridge.storage.base import DAY, ErrorHour, ExecutionStore
from bridge.storage.rollup import error_hours, watermark
from bridge.storage.rollups import day_range

MAX_GROUPS = 500


@dataclass
class ErrorGroup:
    fingerprint: str
    plugin: str
    error_type: str
    message: str
    count: int = 0
    previous_count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    example_execution_id: str = ""
    per_day: dict[date, int] = field(default_factory=dict)
    new: bool = False
    rising: bool = False


def _hours(
    store: ExecutionStore, start: datetime, end: datetime, plugin: str | None
) -> tuple[list[ErrorHour], dict[str, datetime]]:
    with store.snapshot() as reader:
        rolled_upto = watermark(reader)
        hours = (
            reader.error_hours(start, min(rolled_upto, end), plugin, DAY)
            if start < rolled_upto
            else []
        )
        raw = error_hours(reader.failures(max(start, rolled_upto), end))
        hours += [h for h in raw if plugin in (None, h.plugin)]
        first = reader.first_seen({h.fingerprint for h in hours})
    return hours, first


def error_groups(
    store: ExecutionStore,
    days: int,
    plugin: str | None,
    now: datetime,
    rising_factor: float = 2.0,
    limit: int = 50,
) -> dict[str, Any]:
    """The groups that failed in the last `days` days (today included), most failures
    first, with their per-day series; `previous_count` is the count in the `days` days
    before, `new` says the group first failed in the window."""
    window = day_range(days, now)
    start = datetime(window[0].year, window[0].month, window[0].day, tzinfo=UTC)
    before = start - timedelta(days=days)
    hours, first = _hours(store, before, now + timedelta(microseconds=1), plugin)
    groups: dict[str, ErrorGroup] = {}
    for h in sorted(hours, key=lambda h: h.hour):
        g = groups.get(h.fingerprint)
        if g is None:
            g = groups[h.fingerprint] = ErrorGroup(h.fingerprint, h.plugin, h.error_type, h.message)
        g.message = g.message or h.message
        if h.hour < start:
            g.previous_count += h.count
            continue
        g.count += h.count
        day = h.hour.date()
        g.per_day[day] = g.per_day.get(day, 0) + h.count
        if g.last_seen is None or h.last_seen >= g.last_seen:
            g.last_seen, g.example_execution_id = h.last_seen, h.example_id
    shown = [g for g in groups.values() if g.count]
    for g in shown:
        g.first_seen = first.get(g.fingerprint)
        g.new = g.first_seen is not None and g.first_seen >= start
        g.rising = not g.new and g.count >= rising_factor * max(g.previous_count, 1)
    shown.sort(key=lambda g: (-g.count, g.fingerprint))
    return {
        "days": days,
        "window_start": window[0].isoformat(),
        "window_end": window[-1].isoformat(),
        "total_groups": len(shown),
        "total_failures": sum(g.count for g in shown),
        "groups": [
            {
                "fingerprint": g.fingerprint,
                "plugin": g.plugin,
                "error_type": g.error_type,
                "message": g.message,
                "count": g.count,
                "previous_count": g.previous_count,
                "first_seen": g.first_seen,
                "last_seen": g.last_seen,
                "example_execution_id": g.example_execution_id,
                "new": g.new,
                "rising": g.rising,
                "daily": [{"date": d.isoformat(), "count": g.per_day.get(d, 0)} for d in window],
            }
            for g in shown[:limit]
        ],
    }


def require_group(store: ExecutionStore, fingerprint: str) -> None:
    """Raise ErrorGroupNotFound unless some run, stored or rolled up, has the group."""
    with store.snapshot() as reader:
        if fingerprint not in reader.first_seen([fingerprint]):
            raise ErrorGroupNotFound(fingerprint)
