"""Execution tracking: record lifecycle, error classification, truncation, live metrics."""

from __future__ import annotations

import logging

from bridge.config import Config
from bridge.errors import StorageError
from bridge.storage import open_store
from bridge.tracking.tracker import Tracker

log = logging.getLogger(__name__)


def create_tracker(config: Config) -> Tracker:
    """A tracker on the configured store, or a disabled one if the store cannot open."""
    if not config.execution_tracking.enabled:
        log.info("🔄 Execution tracking is disabled (execution_tracking.enabled: false)")
        return Tracker(config, None, "execution_tracking.enabled is false")
    tracker = Tracker(config, None)
    try:
        tracker.store = open_store(config, tracker.write_failed)
    except StorageError as exc:
        log.warning("⚠️ Failed to initialize storage: %s", exc)
        log.warning("🔄 Execution tracking will be disabled")
        tracker.disabled_reason = str(exc)
        return tracker
    log.info("✅ Execution storage initialized successfully")
    tracker.recover_stale()
    return tracker
