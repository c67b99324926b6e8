"""Storage: the store as an app extension, and the backend that `storage.type` names.

The store may be missing (tracking disabled, or the database could not be opened):
webhooks still run, and whatever needs the history gets StorageUnavailable (503).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask

from bridge import clock
from bridge.config import Config
from bridge.errors import StorageError, StorageUnavailable
from bridge.storage.base import ExecutionStore

log = logging.getLogger("bridge.tracking")


@dataclass
class WriteFailures:
    count: int = 0
    last_error: str = ""
    last_at: datetime | None = None


class Storage:
    """The app's store (or why there is none) and the count of writes that failed."""

    def __init__(self, store: ExecutionStore | None = None, disabled_reason: str = "") -> None:
        self.store = store
        self.disabled_reason = disabled_reason
        self.failures = WriteFailures()
        self._lock = threading.Lock()

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.storage"] = self

    @property
    def enabled(self) -> bool:
        return self.store is not None

    def require(self) -> ExecutionStore:
        if self.store is None:
            raise StorageUnavailable(
                f"Execution tracking is disabled: {self.disabled_reason or 'not configured'}"
            )
        return self.store

    def write_failed(self, action: str, exc: BaseException) -> None:
        """Count and log a write that failed; the webhook that caused it still answers."""
        with self._lock:
            self.failures.count += 1
            self.failures.last_error = f"{type(exc).__name__}: {exc}"
            self.failures.last_at = clock.utcnow()
        log.error("Execution tracking could not %s: %s", action, exc)

    def status(self) -> dict[str, Any]:
        with self._lock:
            failures = {
                "count": self.failures.count,
                "last_error": self.failures.last_error,
                "last_at": (
                    clock.rfc3339(self.failures.last_at) if self.failures.last_at else None
                ),
            }
        return {
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "write_failures": failures,
        }

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def open_storage(config: Config) -> Storage:
    """The configured store, or a Storage without one if tracking is off or the store
    cannot be opened (logged with the seed's start-up lines)."""
    if not config.execution_tracking.enabled:
        log.info("🔄 Execution tracking is disabled (execution_tracking.enabled: false)")
        return Storage(None, "execution_tracking.enabled is false")
    storage = Storage()
    try:
        storage.store = open_store(config, storage.write_failed)
    except StorageError as exc:
        log.warning("⚠️ Failed to initialize storage: %s", exc)
        log.warning("🔄 Execution tracking will be disabled")
        storage.disabled_reason = str(exc)
        return storage
    log.info("✅ Execution storage initialized successfully")
    return storage


def open_store(config: Config, on_error: Any) -> ExecutionStore:
    """The store named by `storage.type`; raises StorageError if it cannot be opened."""
    from bridge.storage.sqlite import SQLiteStore

    return SQLiteStore(config, on_error)
