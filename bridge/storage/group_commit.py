"""Group commit: many requests' writes in one transaction, on one connection per process.

Instead of every request thread opening a transaction of its own (SQLite: fighting for
the write lock and sleeping in its busy handler; a server database: a round trip and a
WAL flush each), writes queue here; the first waiting thread to find no commit under
way takes all that are queued, runs them in one transaction, commits once, and wakes
the others whose writes it took (see GroupCommitWriter). Each backend's subclass says
how it runs a transaction (`_commit`): sqlite/writer.py, postgresql/writer.py,
mysql/writer.py.

The SQLite writers of several processes (gunicorn workers) take turns through a file
lock (sqlite.locks.WriteLock), so a waiting writer wakes the moment the lock is free
instead of sleeping in SQLite's busy handler (1, 2, 5, 10 ... 100 ms naps: the cause of
a slow tail). SQLite's own locking still decides; the file lock only orders the
writers that use it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bridge.storage.tickets import Op, Ticket, in_flight, per_key, superseded_dropped

MAX_BATCH = 256
LINGER_S = 0.01  # how long a write nobody waits for is held for a commit to join
GATHER_S = 0.001  # how long a leader waits for the runs in flight to end, at most
STALE_S = 30.0  # a connection idle this long is checked before a commit
MAX_EXPECTED = 256  # runs expected at most before the ones past LINGER_S are pruned


class WriteFailed(Exception):
    """A queued write failed; carries the database's error."""


class WriteRefused(WriteFailed):
    """The database refused the write's own values; the connection and the other
    writes of the batch are fine."""


class GroupCommitWriter:
    """Commits the writes of many threads in one transaction (group commit).

    A thread that waits for its write and finds no commit under way leads one: it takes
    every write queued so far, commits them in one transaction on the shared connection,
    and wakes the threads whose writes it took. Threads arriving meanwhile queue; the
    first of them leads the next commit. A lone request so commits in its own thread,
    with no hand-off to another, and a busy process commits many requests at once.
    Writes nobody waits for ride with the next commit, or a flusher thread commits them
    after LINGER_S. One that `linger`s (a run's `running` row, which its final row will
    rewrite) is left out of other commits for its first LINGER_S: a run that ends by
    then is written once, its final row superseding it in the same commit (an insert,
    not an insert and then an update of every index). And a leader that finds such runs
    in flight waits up to GATHER_S for them to end (`_gather`): under load a commit so
    takes several runs, where it took one or two (a commit's own cost, a round trip or a
    file lock and a WAL write, is paid once for them all).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        on_error: Callable[[str, BaseException], None],
        lock: Any = None,
        before_commit: Callable[[Any], Any] | None = None,
    ) -> None:
        self._connect = connect
        # Called with the write lock held before each commit, with the connection; it
        # returns the connection to commit on (another one if the file was replaced).
        self._before_commit = before_commit
        self.generation = 0  # +1 each time the connection is replaced
        self._stop = threading.Event()
        self._on_error = on_error
        self.lock = lock or _InProcess()
        self._mutex = threading.Lock()
        self._turn = threading.Condition(self._mutex)  # waiting writers: a commit ended
        self._unwaited_queued = threading.Condition(self._mutex)  # the flusher
        self._queue: list[Ticket] = []
        self._unwaited = 0  # queued tickets nobody waits for
        self._committing = False
        self._conn: Any = None
        self._used = time.monotonic()
        self._flusher: threading.Thread | None = None
        self._flusher_idle = False
        self._closed = False
        self._arrived = threading.Condition(self._mutex)  # a leader gathering runs
        self._gathering = False
        # Runs in flight whose first write is still to come (expect), by key: when they
        # started (monotonic).
        self._expected: dict[str, float] = {}
        self.batches = 0  # transactions committed, and the writes they held
        self.writes = 0
        # The error of the latest write if it failed, None once a write succeeds again:
        # health reports a full disk while it lasts, and recovers when space is freed.
        self.failing: BaseException | None = None

    @property
    def alive(self) -> bool:
        """Whether the write connection is open."""
        return self._conn is not None

    def connect(self) -> None:
        """Open the connection now instead of at the first commit (before any commit
        can run: the store calls it as it opens)."""
        if self._conn is None:
            self._conn = self._connect()

    def expect(self, key: str) -> None:
        """A run has started whose first write (its final row, or its `running` row if
        it lasts) is to come with `key`: a leader gathers it as a run in flight for its
        first LINGER_S (see _gather). Forgotten at its first write, or once older."""
        now = time.monotonic()
        expected = self._expected
        if len(expected) >= MAX_EXPECTED:  # runs whose write never came here: prune
            with self._mutex:
                for k, at in list(expected.items()):
                    if at <= now - LINGER_S:
                        expected.pop(k, None)
        expected[key] = now

    def submit(
        self,
        op: Op,
        *,
        wait: bool,
        timeout: float = 30.0,
        bulk: bool = False,
        key: str | None = None,
        linger: bool = False,
    ) -> Any:
        """Queue `op`; with `wait`, block until it is committed and return its result.

        A `bulk` op (a cleanup batch, say) gets a transaction of its own, led by its own
        thread, so a webhook never commits or waits for someone else's bulk op.

        Ops with the same `key` write the same row, each whole: when several are in one
        batch, only the last runs (a fast run's `running` row and its final state are
        one insert, not an insert and an update). Ops someone waits for always run. An
        op that may `linger` waits LINGER_S for such a later op before it is committed."""
        ticket = Ticket(op, wait, bulk, key, linger)
        with self._mutex:
            if self._closed:
                raise WriteFailed("the store is closed")
            self._queue.append(ticket)
            if key is not None:
                self._expected.pop(key, None)
            if self._gathering:
                self._arrived.notify()
            if not wait:
                self._unwaited += 1
                if self._flusher is None or not self._flusher.is_alive():
                    self._flusher = _started(self._flush_loop, "store-flusher")
                elif self._flusher_idle:
                    self._flusher_idle = False
                    self._unwaited_queued.notify()
                return None
            lead = not self._committing
            if lead:
                self._committing = True
        if not lead:
            lead = self._await(ticket, timeout)
        if lead:
            self._gather()
            self._lead(lambda: self._take(ticket))
        if ticket.error is not None:
            failed = WriteRefused if ticket.refused else WriteFailed
            raise failed(str(ticket.error)) from ticket.error
        return ticket.result

    def _gather(self) -> None:
        """Before leading: wait up to GATHER_S for the runs in flight (expected, or a
        young lingering `running` row whose final row is not queued yet) to queue their
        final rows, so that they join this commit instead of each leading one of their
        own."""
        if GATHER_S <= 0:
            return
        with self._mutex:
            running = self._in_flight()
            if not running:
                return
            deadline = time.monotonic() + GATHER_S
            self._gathering = True
            try:
                while running and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._arrived.wait(left)
                    running &= self._in_flight()
            finally:
                self._gathering = False

    def _in_flight(self) -> set[str]:
        """Under the mutex: the keys of the runs in flight, started in the last
        LINGER_S."""
        young = time.monotonic() - LINGER_S
        running = in_flight(self._queue, young)
        running.update(k for k, at in list(self._expected.items()) if at > young)
        return running

    def _await(self, ticket: Ticket, timeout: float) -> bool:
        """Sleep until the ticket is committed (False) or handed the next commit to
        lead (True); WriteFailed after `timeout` if it was never taken."""
        assert ticket.woken is not None
        if not ticket.woken.acquire(timeout=timeout):
            with self._mutex:
                if not ticket.finished and not ticket.lead:
                    if ticket in self._queue:  # never taken: it will not run either
                        self._queue.remove(ticket)
                    raise WriteFailed(f"write not committed within {timeout:g}s")
            ticket.woken.acquire()  # finished or handed the lead meanwhile: released
        return not ticket.finished

    def _take(self, own: Ticket | None) -> list[list[Ticket]]:
        """Under the mutex: what the next commit runs, as transactions. Small writes go
        together, but a leader (`own`) leaves a young lingering op alone with its key;
        a bulk op gets its own, run by its owner (or, if nobody waits for it, by the
        flusher)."""
        small: list[Ticket] = []
        bulk: list[Ticket] = []
        rest: list[Ticket] = []
        young = time.monotonic() - LINGER_S if own is not None else float("inf")
        keys: dict[str | None, int] | None = None  # counted when needed
        for t in self._queue:
            if t.linger and t.at > young:
                if keys is None:
                    keys = per_key(self._queue)
                (small if keys[t.key] > 1 else rest).append(t)
            elif not t.bulk:
                (small if len(small) < MAX_BATCH or t is own else rest).append(t)
            elif t is own or (own is None and not t.wait and not bulk):
                bulk.append(t)
            else:
                rest.append(t)
        self._queue = rest
        self._unwaited = sum(1 for t in rest if not t.wait)
        return ([small] if small else []) + [[t] for t in bulk]

    def _take_all(self) -> list[list[Ticket]]:
        """Under the mutex, at close: everything queued."""
        small = [t for t in self._queue if not t.bulk]
        groups = ([small] if small else []) + [[t] for t in self._queue if t.bulk]
        self._queue, self._unwaited = [], 0
        return groups

    def _lead(self, take: Callable[[], list[list[Ticket]]]) -> None:
        """Take the write lock, then the writes queued by then (`take`, under the mutex),
        commit them on the shared connection, and let the next writer lead. Taking them
        only once the lock is held lets the writes queued while another process commits
        join this commit instead of waiting for the next."""
        groups: list[list[Ticket]] = []
        try:
            with self.lock.held():
                with self._mutex:
                    groups = take()
                conn = self._conn
                if groups and self._before_commit is not None:
                    checked = self._before_commit(conn)
                    if checked is not conn:
                        conn, self.generation = checked, self.generation + 1
                for group in groups:
                    conn = self._run(conn, superseded_dropped(group))
                self._conn = conn
        finally:
            with self._mutex:
                self._committing = False
                for group in groups:
                    for ticket in group:
                        if not ticket.finished:  # skipped, or the leader was interrupted
                            ticket.finished = True
                        ticket.wake()
                # The next commit is led by the first waiting writer queued meanwhile.
                for ticket in self._queue:
                    if ticket.wait and not ticket.lead:
                        ticket.lead = self._committing = True
                        ticket.wake()
                        break
                self._turn.notify_all()  # close() waits for the commit to end

    def usable(self, conn: Any) -> bool:
        """Whether a connection still answers (a failed one is closed and replaced)."""
        return is_usable(conn)

    def _run(self, conn: Any, batch: list[Ticket]) -> Any:
        """Commit one transaction; returns the connection to use next. A connection idle
        for a while is checked first: a server database may have been restarted."""
        if conn is not None and time.monotonic() - self._used > STALE_S and not self.usable(conn):
            with contextlib.suppress(Exception):
                conn.close()
            conn = None
        self._used = time.monotonic()
        try:
            if conn is None:
                conn = self._connect()
            self._commit(conn, batch)
            self.batches += 1
            self.writes += len(batch)
        except BaseException as exc:
            for ticket in batch:
                ticket.error = ticket.error or exc
            with contextlib.suppress(Exception):
                if conn is not None and conn.in_transaction:
                    conn.execute("ROLLBACK")
            if conn is not None and not self.usable(conn):
                with contextlib.suppress(Exception):
                    conn.close()
                conn = None
        for ticket in batch:
            self.failing = ticket.error
            if ticket.error is not None and not ticket.wait:
                self._on_error("write a record", ticket.error)
            ticket.finished = True
        return conn

    def _commit(self, conn: Any, batch: list[Ticket]) -> None:
        """Run the batch's ops in one transaction and commit it; an op that fails sets
        its ticket's error (only its own write is lost); a lost connection raises."""
        raise NotImplementedError

    def _threads(self) -> list[threading.Thread | None]:
        """The threads close() waits for."""
        return [self._flusher]

    def _flush_loop(self) -> None:
        """Commit writes nobody waits for when no waiting writer took them in LINGER_S."""
        while True:
            with self._mutex:
                while not self._unwaited and not self._closed:
                    self._flusher_idle = True
                    self._unwaited_queued.wait()
                self._flusher_idle = False
                if self._closed:
                    return
            time.sleep(LINGER_S)
            with self._mutex:
                if self._committing or not self._unwaited:
                    continue  # a leader is at it: look again after another linger
                self._committing = True
            self._lead(lambda: self._take(None))

    def close(self, timeout: float = 5.0) -> None:
        """Commit what is queued, then close the connection; later writes fail."""
        deadline = time.monotonic() + timeout
        lead = False
        with self._mutex:
            self._closed = True
            self._unwaited_queued.notify_all()
            while self._committing and time.monotonic() < deadline:
                self._turn.wait(max(0.0, deadline - time.monotonic()))
            if not self._committing:  # else a leader is stuck: the connection is its
                self._committing = lead = True
        if lead:
            self._lead(self._take_all)
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
        self._stop.set()
        for thread in self._threads():
            if thread is not None:
                thread.join(timeout)
        self.lock.close()


class _InProcess:
    """The lock of writers that only this process's threads share (the database
    orders the processes itself)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._mutex:
            yield

    def close(self) -> None:
        pass


def _started(target: Callable[[], None], name: str) -> threading.Thread:
    """A daemon thread, started (once per process: threads do not survive a fork)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def is_usable(conn: Any) -> bool:
    """Whether a connection still answers (a failed one is closed and replaced)."""
    try:
        conn.execute("SELECT 1")
        return True
    except Exception:
        return False
