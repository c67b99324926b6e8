"""A rule's value for each plugin, read from the store: hourly rollups for the whole
hours of the window before the rollup watermark, raw rows for the rest (the open
hour, and the part of the window's first hour that rollups cannot split)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from bridge.alerts.rules import Rule
from bridge.model import ExecutionFilter, Status
from bridge.storage.base import HOUR, Reader
from bridge.storage.rollup import ONE_HOUR, error_hours, hour_start, watermark
from bridge.storage.rollups import Aggregate

FAILED = (Status.FAILED.value, Status.TIMEOUT.value)


def error_groups_available() -> bool:
    """Whether the store keeps failure fingerprints (rules on new_error_group need them)."""
    return hasattr(Reader, "error_hours")


def new_error_groups(reader: Reader, plugin: str, since: datetime, now: datetime) -> set[str]:
    """Fingerprints of `plugin`'s failures in [since, now] that never failed before
    `since`: rolled-up hours before the watermark, raw failed runs after it."""
    rolled = watermark(reader)
    hours = reader.error_hours(since, min(rolled, now), plugin) if since < rolled else []
    raw = error_hours(reader.failures(max(since, rolled), now + timedelta(microseconds=1)))
    fingerprints = {h.fingerprint for h in hours} | {
        h.fingerprint for h in raw if h.plugin == plugin
    }
    first = reader.first_seen(fingerprints)
    return {fp for fp in fingerprints if first.get(fp, since) >= since}


def window_aggregates(reader: Reader, start: datetime) -> dict[str, Aggregate]:
    """Each plugin's finished runs that started at or after `start`."""
    out: dict[str, Aggregate] = defaultdict(Aggregate)
    rolled = watermark(reader)
    raw_from = start
    if start < rolled:
        first_hour = hour_start(start)
        edge = min(first_hour if first_hour == start else first_hour + ONE_HOUR, rolled)
        for g in reader.run_groups(start, edge, ONE_HOUR):
            out[g.plugin].add_group(g)
        if edge < rolled:
            for r in reader.rollups(HOUR, edge, rolled):
                out[r.plugin].merge(r.aggregate)
        raw_from = rolled
    for g in reader.run_groups(raw_from, None, ONE_HOUR):
        out[g.plugin].add_group(g)
    return out


def aggregate_value(rule: Rule, agg: Aggregate) -> float | None:
    """failure_rate, error_count and the duration percentiles (seconds) of a window's
    runs; None below `min_runs` runs."""
    if agg.total < rule.min_runs or agg.total == 0:
        return None
    failures = agg.failed + agg.timeout
    if rule.metric == "failure_rate":
        return failures / agg.total
    if rule.metric == "error_count":
        return float(agg.error_types[rule.error_type] if rule.error_type else failures)
    if rule.metric in ("p95_duration", "p99_duration"):
        return agg.percentile(0.95 if rule.metric == "p95_duration" else 0.99) / 1e9
    raise ValueError(rule.metric)


def consecutive_failures(reader: Reader, plugin: str, rule: Rule, now: datetime) -> float | None:
    """Failed or timed-out runs in a row among the window's, the newest first (open runs
    and canceled ones skipped), counted up to the threshold; None below `min_runs`
    finished runs. A burst of failures older than the window no longer counts."""
    limit = int(rule.threshold) + 20
    since = now - timedelta(seconds=rule.window)
    records, _ = reader.page(ExecutionFilter(plugin=plugin, since=since), limit, 0, None)
    final = [r for r in records if r.status.is_final and r.status != Status.CANCELED]
    if len(final) < min(rule.min_runs, int(rule.threshold)):
        return None
    count = 0
    for record in final:
        if record.status.value not in FAILED:
            break
        count += 1
    return float(count)


def last_run_age(reader: Reader, plugin: str, now: datetime) -> float | None:
    """Seconds since the plugin's latest run started; None if none is stored (a plugin
    that never ran is not one whose sender stopped)."""
    records, _ = reader.page(ExecutionFilter(plugin=plugin), 1, 0, None)
    if not records:
        return None
    return max(0.0, (now - records[0].start_time).total_seconds())


def values(
    rule: Rule,
    reader: Reader,
    now: datetime,
    known_plugins: Iterable[str],
    windows: dict[float, dict[str, Aggregate]],
) -> dict[str, float | None]:
    """The rule's value for each plugin it covers: its one plugin, or (for `*`) each
    plugin with runs in the window or among `known_plugins`. `windows` caches the
    aggregates of each window length across the rules of one evaluation."""
    if rule.metric in ("failure_rate", "error_count", "p95_duration", "p99_duration"):
        if rule.window not in windows:
            windows[rule.window] = window_aggregates(reader, now - timedelta(seconds=rule.window))
        aggs = windows[rule.window]
        names = [rule.plugin] if rule.plugin != "*" else sorted(set(aggs) | set(known_plugins))
        return {p: aggregate_value(rule, aggs.get(p, Aggregate())) for p in names}
    names = [rule.plugin] if rule.plugin != "*" else sorted(set(known_plugins))
    if rule.metric == "consecutive_failures":
        return {p: consecutive_failures(reader, p, rule, now) for p in names}
    if rule.metric == "no_runs":
        return {p: last_run_age(reader, p, now) for p in names}
    if rule.metric == "new_error_group":
        since = now - timedelta(seconds=rule.window)
        return {p: float(len(new_error_groups(reader, p, since, now))) for p in names}
    raise ValueError(rule.metric)
