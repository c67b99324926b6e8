"""Rollup arithmetic: hourly aggregates of runs that merge into any window's stats.

Durations go into a log-scale histogram (8 buckets per doubling, so a percentile read
from it is within about 5% of the true value), which merges across hours and plugins.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bridge.model import Status

if TYPE_CHECKING:
    from bridge.storage.base import RunGroup

BUCKETS_PER_DOUBLING = 8
BASE_NS = 1_000  # 1 µs: shorter durations share the first bucket


def bucket_of(duration_ns: int) -> int:
    """A duration's bucket; each backend's SQL works it out the same way (run_groups)."""
    return max(0, int(math.log2(max(duration_ns, BASE_NS) / BASE_NS) * BUCKETS_PER_DOUBLING))


def histogram_of(stored: dict[str, int]) -> Counter[int]:
    """A histogram as stored (a JSON object: bucket numbers as keys). A stats window of
    90 days reads 90 of about 100 buckets each; zip/map converts them in half the time
    a dict comprehension takes."""
    return Counter(dict(zip(map(int, stored), stored.values(), strict=True)))


def _add(into: Counter[Any], other: Counter[Any]) -> None:
    """`into` += `other`, at dict speed: Counter.update and `+=` per item go through
    Python code for each key, which costs more than the sum when windows merge
    thousands of rollups (a histogram has ~100 buckets)."""
    if not into:
        dict.update(into, other)
        return
    get = into.get
    dict.update(into, {key: get(key, 0) + n for key, n in other.items()})


def bucket_value(bucket: int) -> int:
    """The geometric middle of a bucket, in nanoseconds."""
    return int(BASE_NS * 2 ** ((bucket + 0.5) / BUCKETS_PER_DOUBLING))


@dataclass
class Aggregate:
    """Counts, durations and error types of a set of finished runs."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    timeout: int = 0
    canceled: int = 0
    duration_sum: int = 0
    duration_min: int | None = None
    duration_max: int = 0
    histogram: Counter[int] = field(default_factory=Counter)
    error_types: Counter[str] = field(default_factory=Counter)
    retried: int = 0  # runs that needed more than one attempt
    retry_time: int = 0  # nanoseconds spent after first attempts

    def counts(self) -> dict[str, Any]:
        """The figures every stats document shows: the window's, a day's, live metrics'."""
        return {
            "total_executions": self.total,
            "successful_executions": self.completed,
            "failed_executions": self.unsuccessful,
            "timeout_executions": self.timeout,
            "success_rate": self.success_rate,
            "avg_duration": self.avg_duration,
        }

    def add(
        self,
        status: str,
        error_type: str,
        duration: int,
        retry_count: int = 0,
        retry_time: int = 0,
    ) -> None:
        """One finished run (live metrics add each as it ends)."""
        self._count(status, error_type, bucket_of(duration), 1)
        if retry_count > 0:
            self.retried += 1
            self.retry_time += retry_time
        self._durations(duration, duration, duration)

    def add_group(self, group: RunGroup) -> None:
        """Runs summed by the database (Reader.run_groups)."""
        self._count(group.status, group.error_type, group.bucket, group.runs)
        self.retried += group.retried
        self.retry_time += group.retry_time
        self._durations(group.duration_sum, group.duration_min, group.duration_max)

    def _durations(self, total: int, shortest: int, longest: int) -> None:
        self.duration_sum += total
        if self.duration_min is None or shortest < self.duration_min:
            self.duration_min = shortest
        self.duration_max = max(self.duration_max, longest)

    def _count(self, status: str, error_type: str, bucket: int, n: int) -> None:
        """`n` runs of one status, error type and duration bucket."""
        self.total += n
        if status == Status.COMPLETED.value:
            self.completed += n
        elif status == Status.TIMEOUT.value:
            self.timeout += n
        elif status == Status.CANCELED.value:
            self.canceled += n
        else:
            self.failed += n
        self.histogram[bucket] += n
        if error_type:
            self.error_types[error_type] += n

    def merge(self, other: Aggregate) -> None:
        self.total += other.total
        self.completed += other.completed
        self.failed += other.failed
        self.timeout += other.timeout
        self.canceled += other.canceled
        self.retried += other.retried
        self.retry_time += other.retry_time
        self.duration_sum += other.duration_sum
        if other.duration_min is not None:
            self.duration_min = (
                other.duration_min
                if self.duration_min is None
                else min(self.duration_min, other.duration_min)
            )
        self.duration_max = max(self.duration_max, other.duration_max)
        _add(self.histogram, other.histogram)
        _add(self.error_types, other.error_types)

    @property
    def unsuccessful(self) -> int:
        return self.failed + self.timeout + self.canceled

    @property
    def success_rate(self) -> float:
        return round(100.0 * self.completed / self.total, 2) if self.total else 0.0

    @property
    def avg_duration(self) -> int:
        return self.duration_sum // self.total if self.total else 0

    def percentile(self, q: float) -> int:
        """Duration (ns) below which a share `q` of runs finished; exact at the extremes."""
        if not self.total:
            return 0
        rank = max(1, math.ceil(q * self.total))
        seen = 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen >= rank:
                low = self.duration_min or 0
                return min(max(bucket_value(bucket), low), self.duration_max)
        return self.duration_max


def day_range(days: int, now: datetime) -> list[date]:
    """Today (UTC) and the `days - 1` days before it, oldest first."""
    today = now.date()
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def build_stats(
    per_day: dict[date, Aggregate],
    days: list[date],
    unique_plugins: int,
    overall: Aggregate | None = None,
    counted: Container[date] = (),
) -> dict[str, Any]:
    """The ExecutionStats document, with a daily entry for every day of the window;
    `overall`, if given, holds the days in `counted` already."""
    overall = overall or Aggregate()
    daily = []
    for day in days:
        agg = per_day.get(day, Aggregate())
        if day not in counted:
            overall.merge(agg)
        daily.append({"date": day.isoformat(), **agg.counts()})
    return {
        **overall.counts(),
        "canceled_executions": overall.canceled,
        "min_duration": overall.duration_min or 0,
        "max_duration": overall.duration_max,
        "p50_duration": overall.percentile(0.50),
        "p95_duration": overall.percentile(0.95),
        "p99_duration": overall.percentile(0.99),
        "unique_plugins": unique_plugins,
        "error_types": dict(sorted(overall.error_types.items())),
        "daily_stats": daily,
        "window_start": days[0].isoformat(),
        "window_end": days[-1].isoformat(),
    }
