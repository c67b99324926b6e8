"""The spool: run records kept in a local SQLite file while the server database is
away, replayed into it in order once it answers again.

Each process writes a file of its own (`<host>-<pid>.db` under `storage.spool_path`)
and holds an exclusive flock on its `.lock` beside it while it lives: one writer per
file, no locking between workers. A file whose lock can be taken belongs to a process
that died (kill -9, a crash); any process adopts it, replays it and deletes it.

A replay writes each record with the store's upsert (`update`), so a record written
twice (a replay cut off between the server's commit and the spool's delete) is still
one row: in order and exactly once. Bounded in bytes by `storage.spool_max_size`: past
it a record is not kept, counted, and one line per minute says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, fields
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from bridge.model import AttemptRecord, ExecutionRecord, Status

log = logging.getLogger("bridge.tracking")

BATCH = 200
FULL_LOG_EVERY_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    size INTEGER NOT NULL,
    record TEXT NOT NULL
)
"""

_TIMES = tuple(f.name for f in fields(ExecutionRecord) if "datetime" in str(f.type))


def encode(record: ExecutionRecord) -> str:
    """The record as JSON text, attempts and times included."""
    data = asdict(record)
    for name in _TIMES:
        if data[name] is not None:
            data[name] = data[name].isoformat()
    data["status"] = record.status.value
    for attempt in data["attempt_records"]:
        attempt["start_time"] = attempt["start_time"].isoformat()
        attempt["end_time"] = attempt["end_time"].isoformat()
        attempt["status"] = attempt["status"].value
    return json.dumps(data, ensure_ascii=False)


def decode(text: str) -> ExecutionRecord:
    data: dict[str, Any] = json.loads(text)
    for name in _TIMES:
        if data[name] is not None:
            data[name] = datetime.fromisoformat(data[name])
    data["status"] = Status(data["status"])
    data["attempt_records"] = [
        AttemptRecord(
            **{
                **a,
                "start_time": datetime.fromisoformat(a["start_time"]),
                "end_time": datetime.fromisoformat(a["end_time"]),
                "status": Status(a["status"]),
            }
        )
        for a in data["attempt_records"]
    ]
    return ExecutionRecord(**data)


def _connect(path: Path) -> sqlite3.Connection:
    """Every spool connection's settings: WAL, and a commit that reaches the disk
    before the webhook is answered (synchronous FULL)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(SCHEMA)
    return conn


def _try_lock(path: Path) -> TextIO | None:
    """The exclusive flock on `path` (its open file), or None if a live process holds it."""
    handle = open(path, "a")  # noqa: SIM115 - held for as long as the file is owned
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


class Spool:
    """This process's spool file, and the files of processes that died."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.dropped = 0
        self.replayed = 0
        self.rejected = 0
        self._lock = threading.Lock()
        self._pid = 0
        self._conn: sqlite3.Connection | None = None
        self._owner: TextIO | None = None
        self._depth = 0
        self._bytes = 0
        self._oldest: float | None = None
        self._last_full_log = 0.0
        self.drop_listeners: list[Callable[[], None]] = []  # called per record not kept

    @property
    def path(self) -> Path:
        return self.directory / f"{socket.gethostname()}-{os.getpid()}.db"

    def _own(self) -> sqlite3.Connection:
        """This process's file, opened on first use (and again after a fork)."""
        if self._conn is None or self._pid != os.getpid():
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.path
            owner = _try_lock(path.with_suffix(".lock"))
            if owner is None:
                raise OSError(f"spool file {path} is held by another process")
            self._conn, self._owner, self._pid = _connect(path), owner, os.getpid()
            row = self._conn.execute("SELECT count(*), sum(size), min(at) FROM spool").fetchone()
            self._depth, self._bytes, self._oldest = row[0], row[1] or 0, row[2]
        return self._conn

    # -- writing -----------------------------------------------------------
    def put(self, record: ExecutionRecord) -> bool:
        """Keep `record`, committed to disk; False (counted) when the spool is full or
        cannot be written."""
        text = encode(record)
        size = len(text.encode("utf-8"))
        with self._lock:
            if self._bytes + size > self.max_bytes:
                self._full(f"storage.spool_max_size ({self.max_bytes} bytes) reached")
                return False
            now = time.time()
            try:
                self._own().execute(
                    "INSERT INTO spool (at, size, record) VALUES (?, ?, ?)", (now, size, text)
                )
            except (OSError, sqlite3.Error) as exc:
                self._full(f"the spool file cannot be written ({exc})")
                return False
            self._depth += 1
            self._bytes += size
            if self._oldest is None:
                self._oldest = now
        return True

    def _full(self, why: str) -> None:
        self.dropped += 1
        for listener in self.drop_listeners:
            listener()
        now = time.monotonic()
        if now - self._last_full_log >= FULL_LOG_EVERY_S or self.dropped == 1:
            self._last_full_log = now
            log.error(
                "❌ Storage spool cannot keep run records: %s; %d records lost so far "
                "while the database is unreachable",
                why,
                self.dropped,
            )

    # -- replaying ---------------------------------------------------------
    @property
    def depth(self) -> int:
        return self._depth

    def status(self) -> dict[str, Any]:
        with self._lock:
            oldest = self._oldest
            return {
                "depth": self._depth,
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
                "oldest_age_seconds": round(max(time.time() - oldest, 0.0), 3)
                if oldest is not None
                else None,
                "dropped": self.dropped,
                "replayed": self.replayed,
                "rejected": self.rejected,
                "path": str(self.directory),
            }

    def replay(
        self, write: Callable[[ExecutionRecord], None], server_up: Callable[[], bool]
    ) -> int:
        """Write this process's records, then dead processes' files, oldest first, until
        all are written (their count) or a write fails while the server is down (raised).
        A record the server refuses while it answers (it would never go in) is logged,
        counted as rejected and dropped, so that it does not hold up the others."""
        done = 0
        if self._conn is not None and self._pid == os.getpid():
            done += self._replay_file(self._conn, write, server_up, own=True)
        for conn, path, owner in self._orphans():
            with contextlib.closing(conn), owner:
                done += self._replay_file(conn, write, server_up, own=False)
                for leftover in (path, path.with_suffix(".lock")):
                    leftover.unlink(missing_ok=True)
                log.info("Replayed the spool of a process that stopped: %s", path.name)
        return done

    def _orphans(self) -> Iterator[tuple[sqlite3.Connection, Path, TextIO]]:
        if not self.directory.is_dir():
            return
        mine = self.path
        for path in sorted(self.directory.glob("*.db")):
            if path == mine:
                continue
            owner = _try_lock(path.with_suffix(".lock"))
            if owner is None:
                continue  # a live process's file
            if not path.exists():  # another process adopted and finished it meanwhile
                owner.close()
                path.with_suffix(".lock").unlink(missing_ok=True)
                continue
            yield _connect(path), path, owner

    def _replay_file(
        self,
        conn: sqlite3.Connection,
        write: Callable[[ExecutionRecord], None],
        server_up: Callable[[], bool],
        own: bool,
    ) -> int:
        done = 0
        while True:
            with self._lock:
                rows = conn.execute(
                    "SELECT seq, size, record FROM spool ORDER BY seq LIMIT ?", (BATCH,)
                ).fetchall()
            if not rows:
                return done
            for seq, size, text in rows:
                try:
                    write(decode(text))
                except Exception as exc:
                    if not server_up():
                        raise
                    self.rejected += 1
                    log.error("❌ The database refused a spooled run record, dropped: %s", exc)
                else:
                    done += 1
                    self.replayed += 1
                with self._lock:
                    conn.execute("DELETE FROM spool WHERE seq = ?", (seq,))
                    if own:
                        self._depth -= 1
                        self._bytes -= size
                        row = conn.execute("SELECT at FROM spool ORDER BY seq LIMIT 1").fetchone()
                        self._oldest = row[0] if row else None

    def host_backlog(self) -> tuple[int, float | None]:
        """What waits in every spool file of this host (live processes' and dead
        ones'): records, and when the oldest was kept (None when there is none). Read
        from the files, so that any worker answers for all of them."""
        depth, oldest = 0, None
        if not self.directory.is_dir():
            return depth, oldest
        for path in self.directory.glob("*.db"):
            try:
                with contextlib.closing(sqlite3.connect(path, timeout=1)) as conn:
                    n, at = conn.execute("SELECT count(*), min(at) FROM spool").fetchone()
            except sqlite3.Error:
                continue  # just deleted after its replay, or not a spool yet
            depth += n
            if at is not None and (oldest is None or at < oldest):
                oldest = at
        return depth, oldest

    def close(self) -> None:
        """Closes this process's file; deleted when it holds nothing."""
        with self._lock:
            if self._conn is None or self._pid != os.getpid():
                return
            self._conn.close()
            self._conn = None
            if self._depth == 0:
                for leftover in (self.path, self.path.with_suffix(".lock")):
                    leftover.unlink(missing_ok=True)
            if self._owner is not None:
                self._owner.close()
                self._owner = None
