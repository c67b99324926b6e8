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
from typing import IO

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


class FileLeaderLock:
    """The leader's lock (ExecutionStore.leader_lock): an exclusive flock on a file
    beside the database, which holds the leader's pid. Taken without waiting."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._file is not None:
            if self._still_ours():
                return True
            # The file was deleted or replaced while held: a standby's open() makes a
            # new one and locks it. Leading on means locking the file now at the path.
            self.release()
        handle = open(self.path, "a+")  # noqa: SIM115 - held open while leading
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return True

    def _still_ours(self) -> bool:
        assert self._file is not None
        try:
            at_path, held = os.stat(self.path), os.fstat(self._file.fileno())
        except OSError:
            return False
        return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        self._file.close()
        self._file = None
