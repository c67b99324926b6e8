"""Storage: the store as an app extension, and the backend that `storage.type` names.

The store may be missing (tracking disabled, or the database could not be opened):
webhooks still run, and whatever needs the history gets StorageUnavailable (503).
A store that could not be opened is tried again while the app serves, with a growing
pause, until it opens: a database folder fixed later needs no restart.

A server database (PostgreSQL, MySQL) may also go away while the bridge serves. Then
run records go to the local spool (spool.py) instead, without waiting for the server
each time; a thread probes the server and replays the spool into it once it answers.
"""

from __future__ import annotations

import contextlib
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
from bridge.errors import RecordRefused, StorageError, StorageUnavailable
from bridge.model import ExecutionRecord
from bridge.storage.base import ExecutionStore
from bridge.storage.spool import Spool

log = logging.getLogger("bridge.tracking")

# How often a process looks for the spool files of processes that died, when idle.
ORPHAN_CHECK_S = 30.0


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
        spool: Spool | None = None,
    ) -> None:
        self.store = store
        self.disabled_reason = disabled_reason
        self.failures = WriteFailures()
        self._lock = threading.Lock()
        # How to try again when the store could not be opened (None: tracking is off).
        self.opener = opener
        # Where run records go while a server database is away (None for SQLite).
        self.spool = spool
        # Why the server database is taken as away ("" while it answers).
        self.outage = ""
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reopening: threading.Thread | None = None
        # Told of each failed write (the Prometheus metrics count them).
        self.failure_listeners: list[Callable[[], None]] = []

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.storage"] = self

    @property
    def enabled(self) -> bool:
        return self.store is not None

    @property
    def keeps_records(self) -> bool:
        """Whether run records are kept: in the store, or in the spool until it is back."""
        return self.store is not None or self.spool is not None

    @property
    def live_store(self) -> ExecutionStore | None:
        """The store if it is open and its server answers (else None, at once)."""
        return None if self.outage else self.store

    def require(self) -> ExecutionStore:
        if self.store is None:
            if self.spool is not None:
                raise StorageUnavailable(
                    f"The database is unreachable: {self.disabled_reason}; "
                    f"{self.spool.depth} run records wait in the spool",
                    spool=self.spool.status(),
                )
            raise StorageUnavailable(
                f"Execution tracking is disabled: {self.disabled_reason or 'not configured'}"
            )
        if self.outage and self.spool is not None:
            raise StorageUnavailable(
                f"The database is unreachable: {self.outage}; "
                f"{self.spool.depth} run records wait in the spool",
                spool=self.spool.status(),
            )
        return self.store

    def save(self, record: ExecutionRecord, *, insert: bool, wait: bool, action: str) -> bool:
        """Write a run record to the store, or to the spool while the server is away
        (or while the spool still holds older records: they go in first). False (the
        failure counted and logged) when neither took it."""
        store = self.store
        if self._spooling:
            return self._to_spool(record)
        if store is None:
            return True  # tracking is off
        try:
            if insert:
                store.insert(record, wait=wait)
            else:
                store.update(record, wait=wait)
        except RecordRefused as exc:  # the server is there: the spool would not help
            self.write_failed(action, exc)
            return False
        except Exception as exc:
            self.write_failed(action, exc)
            if self.spool is None:
                return False
            self.went_away(str(exc))
            return self._to_spool(record)
        return True

    def expect(self, execution_id: str) -> None:
        """A run started whose record is to come (ExecutionStore.expect). Only a hint to
        the group commit: nothing while records go to the spool, and a store that cannot
        take it is left alone (its writes report their own failures)."""
        if self.store is None or self._spooling:
            return
        with contextlib.suppress(Exception):
            self.store.expect(execution_id)

    @property
    def _spooling(self) -> bool:
        """Whether run records go to the spool now: the server is away, or the spool
        still holds older records (they go in first)."""
        spool = self.spool
        return spool is not None and (self.store is None or bool(self.outage) or spool.depth > 0)

    def _to_spool(self, record: ExecutionRecord) -> bool:
        assert self.spool is not None
        kept = self.spool.put(record)
        self._wake.set()
        return kept

    def went_away(self, why: str) -> None:
        """The server database did not answer: records go to the spool from now on, and
        the replay thread probes it until it does."""
        if self.spool is None:
            return
        if not self.outage:
            log.warning("⚠️ The database is unreachable, run records go to the spool: %s", why)
        self.outage = why
        self._wake.set()

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
        status: dict[str, Any] = {
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "write_failures": failures,
        }
        if self.spool is not None:
            status["outage"] = self.outage
            status["spool"] = self.spool.status()
        return status

    def keep_trying(self, opened: Callable[[], None], first_wait: float = 1.0) -> None:
        """While the store is missing for a reason that may pass (a folder not yet
        writable, a database not yet up), try to open it again in a thread, waiting
        1, 2, 4 ... seconds between tries (at most 60, or 5 for a server database);
        `opened` runs once it is open. With a spool, the thread then stays to replay it
        whenever the server was away."""
        if self.opener is None or self._reopening is not None:
            return
        if self.store is not None and self.spool is None:
            return

        def loop() -> None:
            wait, longest = first_wait, (60.0 if self.spool is None else 5.0)
            while self.store is None:
                if self._stop.wait(wait):
                    return
                try:
                    store = self.opener()  # type: ignore[misc]
                except StorageError as exc:
                    self.disabled_reason = str(exc)
                    wait = min(wait * 2, longest)
                    continue
                self.store, self.disabled_reason = store, ""
                log.info("✅ Execution storage initialized successfully")
                opened()
            if self.spool is not None:
                self._replay_loop()

        self._reopening = threading.Thread(target=loop, name="storage-reopen", daemon=True)
        self._reopening.start()

    def _replay_loop(self, longest: float = 5.0) -> None:
        """Probe the server while it is away; replay the spool (and dead processes'
        spools) once it answers, then wait for the next record to be spooled."""
        assert self.spool is not None and self.store is not None
        store, spool, wait = self.store, self.spool, 0.0
        while not self._stop.is_set():
            try:
                if self.outage:
                    ok, message = store.health()
                    if not ok:
                        raise StorageError(message)
                spool.replay(lambda r: store.update(r, wait=True), lambda: store.health()[0])
            except Exception as exc:
                self.went_away(str(exc))
                wait = min(max(wait * 2, 0.5), longest)
                self._stop.wait(wait)
                continue
            if spool.depth == 0 and self.outage:
                # Not cleared while the spool holds records: they must go in first.
                log.info("✅ The database answers again; the spool is replayed")
                self.outage = ""
            wait = 0.0
            if spool.depth == 0:
                self._wake.wait(ORPHAN_CHECK_S)
                self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._reopening is not None:
            self._reopening.join(10)
        if self.spool is not None:
            if self.store is not None and not self.outage and self.spool.depth:
                with contextlib.suppress(Exception):
                    self.spool.replay(lambda r: self.store.update(r, wait=True), lambda: False)  # type: ignore[union-attr]
            self.spool.close()
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
    if config.storage.type != "sqlite":
        where = config.resolve(config.storage.spool_path)
        storage.spool = Spool(where, config.storage.spool_max_size)
    try:
        storage.store = storage.opener()
    except StorageError as exc:
        log.warning("⚠️ Failed to initialize storage: %s", exc)
        if storage.spool is not None:
            log.warning(
                "🔄 Run records go to the spool (%s) until the database answers",
                storage.spool.directory,
            )
        else:
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
