"""Prometheus metrics: what runs, how long, how often the bridge says no, and whether
its background jobs work; GET /metrics shows them (bridge.api.metrics).

Fed by the events a run emits (`RunStarted`, `RunFinished`, `JobFinished`), the
process's counters and the store's failed writes, so no service calls it by name.
Under gunicorn, `PROMETHEUS_MULTIPROC_DIR` (set by bridge.gunicorn_conf before any
worker imports prometheus_client) makes every worker write its figures to files
there, and a scrape answered by any worker adds them all up; a worker that exits is
marked dead there (`child_exit`). Without it (the development server, tests), the
figures are the process's own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask import Flask

from bridge.events import JobFinished, RunFinished, RunStarted

if TYPE_CHECKING:
    from bridge.storage.spool import Spool

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: plugin runs last from milliseconds to minutes.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# The process counters each Prometheus counter follows.
COUNTED = {
    "runner.saturated": (
        "bridge_runner_saturated_total",
        "Deliveries refused with 503: runner full",
    ),
    "runner.plugin_busy": (
        "bridge_plugin_busy_total",
        "Deliveries refused with 429: plugin at max_concurrency",
    ),
    "webhook.signature_rejected": (
        "bridge_signature_rejections_total",
        "Deliveries refused for a bad signature",
    ),
    "webhook.replayed": (
        "bridge_idempotent_replays_total",
        "Repeated deliveries answered from the first run",
    ),
}


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class PrometheusMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        # Multiprocess: values go to the folder's files, and a scrape reads them all.
        where: Any = None if multiprocess() else self.registry
        self.runs = Counter(
            "bridge_runs_total",
            "Finished runs by plugin, status and error type",
            ["plugin", "status", "error_type"],
            registry=where,
        )
        self.duration = Histogram(
            "bridge_run_duration_seconds",
            "How long finished runs took, by plugin",
            ["plugin"],
            buckets=BUCKETS,
            registry=where,
        )
        self.in_flight = Gauge(
            "bridge_runs_in_flight",
            "Runs started and not yet finished",
            registry=where,
            multiprocess_mode="livesum",
        )
        self.counted = {
            key: Counter(name.removesuffix("_total"), doc, registry=where)
            for key, (name, doc) in COUNTED.items()
        }
        self.write_errors = Counter(
            "bridge_storage_write_errors", "Writes the store refused", registry=where
        )
        self.jobs = Counter(
            "bridge_scheduler_jobs",
            "Background job runs by job and outcome",
            ["job", "outcome"],
            registry=where,
        )
        self.spool_dropped = Counter(
            "bridge_spool_dropped",
            "Run records the spool could not keep (full or unwritable)",
            registry=where,
        )
        self._spool: Spool | None = None
        self._open: set[str] = set()
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.prometheus"] = self
        events = app.extensions["bridge.events"]
        events.add_listener(self.started, RunStarted)
        events.add_listener(self.finished, RunFinished)
        events.add_listener(self.job, JobFinished)
        app.extensions["bridge.counters"].listeners.append(self.count)
        storage = app.extensions["bridge.storage"]
        storage.failure_listeners.append(self.write_errors.inc)
        if storage.spool is not None:
            self._spool = storage.spool
            self._spool.drop_listeners.append(self.spool_dropped.inc)
            if not multiprocess():
                self.registry.register(SpoolCollector(self._spool))

    def started(self, event: RunStarted) -> None:
        with self._lock:
            if event.execution_id in self._open:
                return
            self._open.add(event.execution_id)
        self.in_flight.inc()

    def finished(self, event: RunFinished) -> None:
        self.runs.labels(event.plugin, event.status.value, event.error_type or "none").inc()
        self.duration.labels(event.plugin).observe(event.duration / 1e9)
        with self._lock:
            was_open = event.execution_id in self._open
            self._open.discard(event.execution_id)
        if was_open:
            self.in_flight.dec()

    def count(self, name: str, n: int) -> None:
        counter = self.counted.get(name)
        if counter is not None:
            counter.inc(n)

    def job(self, event: JobFinished) -> None:
        self.jobs.labels(event.name, "ok" if event.ok else "failed").inc()

    def exposition(self) -> bytes:
        """The text format: every worker's figures added up, or this process's."""
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if not multiprocess():
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        if self._spool is not None:
            registry.register(SpoolCollector(self._spool))
        return generate_latest(registry)


class SpoolCollector:
    """The spool's backlog, read from its files at each scrape: one figure for the
    host, whichever worker answers (each worker's file is in the same folder)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        depth, oldest = self.spool.host_backlog()
        yield GaugeMetricFamily(
            "bridge_spool_depth",
            "Run records waiting in this host's spool for the database",
            value=depth,
        )
        yield GaugeMetricFamily(
            "bridge_spool_oldest_age_seconds",
            "Age of the oldest record waiting in the spool (0 when it is empty)",
            value=max(time.time() - oldest, 0.0) if oldest is not None else 0.0,
        )


def mark_dead(pid: int) -> None:
    """gunicorn's child_exit: a dead worker's live gauges stop counting."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(pid)
