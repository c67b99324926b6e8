"""Cleanup: delete the finished runs older than the retention, without losing their stats
and without holding up webhooks. Written once above the store protocol."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from bridge import clock
from bridge.clock import rfc3339
from bridge.model import CleanupResult
from bridge.storage.base import LAST_CLEANUP, ExecutionStore
from bridge.storage.rollup import rollup

log = logging.getLogger(__name__)

BATCH = 150  # runs per delete transaction: a webhook may wait for one (~30 ms)
COMPACT_BUDGET_S = 30.0  # longest a cleanup spends handing space back


def cleanup(store: ExecutionStore, older_than_days: int, now: datetime) -> CleanupResult:
    """Roll up first (stats must outlive the raw rows), delete finished runs older than
    the cutoff in small batches (never open ones), give the space back within a budget
    (what is left is reused, and the next cleanup goes on), and note what was done."""
    t0 = time.perf_counter()
    rollup(store, now)
    cutoff = now - timedelta(days=older_than_days)
    deleted = 0
    while True:
        n = store.delete_batch(cutoff, BATCH)
        deleted += n
        if n < BATCH:
            break
    log.info("Cleanup deleted %d executions in %.1fs", deleted, time.perf_counter() - t0)
    store.compact(COMPACT_BUDGET_S)
    finished = clock.utcnow()
    result = CleanupResult(deleted, cutoff, finished, (time.perf_counter() - t0) * 1000)
    summary = {
        "at": rfc3339(finished),
        "deleted": deleted,
        "cutoff": rfc3339(cutoff),
        "duration_ms": round(result.duration_ms, 1),
    }
    store.write(lambda w: w.set_state(LAST_CLEANUP, summary))
    return result
