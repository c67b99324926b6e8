"""How many of a worker's threads the webhooks of one plugin may hold.

A webhook request holds its thread while its plugin runs, and while it waits for a
duplicate delivery's run or for room in the body budget: a flood of calls to one
slow plugin filled every thread, and nothing else was answered. So one plugin's
requests hold at most three quarters of a worker's threads and never the last two,
and webhooks together never the last one: while one plugin hangs, another plugin,
/health and the management API still find a thread. A request past that waits,
holding no thread, first come first served, and is refused (429) after `wait`
seconds. Threads admit requests; the event loop releases them and refuses.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Generic, TypeVar

T = TypeVar("T")


class ThreadShares(Generic[T]):
    def __init__(self, threads: int, wait: float) -> None:
        self.per_plugin = max(1, min(threads * 3 // 4, threads - 2))
        self.all_plugins = max(1, threads - 1)
        self.wait = wait
        self.busy: Counter[str] = Counter()
        self.total = 0
        self.waiting: deque[tuple[float, str, T]] = deque()
        self._lock = threading.Lock()

    def _has_room(self, plugin: str) -> bool:
        return self.busy[plugin] < self.per_plugin and self.total < self.all_plugins

    def _take(self, plugin: str) -> None:
        self.busy[plugin] += 1
        self.total += 1

    def admit(self, plugin: str, request: T, now: float, may_wait: bool = True) -> bool:
        """Whether `request`, for `plugin`, may take a thread now; if not, it waits
        (when it `may_wait`)."""
        with self._lock:
            if self._has_room(plugin):
                self._take(plugin)
                return True
            if may_wait:
                self.waiting.append((now + self.wait, plugin, request))
            return False

    def release(self, plugin: str) -> list[T]:
        """A request for `plugin` is done with its thread: the waiting requests that
        may take one now, in the order they came."""
        with self._lock:
            self.busy[plugin] -= 1
            if not self.busy[plugin]:
                del self.busy[plugin]
            self.total -= 1
            admitted = []
            for entry in list(self.waiting):
                if self.total >= self.all_plugins:
                    break
                if self._has_room(entry[1]):
                    self.waiting.remove(entry)
                    self._take(entry[1])
                    admitted.append(entry[2])
            return admitted

    def expired(self, now: float) -> list[tuple[str, T]]:
        """The waiting requests past their wait, taken out."""
        out = []
        with self._lock:
            while self.waiting and self.waiting[0][0] <= now:
                _, plugin, request = self.waiting.popleft()
                out.append((plugin, request))
        return out
