"""How many bytes of large request bodies one process holds at once.

A 1 MB JSON body of small objects is about 10 MB of Python objects once parsed, held
until the plugin's answer is sent; eight of them arriving together on one worker's
threads cost it 80 MB more. Large bodies (from `EXEMPT_BELOW` up) therefore wait here,
before they are parsed, until the bytes of the large bodies in flight leave room for
theirs (`server.max_inflight_body_size` per process; one body is always let through
alone). Small bodies never wait. A body with Content-Length is counted before it is
read; a chunked one once read (`count`), whatever its framing, before it is parsed.
"""

from __future__ import annotations

import contextlib
import contextvars
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
        # The hold a chunked body is counted in once read: [bytes held, wait seconds].
        self._open: contextvars.ContextVar[list[float] | None] = contextvars.ContextVar(
            "body_budget_hold", default=None
        )

    @contextlib.contextmanager
    def hold(self, size: int | None, wait: float) -> Iterator[None]:
        """Hold `size` bytes of the budget for the block; over `wait` seconds of waiting,
        503 with Retry-After. A body of unknown size (chunked) is counted by `count`
        once read, inside the block, and held until the block ends."""
        if not self.limit or (size is not None and size < EXEMPT_BELOW):
            yield
            return
        held = [0, wait]
        token = self._open.set(held) if size is None else None
        try:
            if size is not None:
                held[0] = self._take(size, wait)
            yield
        finally:
            if token is not None:
                self._open.reset(token)
            if held[0]:
                self._give(int(held[0]))

    def count(self, size: int) -> None:
        """Count a body read without a known size (chunked) in the enclosing `hold`,
        waiting for room as one with Content-Length would have; outside a hold, or for
        a small body, nothing."""
        held = self._open.get()
        if held is None or held[0] or size < EXEMPT_BELOW:
            return
        held[0] = self._take(size, held[1])

    def _take(self, size: int, wait: float) -> int:
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
        return want

    def _give(self, size: int) -> None:
        with self._freed:
            self._used -= size
            self._freed.notify_all()

    def snapshot(self) -> dict[str, int]:
        with self._freed:
            return {
                "limit": self.limit,
                "in_use": self._used,
                "waits": self.waits,
                "rejections": self.rejections,
            }
