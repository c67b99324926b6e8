"""Runs whose `running` row is not written yet: most runs end within milliseconds, and
then their final row is their only write.

A run's `running` row is what shows it in the history while it runs, and what stale-run
recovery closes if its process dies. A webhook answers only after its final row is
committed, so a run that ends before anyone could see it running needs no such row.
`Starts` keeps each started run for DELAY_S; a thread writes the `running` row of one
still going then. A run that ends first takes itself out (`take`) and is written once,
with its final state. This is what the group commit did with a lingering `running` row
(storage/group_commit.py), without building the row, queueing it and dropping it again
for every run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bridge.model import Run
from bridge.storage.group_commit import LINGER_S

log = logging.getLogger(__name__)

DELAY_S = LINGER_S  # how long a run goes without a row of its own, at least
QUIET_S = 1.0  # how long without a run before the thread waits to be woken


class Starts:
    """The runs started in this process and not written yet, oldest first."""

    def __init__(self, write: Callable[[Run, bool], None], delay: float = DELAY_S) -> None:
        self._write = write  # the run's `running` row; waited for its commit or not
        self._delay = delay
        self._lock = threading.Lock()
        self._due = threading.Condition(self._lock)
        self._runs: dict[str, tuple[Run, float]] = {}
        self._thread: threading.Thread | None = None
        self._added = False  # a run was added since the thread last looked
        self._asleep = False  # the thread waits for a notify, not for a time

    def add(self, run: Run) -> None:
        with self._lock:
            self._runs[run.execution_id] = (run, time.monotonic())
            self._added = True
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(target=self._loop, name="run-starts", daemon=True)
                self._thread.start()
            elif self._asleep:  # else it looks within DELAY_S anyway
                self._asleep = False
                self._due.notify()

    def take(self, execution_id: str) -> None:
        """The run ended: its `running` row is never written now. One that was is queued
        before this returns, so the final row queued after it comes later."""
        with self._lock:
            self._runs.pop(execution_id, None)

    def flush(self) -> None:
        """Write every waiting run's `running` row now, committed (at shutdown, before
        the open rows are read to be canceled)."""
        with self._lock:
            runs = [run for run, _ in self._runs.values()]
            self._runs.clear()
            for run in runs:
                self._write_one(run, wait=True)

    def __len__(self) -> int:
        return len(self._runs)

    def _loop(self) -> None:
        quiet = 0.0  # seconds in a row the thread looked and found no run added
        with self._lock:
            while True:
                if not self._runs:
                    # A run added while runs keep coming is seen at the next look,
                    # within DELAY_S: no wake-up for each one (a run that ends at once,
                    # most of them, costs no thread switch). After a quiet second the
                    # thread sleeps until a run comes.
                    quiet = 0.0 if self._added else quiet + self._delay
                    self._added = False
                    if quiet < QUIET_S:
                        self._due.wait(self._delay)
                    else:
                        self._asleep = True
                        while self._asleep:
                            self._due.wait()
                    continue
                run, started = next(iter(self._runs.values()))
                wait = started + self._delay - time.monotonic()
                if wait > 0:
                    self._due.wait(wait)
                    continue
                del self._runs[run.execution_id]
                # Under the lock: `take` returns only once this row is queued.
                self._write_one(run, wait=False)

    def _write_one(self, run: Run, wait: bool) -> None:
        try:
            self._write(run, wait)
        except Exception:  # the final row still comes; the run must not hang on this
            log.exception("The running row of execution %s was not written", run.execution_id)
