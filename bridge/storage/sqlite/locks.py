"""File locks beside the database: the writers' turn (WriteLock) and the scheduler's
leader (FileLeaderLock). The kernel drops a dead process's flock, so neither outlives
the process that holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class WriteLock:
    """An exclusive lock on a file beside the database, shared by this database's writers
    in every process; a thread in this process waits on a mutex first."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:
            fd = self._file()
            if fd is None:
                yield
                return
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _file(self) -> int | None:
        if self.path is None:
            return None
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                self._pid = os.getpid()
            except OSError as exc:
                log.warning(
                    "Write lock %s unavailable (%s); SQLite's busy timeout orders writers instead",
                    self.path,
                    exc,
                )
                self.path = None
                return None
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
