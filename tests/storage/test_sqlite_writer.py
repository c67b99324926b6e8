"""The group-commit writer on SQLite: a failing write loses only itself; writers queue
on a lock; a run's start row lingers for its final row."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from bridge.storage import group_commit
from bridge.storage.group_commit import WriteFailed
from bridge.storage.sqlite import writer as writer_module
from bridge.storage.sqlite.locks import WriteLock
from bridge.storage.sqlite.writer import SQLiteGroupWriter


def _connect(path):
    return lambda: sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def test_a_failing_write_in_a_batch_loses_only_itself(tmp_path):
    path = str(tmp_path / "w.db")
    setup = _connect(path)()
    setup.execute("CREATE TABLE t (v INTEGER UNIQUE)")
    setup.close()
    errors = []
    writer = SQLiteGroupWriter(_connect(path), lambda action, exc: errors.append(exc))
    gate = threading.Event()
    writer.submit(lambda c: gate.wait(5), wait=False)  # hold the writer so a batch forms
    for v in (1, 2, 1, 3):  # the second 1 breaks the UNIQUE constraint
        writer.submit(lambda c, v=v: c.execute("INSERT INTO t VALUES (?)", (v,)), wait=False)
    gate.set()
    with pytest.raises(WriteFailed):
        writer.submit(lambda c: c.execute("INSERT INTO t VALUES (2)"), wait=True)
    assert writer.submit(
        lambda c: c.execute("SELECT v FROM t ORDER BY v").fetchall(), wait=True
    ) == [(1,), (2,), (3,)]
    assert len(errors) == 1 and "UNIQUE" in str(errors[0])
    writer.close()


def test_a_write_rewritten_in_the_same_batch_is_skipped(tmp_path):
    """A run's start row and its final row in one batch: only the final one is written;
    a write someone waits for is never skipped."""
    path = str(tmp_path / "w.db")
    setup = _connect(path)()
    setup.execute("CREATE TABLE t (k TEXT, v TEXT)")
    setup.close()
    writer = SQLiteGroupWriter(_connect(path), lambda action, exc: None)
    gate = threading.Event()
    writer.submit(lambda c: gate.wait(5), wait=False)  # hold the writer so a batch forms

    def put(key, value):
        return lambda c: c.execute("INSERT INTO t VALUES (?, ?)", (key, value))

    writer.submit(put("a", "running"), wait=False, key="a")
    writer.submit(put("b", "running"), wait=False, key="b")
    writer.submit(put("a", "completed"), wait=False, key="a")
    waiter = threading.Thread(target=lambda: writer.submit(put("c", "first"), wait=True, key="c"))
    waiter.start()
    time.sleep(0.1)
    writer.submit(put("c", "second"), wait=False, key="c")
    gate.set()
    waiter.join(5)
    rows = writer.submit(
        lambda c: c.execute("SELECT k, v FROM t ORDER BY k, v").fetchall(), wait=True
    )
    assert rows == [("a", "completed"), ("b", "running"), ("c", "first"), ("c", "second")]
    writer.close()


def _recording_writer(tmp_path):
    """A writer on a table of (key, value) rows, the list of the writes it ran, in
    order, and put(key, value): the op that writes one."""
    path = str(tmp_path / "w.db")
    setup = _connect(path)()
    setup.execute("CREATE TABLE t (k TEXT, v TEXT)")
    setup.close()
    writer = SQLiteGroupWriter(_connect(path), lambda action, exc: None)
    ran = []

    def put(key, value):
        def op(c):
            ran.append((key, value))
            c.execute("INSERT INTO t VALUES (?, ?)", (key, value))

        return op

    return writer, ran, put


def test_a_commit_leaves_a_young_start_row_for_its_runs_final_row(tmp_path, monkeypatch):
    """Another run's commit does not take a lingering `running` row in its first
    LINGER_S: the run's own final row supersedes it (one write); one that stays alone
    is committed after the linger."""
    monkeypatch.setattr(group_commit, "LINGER_S", 1.0)
    writer, ran, put = _recording_writer(tmp_path)
    writer.submit(put("a", "running"), wait=False, key="a", linger=True)
    writer.submit(put("b", "completed"), wait=True, key="b")
    writer.submit(put("c", "running"), wait=False, key="c", linger=True)
    writer.submit(put("a", "completed"), wait=True, key="a")
    assert ran == [("b", "completed"), ("a", "completed")]
    deadline = time.monotonic() + 5
    while len(ran) < 3:
        assert time.monotonic() < deadline, "the lone running row was never committed"
        time.sleep(0.02)
    assert ran[2] == ("c", "running")
    rows = writer.submit(lambda c: c.execute("SELECT k, v FROM t ORDER BY k").fetchall(), wait=True)
    assert rows == [("a", "completed"), ("b", "completed"), ("c", "running")]
    writer.close()


def _b_commits_with_a_once_a_ends(writer, ran, put):
    """Run "b" ends while run "a" is in flight: b's commit waits for a's final row (not
    for all of GATHER_S) and takes both."""
    waited = []

    def end_b():
        started = time.monotonic()
        writer.submit(put("b", "completed"), wait=True, key="b")
        waited.append(time.monotonic() - started)

    leader = threading.Thread(target=end_b)
    leader.start()
    time.sleep(0.3)
    assert ran == [], "the leader committed before the run in flight ended"
    writer.submit(put("a", "completed"), wait=True, key="a")
    leader.join(5)
    assert ran == [("b", "completed"), ("a", "completed")]
    assert writer.batches == 1
    assert 0.25 < waited[0] < 5.0


def test_a_leader_waits_for_the_runs_in_flight_to_join_its_commit(tmp_path, monkeypatch):
    """A run that ends while another is in flight (its `running` row queued, its final
    row not yet) waits up to GATHER_S for it: the two final rows are one commit. A run
    still in flight at GATHER_S does not hold the commit any longer."""
    monkeypatch.setattr(group_commit, "LINGER_S", 30.0)
    monkeypatch.setattr(group_commit, "GATHER_S", 10.0)
    writer, ran, put = _recording_writer(tmp_path)
    writer.submit(put("a", "running"), wait=False, key="a", linger=True)
    _b_commits_with_a_once_a_ends(writer, ran, put)

    monkeypatch.setattr(group_commit, "GATHER_S", 0.2)
    writer.submit(put("c", "running"), wait=False, key="c", linger=True)
    started = time.monotonic()
    writer.submit(put("d", "completed"), wait=True, key="d")
    assert 0.15 < time.monotonic() - started < 5.0
    assert ran[2:] == [("d", "completed")]
    writer.close()
    assert ran[3:] == [("c", "running")]  # committed at close


def test_a_leader_waits_for_a_run_expected_but_not_queued(tmp_path, monkeypatch):
    """A run announced with `expect` (started, nothing queued for it yet) is gathered as
    a run in flight: another run's commit waits for its final row and takes both. Once
    older than LINGER_S it holds no commit."""
    monkeypatch.setattr(group_commit, "LINGER_S", 30.0)
    monkeypatch.setattr(group_commit, "GATHER_S", 10.0)
    writer, ran, put = _recording_writer(tmp_path)
    writer.expect("a")
    _b_commits_with_a_once_a_ends(writer, ran, put)

    monkeypatch.setattr(group_commit, "LINGER_S", 0.05)
    writer.expect("c")
    time.sleep(0.1)
    started = time.monotonic()
    writer.submit(put("d", "completed"), wait=True, key="d")
    assert time.monotonic() - started < 1.0
    assert ran[2:] == [("d", "completed")]
    writer.close()


def _table(path):
    setup = _connect(path)()
    setup.execute("CREATE TABLE t (v INTEGER)")
    setup.close()


def _count(path):
    conn = _connect(path)()
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()


def test_writers_arriving_during_a_commit_share_the_next_one(tmp_path):
    path = str(tmp_path / "w.db")
    _table(path)
    writer = SQLiteGroupWriter(_connect(path), lambda action, exc: None)
    gate, inside = threading.Event(), threading.Event()

    def slow(c):
        inside.set()
        gate.wait(5)
        c.execute("INSERT INTO t VALUES (0)")

    leader = threading.Thread(target=lambda: writer.submit(slow, wait=True))
    leader.start()
    assert inside.wait(5)
    followers = [
        threading.Thread(
            target=lambda v=v: writer.submit(
                lambda c: c.execute("INSERT INTO t VALUES (?)", (v,)), wait=True
            )
        )
        for v in range(1, 8)
    ]
    for t in followers:
        t.start()
    time.sleep(0.2)
    assert _count(path) == 0  # nothing commits while the first commit is under way
    gate.set()
    for t in [leader, *followers]:
        t.join(5)
    assert _count(path) == 8  # each returned after its write was committed
    assert (writer.batches, writer.writes) == (2, 8)
    writer.close()


def test_writes_queued_while_another_process_commits_join_one_commit(tmp_path):
    """The batch closes when this process gets the write lock, not when its leader
    arrives: everything queued while another process held the lock commits together."""
    path = str(tmp_path / "w.db")
    _table(path)
    writer = SQLiteGroupWriter(
        _connect(path), lambda action, exc: None, WriteLock(tmp_path / "w.lock")
    )
    other = WriteLock(tmp_path / "w.lock")  # another worker process, mid-commit
    with other.held():
        writers = [
            threading.Thread(
                target=lambda v=v: writer.submit(
                    lambda c: c.execute("INSERT INTO t VALUES (?)", (v,)), wait=True
                )
            )
            for v in range(8)
        ]
        for t in writers:
            t.start()
            time.sleep(0.02)  # one by one, as requests arrive
        time.sleep(0.2)
        assert _count(path) == 0
    for t in writers:
        t.join(5)
    assert _count(path) == 8
    assert (writer.batches, writer.writes) == (1, 8)
    writer.close()
    other.close()


def _rows_in_main_file(path, tmp_path):
    """Rows in the database file alone, as if its WAL were lost."""
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    conn = sqlite3.connect(copy)
    try:
        return conn.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        conn.close()
        copy.unlink()


@pytest.mark.parametrize("checkpointer", [True, False])
def test_the_checkpointer_copies_commits_into_the_database_file(
    tmp_path, monkeypatch, checkpointer
):
    monkeypatch.setattr(writer_module, "CHECKPOINT_EVERY_S", 0.05)
    path = tmp_path / "w.db"

    def connect():
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # no commit checkpoints
        return conn

    held = connect()  # open throughout: closing the last connection would checkpoint
    held.execute("CREATE TABLE t (v INTEGER)")
    held.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table is in the file
    writer = SQLiteGroupWriter(
        connect,
        lambda action, exc: None,
        WriteLock(tmp_path / "w.lock"),
        checkpoint=(lambda c: c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
        if checkpointer
        else None,
    )
    for v in range(100):
        writer.submit(lambda c, v=v: c.execute("INSERT INTO t VALUES (?)", (v,)), wait=True)
    deadline = time.monotonic() + (5 if checkpointer else 0.5)
    while _rows_in_main_file(path, tmp_path) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _rows_in_main_file(path, tmp_path) == (100 if checkpointer else 0)
    writer.close()
    held.close()


def test_a_write_nobody_waits_for_is_committed_soon_and_at_close(tmp_path):
    path = str(tmp_path / "w.db")
    _table(path)
    writer = SQLiteGroupWriter(_connect(path), lambda action, exc: None)
    writer.submit(lambda c: c.execute("INSERT INTO t VALUES (1)"), wait=False)
    deadline = time.monotonic() + 5
    while _count(path) < 1:
        assert time.monotonic() < deadline, "the flusher never committed the write"
        time.sleep(0.01)
    gate = threading.Event()
    writer.submit(lambda c: gate.wait(5), wait=False)  # the flusher is busy with this
    writer.submit(lambda c: c.execute("INSERT INTO t VALUES (2)"), wait=False)
    threading.Timer(0.2, gate.set).start()
    writer.close()
    assert _count(path) == 2
    with pytest.raises(WriteFailed, match="closed"):
        writer.submit(lambda c: None, wait=True)


def test_write_lock_lets_one_holder_in_at_a_time(tmp_path):
    locks = [WriteLock(tmp_path / "w.lock") for _ in range(2)]  # as two processes would
    inside, overlaps = [], []

    def hold(lock):
        for _ in range(50):
            with lock.held():
                inside.append(1)
                time.sleep(0.0005)  # hand the GIL over: without the lock, they would overlap
                overlaps.append(len(inside))
                inside.pop()

    threads = [threading.Thread(target=hold, args=(lock,)) for lock in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(overlaps) == 1 and len(overlaps) == 100
    for lock in locks:
        lock.close()
