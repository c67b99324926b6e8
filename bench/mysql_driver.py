"""PyMySQL or mysqlclient for the MySQL store: the same store, timed with each driver.

    python -m bench.mysql_driver [mysql://root@127.0.0.1:3306/test]

mysqlclient is tried in place of PyMySQL through its DB-API twin (`MySQLdb`), when it
is installed (it needs libmysqlclient headers to build). Each driver runs in a process
of its own on a fresh database: runs written one by one (start, then end: what a
webhook costs), the same from 4 threads, a bulk insert, and list pages read.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

RUNS = 2000
BULK = 5000
PAGES = 300


def _store(url: str) -> Any:
    from bridge.config import from_dict
    from bridge.storage import open_store

    section = {"dsn": url, "max_connections": 8}
    return open_store(from_dict({"storage": {"type": "mysql", "mysql": section}}), print)


def _run(i: int, prefix: str) -> Any:
    from bridge.model import AttemptRecord, ExecutionRecord, Status

    start = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=i)
    end = start + timedelta(milliseconds=3)
    return (
        ExecutionRecord(
            id=f"{prefix}{i}",
            plugin_name="bench",
            http_method="POST",
            start_time=start,
            status=Status.RUNNING,
            input=json.dumps({"n": i, "payload": "x" * 200}),
            tags='{"env": "bench"}',
        ),
        [AttemptRecord(1, start, end, Status.COMPLETED, duration=3_000_000)],
        end,
    )


def _lifecycle(store: Any, ids: range, prefix: str) -> None:
    from dataclasses import replace

    from bridge.model import Status

    for i in ids:
        run, attempts, end = _run(i, prefix)
        store.insert(run, wait=True)
        store.update(
            replace(
                run,
                status=Status.COMPLETED,
                end_time=end,
                attempts=1,
                attempt_records=attempts,
                output='{"ok": true}',
            )
        )


def measure(url: str, driver: str) -> None:
    if driver == "mysqlclient":
        import MySQLdb
        import MySQLdb.constants

        sys.modules["pymysql"] = MySQLdb
        sys.modules["pymysql.constants"] = MySQLdb.constants
    from bridge.model import ExecutionFilter

    store = _store(url)
    t = time.perf_counter()
    _lifecycle(store, range(RUNS), "a")
    serial = RUNS / (time.perf_counter() - t)

    t = time.perf_counter()
    threads = [
        threading.Thread(target=_lifecycle, args=(store, range(k, RUNS, 4), "b")) for k in range(4)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    threaded = RUNS / (time.perf_counter() - t)

    t = time.perf_counter()
    for k in range(0, BULK, 500):
        store.insert_many(_run(i, "c")[0] for i in range(k, k + 500))
    bulk = BULK / (time.perf_counter() - t)

    t = time.perf_counter()
    for k in range(PAGES):
        with store.snapshot() as reader:
            reader.page(ExecutionFilter(plugin="bench"), 50, (k * 50) % 4000, None)
    pages = PAGES / (time.perf_counter() - t)
    store.close()
    print(f"{driver}\t{serial:.0f}\t{threaded:.0f}\t{bulk:.0f}\t{pages:.0f}")


def main() -> None:
    base = sys.argv[1] if len(sys.argv) > 1 else "mysql://root@127.0.0.1:3306/test"
    if len(sys.argv) > 2:  # the child: one driver on one database
        measure(base, sys.argv[2])
        return
    import pymysql

    url = urlsplit(base)
    print("driver\truns/s one by one\truns/s 4 threads\trows/s bulk\tpages/s (50 runs)")
    for driver in ("pymysql", "mysqlclient", "pymysql", "mysqlclient"):
        database = f"bench_{uuid.uuid4().hex[:8]}"
        admin = pymysql.connect(
            host=url.hostname, port=url.port or 3306, user=url.username, autocommit=True
        )
        admin.cursor().execute(f"CREATE DATABASE {database}")
        try:
            dsn = url._replace(path=f"/{database}").geturl()
            subprocess.run([sys.executable, "-m", "bench.mysql_driver", dsn, driver], check=False)
        finally:
            admin.cursor().execute(f"DROP DATABASE {database}")
            admin.close()


if __name__ == "__main__":
    main()
