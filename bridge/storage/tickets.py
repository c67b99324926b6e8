"""What the group-commit writer (storage/group_commit.py) queues: a Ticket per write,
and how a queue of them reads: which runs are still in flight, which writes a later
write of the same row makes needless."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Op = Callable[[Any], Any]


class Ticket:
    """One queued write: its op, who waits for it, and how it ended."""

    __slots__ = (
        "at",
        "bulk",
        "error",
        "finished",
        "key",
        "lead",
        "linger",
        "op",
        "refused",
        "result",
        "wait",
        "woken",
    )

    def __init__(
        self, op: Op, wait: bool, bulk: bool = False, key: str | None = None, linger: bool = False
    ) -> None:
        self.op = op
        self.wait = wait
        self.bulk = bulk
        self.key = key
        self.linger = linger and key is not None and not wait and not bulk
        self.at = time.monotonic()
        self.finished = False
        self.lead = False  # handed the next commit to lead
        self.error: BaseException | None = None
        self.refused = False  # the error is the database refusing this write's values
        self.result: Any = None
        # Its waiter sleeps on this lock, released when the write is committed or the
        # waiter is to lead: a commit wakes only the threads it concerns.
        self.woken: threading.Lock | None = None
        if wait:
            self.woken = threading.Lock()
            self.woken.acquire()

    def wake(self) -> None:
        if self.woken is not None and self.woken.locked():
            self.woken.release()


def per_key(queue: list[Ticket]) -> dict[str | None, int]:
    """How many queued ops write each key."""
    keys: dict[str | None, int] = {}
    for t in queue:
        keys[t.key] = keys.get(t.key, 0) + 1
    return keys


def in_flight(queue: list[Ticket], young: float) -> set[str]:
    """The keys of the lingering ops queued after `young` (a monotonic time) and alone
    with their key: runs that started lately and have not ended yet."""
    keys = per_key(queue)
    return {
        t.key for t in queue if t.key is not None and t.linger and t.at > young and keys[t.key] == 1
    }


def superseded_dropped(batch: list[Ticket]) -> list[Ticket]:
    """The batch without the keyed ops that a later op on the same key rewrites whole."""
    last: dict[str, int] = {}
    for i, ticket in enumerate(batch):
        if ticket.key is not None:
            last[ticket.key] = i
    if len(last) == sum(1 for t in batch if t.key is not None):
        return batch
    return [t for i, t in enumerate(batch) if t.key is None or t.wait or last[t.key] == i]
