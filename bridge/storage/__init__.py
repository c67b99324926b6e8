"""Storage: the store as an app extension, and the backend that `storage.type` names.

The store may be missing (tracking disabled, or the database could not be opened):
webhooks still run, and whatever needs the history gets StorageUnavailable (503).
A store that could not be opened is tried again while the app serves, with a growing
pause, until it opens: a database folder fixed later needs no restart.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
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

    def __init__(
        self,
        store: ExecutionStore | None = None,
        disabled_reason: str = "",
        opener: Callable[[], ExecutionStore] | None = None,
    ) -> None:
        self.store = store
        self.disabled_reason = disabled_reason
        self.failures = WriteFailures()
        self._lock = threading.Lock()
        # How to try again when the store could not be opened (None: tracking is off).
        self.opener = opener
        self._stop = threading.Event()
        self._reopening: threading.Thread | None = None
        # Told of each failed write (the Prometheus metrics count them).
        self.failure_listeners: list[Callable[[], None]] = []

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
        for listener in self.failure_listeners:
            listener()

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

    def keep_trying(self, opened: Callable[[], None], first_wait: float = 1.0) -> None:
        """While the store is missing for a reason that may pass (a folder not yet
        writable, a database not yet up), try to open it again in a thread, waiting
        1, 2, 4 ... up to 60 seconds between tries; `opened` runs once it is open."""
        if self.store is not None or self.opener is None or self._reopening is not None:
            return

        def loop() -> None:
            wait = first_wait
            while not self._stop.wait(wait):
                try:
                    store = self.opener()
                except StorageError as exc:
                    self.disabled_reason = str(exc)
                    wait = min(wait * 2, 60.0)
                    continue
                self.store, self.disabled_reason = store, ""
                log.info("✅ Execution storage initialized successfully")
                opened()
                return

        self._reopening = threading.Thread(target=loop, name="storage-reopen", daemon=True)
        self._reopening.start()

    def close(self) -> None:
        self._stop.set()
        if self.store is not None:
            self.store.close()


def open_storage(config: Config) -> Storage:
    """The configured store, or a Storage without one if tracking is off or the store
    cannot be opened (logged with the seed's start-up lines)."""
    if not config.execution_tracking.enabled:
        log.info("🔄 Execution tracking is disabled (execution_tracking.enabled: false)")
        return Storage(None, "execution_tracking.enabled is false")
    storage = Storage()
    storage.opener = lambda: open_store(config, storage.write_failed)
    try:
        storage.store = storage.opener()
    except StorageError as exc:
        log.warning("⚠️ Failed to initialize storage: %s", exc)
        log.warning("🔄 Execution tracking will be disabled")
        storage.disabled_reason = str(exc)
        return storage
    log.info("✅ Execution storage initialized successfully")
    return storage


# Each `storage.type` and the class of its backend, imported only when chosen.
BACKENDS = {
    "sqlite": "bridge.storage.sqlite:SQLiteStore",
    "postgresql": "bridge.storage.postgresql:PostgreSQLStore",
    "mysql": "bridge.storage.mysql:MySQLStore",
}


def open_store(config: Config, on_error: Any) -> ExecutionStore:
    """The store named by `storage.type`; raises StorageError if it cannot be opened."""
    module, _, name = BACKENDS[config.storage.type].partition(":")
    backend = getattr(importlib.import_module(module), name)
    return backend(config, on_error)
