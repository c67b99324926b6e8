"""How many bytes of large request bodies one process holds at once.

A 1 MB JSON body of small objects is about 10 MB of Python objects once parsed, held
until the plugin's answer is sent; eight of them arriving together on one worker's
threads cost it 80 MB more. Large bodies (from `EXEMPT_BELOW` up) therefore wait here,
before they are read, until the bytes of the large bodies in flight leave room for
theirs (`server.max_inflight_body_size` per process; one body is always let through
alone). Small bodies never wait.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from bridge.errors import RunnerSaturated

EXEMPT_BELOW = 256 * 1024


class BodyBudget:
    def __init__(self, limit: int, retry_after: int) -> None:
        self.limit = limit
        self.retry_after = retry_after
        self._used = 0
        self._freed = threading.Condition()
        self.waits = 0
        self.rejections = 0

    @contextlib.contextmanager
    def hold(self, size: int | None, wait: float) -> Iterator[None]:
        """Hold `size` bytes of the budget for the block; over `wait` seconds of waiting,
        503 with Retry-After. Bodies of unknown size (chunked) are not counted: their
        size is bounded by server.max_body_size as they are read."""
        if not self.limit or size is None or size < EXEMPT_BELOW:
            yield
            return
        want = min(size, self.limit)
        deadline = time.monotonic() + wait
        with self._freed:
            if self._used + want > self.limit:
                self.waits += 1
            while self._used + want > self.limit:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.rejections += 1
                    raise RunnerSaturated(self.retry_after, what="request body budget")
                self._freed.wait(remaining)
            self._used += want
        try:
            yield
        finally:
            with self._freed:
                self._used -= want
                self._freed.notify_all()

    def snapshot(self) -> dict[str, int]:
        with self._freed:
            return {
                "limit": self.limit,
                "in_use": self._used,
                "waits": self.waits,
                "rejections": self.rejections,
            }
