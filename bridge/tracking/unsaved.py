"""Final records that could not be written (a full disk, a database gone away), kept
in memory and written again once the store takes writes, so that a run ends in the
history as what its caller was told, not as a `running` row closed as interrupted.

Bounded in bytes: past the bound the oldest are dropped, counted and logged.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from bridge.model import ExecutionRecord

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024 * 1024
RETRY_EVERY_S = 1.0


def _size(record: ExecutionRecord) -> int:
    return len(record.input) + len(record.output) + len(record.error) + 1024


class UnsavedRecords:
    def __init__(self, write: Callable[[ExecutionRecord], None], max_bytes: int = MAX_BYTES):
        self._write = write
        self._max_bytes = max_bytes
        self._records: deque[ExecutionRecord] = deque()
        self._bytes = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._retrying: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    def __len__(self) -> int:
        return len(self._records)

    def keep(self, record: ExecutionRecord) -> None:
        """Hold `record` for a later write; a thread retries until the store takes it."""
        with self._lock:
            self._records.append(record)
            self._bytes += _size(record)
            while self._bytes > self._max_bytes and len(self._records) > 1:
                self._bytes -= _size(self._records.popleft())
                self.dropped += 1
                log.error(
                    "Dropped the final record of a run that could not be written "
                    "(%d dropped so far): more than %d MB wait for the store",
                    self.dropped,
                    self._max_bytes // (1024 * 1024),
                )
            if self._retrying is None or not self._retrying.is_alive():
                self._retrying = threading.Thread(
                    target=self._retry_loop, name="unsaved-records", daemon=True
                )
                self._retrying.start()

    def flush(self) -> int:
        """Write what is held, oldest first, until one write fails; how many remain."""
        while True:
            with self._lock:
                if not self._records:
                    return 0
                record = self._records[0]
            try:
                self._write(record)
            except Exception as exc:
                log.debug("Unsaved records still wait for the store: %s", exc)
                with self._lock:
                    return len(self._records)
            with self._lock:
                if self._records and self._records[0] is record:
                    self._records.popleft()
                    self._bytes -= _size(record)

    def store_works(self) -> None:
        """A write went through: try the held records now rather than at the next turn."""
        if self._records:
            self._wake.set()

    def _retry_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(RETRY_EVERY_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            left = self.flush()
            if not left:
                log.info("Wrote the final records that had waited for the store")
                return

    def close(self) -> None:
        """One last try at shutdown; what still cannot be written is logged."""
        self._stop.set()
        self._wake.set()
        left = self.flush()
        if left:
            log.error("%d final records could not be written before shutdown", left)
