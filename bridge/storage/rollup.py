"""Rolling finished runs up: hourly rollups of each plugin's runs, merged into days.

Written once above the store protocol. Stats read the rollups instead of raw rows up to
the rollup watermark, so they stay fast over months and outlive the raw rows that
cleanup deletes (cleanup rolls up first).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from bridge.storage.base import (
    DAILY_WATERMARK,
    DAY,
    HOUR,
    ROLLUP_WATERMARK,
    ErrorHour,
    ExecutionStore,
    Failure,
    Reader,
    Rollup,
    RunGroup,
    Writer,
)
from bridge.storage.rollups import Aggregate
from bridge.tracking.fingerprint import error_message, normalise

ALL_PLUGINS = "*"  # the daily rollups' name for every plugin together
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_HOUR = timedelta(hours=1)
ONE_DAY = timedelta(days=1)


def hour_start(t: datetime) -> datetime:
    """The start of the UTC hour holding `t`."""
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_start(t: datetime) -> datetime:
    """The start of the UTC day holding `t`."""
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def watermark(reader: Reader, key: str = ROLLUP_WATERMARK) -> datetime:
    """A watermark as a time (the epoch if it was never set)."""
    return EPOCH + timedelta(seconds=reader.state(key) or 0)


def _seconds(t: datetime) -> int:
    return int((t - EPOCH).total_seconds())


def rollup(store: ExecutionStore, now: datetime) -> int:
    """Roll up the closed hours not rolled up yet, then merge their days; returns how
    many hourly rollups were written. Safe to run again, or from two processes."""
    start, upto = _plan(store, now)
    written = 0
    chunk = start
    while chunk < upto:  # a day at a time: one read never holds a month of runs
        end = min(upto, chunk + ONE_DAY)
        with store.snapshot() as reader:
            rows = hourly(reader.run_groups(chunk, end, ONE_HOUR))
            errors = error_hours(reader.failures(chunk, end))
        if rows or errors:

            def put(w: Writer, rows: list[Rollup] = rows, errors: list[ErrorHour] = errors) -> None:
                w.put_rollups(HOUR, rows)
                w.put_error_hours(errors)

            store.write(put)
            written += len(rows)
        chunk = end
    store.write(lambda w: _merge_days(w, start, upto))
    return written


def _plan(store: ExecutionStore, now: datetime) -> tuple[datetime, datetime]:
    """The hours to roll up: from the hour before the watermark (a run may commit just
    after a rollup) to the last closed hour, never past the oldest run still open."""
    with store.snapshot() as reader:
        upto = hour_start(now)
        oldest_open = reader.oldest_start(open_only=True)
        if oldest_open is not None:
            upto = min(upto, hour_start(oldest_open))
        if reader.state(ROLLUP_WATERMARK) is not None:
            mark = watermark(reader)
        else:
            first = reader.oldest_start()
            mark = hour_start(first) if first is not None else upto
    return max(EPOCH, min(mark, upto) - ONE_HOUR), upto


def hourly(groups: Iterable[RunGroup]) -> list[Rollup]:
    """Each plugin's runs per hour (grouped by the hour, `run_groups(..., ONE_HOUR)`), as
    rollups."""
    hours: dict[tuple[str, datetime], Aggregate] = defaultdict(Aggregate)
    for g in groups:
        hours[(g.plugin, g.slot)].add_group(g)
    return [Rollup(plugin, hour, agg) for (plugin, hour), agg in hours.items()]


def error_hours(failures: Iterable[Failure]) -> list[ErrorHour]:
    """Each error group's failures per hour: count, first and last seen, the latest run
    as its example, and its normalised message."""
    groups: dict[tuple[str, int], ErrorHour] = {}
    for f in failures:
        hour = int(f.start.timestamp()) // 3600
        seen = groups.get((f.error_group, hour))
        if seen is None:
            groups[(f.error_group, hour)] = ErrorHour(
                f.error_group,
                EPOCH + hour * ONE_HOUR,
                f.plugin,
                f.error_type,
                normalise(error_message(f.error)),
                1,
                f.start,
                f.start,
                f.id,
            )
            continue
        seen.count += 1
        seen.first_seen = min(seen.first_seen, f.start)
        if f.start >= seen.last_seen:
            seen.last_seen, seen.example_id = f.start, f.id
        if not seen.message and f.error:
            seen.message = normalise(error_message(f.error))
    return list(groups.values())


def _merge_days(writer: Writer, start: datetime, upto: datetime) -> None:
    """Rebuild the daily rollups (per plugin and ALL_PLUGINS) of the days from `start`'s
    up to `upto` from the hourly ones, and move both watermarks to `upto`; in one
    transaction, so stats never see a day half merged. Without a daily watermark (the
    daily table is new) every day is rebuilt."""
    merged_upto = watermark(writer, DAILY_WATERMARK)
    first_day = day_start(min(start, merged_upto))
    days: dict[tuple[str, datetime], Aggregate] = defaultdict(Aggregate)
    for hour in writer.rollups(HOUR, first_day, upto):
        day = day_start(hour.start)
        days[(hour.plugin, day)].merge(hour.aggregate)
        days[(ALL_PLUGINS, day)].merge(hour.aggregate)
    writer.delete_rollups(DAY, first_day, upto)
    writer.put_rollups(DAY, [Rollup(plugin, day, agg) for (plugin, day), agg in days.items()])
    writer.set_state(DAILY_WATERMARK, _seconds(upto))
    writer.set_state(ROLLUP_WATERMARK, _seconds(upto))
