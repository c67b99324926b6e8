"""The durability floor: bare Flask plus only what a tracked webhook cannot do without.

Each request's call is handed to a pool thread and waited for with a timeout (the
bridge's own hand-off: the request thread must be free to answer 504), and the answer
goes out only after one row for the run is committed to SQLite (WAL, a group commit:
the requests that queue while one commits share the next commit), as the bridge's
durability asks (kill -9 loses no answered run). Nothing else: no registry, no
tracking record beyond seven columns and a primary key, no metrics, no events.

What this server costs over bare Flask is what any implementation of those two
requirements costs in this process model; the bridge's targets are read against it.
Served by gunicorn with the bridge's own gunicorn.conf.py, as bench/bare.py.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from typing import Any

from flask import Flask, request

from bridge.config import load
from bridge.runner import DaemonPool

_ROW = "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?)"


class _Ticket:
    __slots__ = ("done", "error", "lead", "row")

    def __init__(self, row: tuple[Any, ...]) -> None:
        self.row, self.lead = row, False
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()


class GroupCommit:
    """One connection per process. A writer that finds no commit under way leads: it
    commits what is queued (its own row among it), wakes those writers, and hands the
    lead to the first writer queued meanwhile, if any; everyone else sleeps on a lock.
    A failed commit fails every request of its batch (500), none waits for ever."""

    def __init__(self, path: str) -> None:
        # Used by one thread at a time: the leader's.
        self._conn = sqlite3.connect(
            path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS runs (id TEXT PRIMARY KEY, plugin TEXT, input TEXT,"
            " output TEXT, start_time REAL, end_time REAL, status TEXT)"
        )
        self._lock = threading.Lock()
        self._queue: list[_Ticket] = []
        self._leading = False

    def write(self, row: tuple[Any, ...]) -> None:
        ticket = _Ticket(row)
        with self._lock:
            self._queue.append(ticket)
            ticket.lead = not self._leading
            self._leading = True
        if not ticket.lead:
            ticket.done.acquire()
            if ticket.error is not None:
                raise ticket.error
            if not ticket.lead:
                return  # committed by a leader
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            with self._conn:  # BEGIN ... COMMIT, or ROLLBACK
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(_ROW, [t.row for t in batch])
        except BaseException as exc:
            for t in batch:
                t.error = exc
            raise
        finally:
            for t in batch:
                if t is not ticket:
                    t.done.release()
            with self._lock:
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].done.release()
                else:
                    self._leading = False


def create_app(commit: bool = True) -> Flask:
    """gunicorn entry: `gunicorn -c gunicorn.conf.py 'bench.floor:create_app()'`; the
    database is the config's storage.sqlite.database_path. With `commit=False`, the
    hand-off alone: what the commit costs is the difference between the two."""
    app = Flask(__name__)
    closed = threading.Event()
    closed.set()
    app.extensions["bridge.closed"] = closed
    app.extensions["bridge.services_started"] = True
    pool = DaemonPool(16, "plugin")
    commits = GroupCommit(str(load().database_path)) if commit else None

    def plugin(data: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "fields": len(data)}

    @app.post("/api/v1/webhook/<plugin_name>")
    def webhook(plugin_name: str) -> tuple[dict[str, Any], int]:
        body = request.get_data(as_text=True)
        start = time.time()
        result = pool.submit(plugin, json.loads(body)).result(timeout=30)
        if commits is not None:
            row = (uuid.uuid4().hex, plugin_name, body, json.dumps(result), start, time.time())
            commits.write((*row, "completed"))
        return {"plugin": plugin_name, "status_code": 200, "data": result}, 200

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
