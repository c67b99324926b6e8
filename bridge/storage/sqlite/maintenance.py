"""Keeping the database small: deleting expired runs in batches, handing freed pages back
to the OS, checkpointing the WAL; and what storage info reports of the file."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bridge.model import OPEN_STATUSES

VACUUM_PAGES = 500  # pages freed per incremental-vacuum write: keeps each write short

_OPEN = tuple(s.value for s in OPEN_STATUSES)
# One statement per table and batch, not one per row: under load every statement costs
# the committing thread a wait for the GIL.
_EXPIRED = (
    "SELECT seq FROM executions WHERE start_time < ? AND status NOT IN (?, ?) "
    "ORDER BY start_time LIMIT ?"
)


def delete_batch(conn: sqlite3.Connection, cutoff_us: int, limit: int) -> int:
    """Delete up to `limit` finished runs started before the cutoff, oldest first."""
    args = (cutoff_us, *_OPEN, limit)
    for table in ("execution_attempts", "execution_tags"):
        conn.execute(
            f"DELETE FROM {table} WHERE execution_id IN "
            f"(SELECT id FROM executions WHERE seq IN ({_EXPIRED}))",
            args,
        )
    return conn.execute(f"DELETE FROM executions WHERE seq IN ({_EXPIRED})", args).rowcount


def vacuum_step(conn: sqlite3.Connection, pages: int = VACUUM_PAGES) -> bool:
    """Free up to `pages` pages; whether more remain."""
    conn.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()
    return conn.execute("PRAGMA freelist_count").fetchone()[0] > 0


def checkpoint(conn: sqlite3.Connection) -> None:
    """Copy the whole WAL back into the database file and truncate it."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


@dataclass(frozen=True)
class SQLiteInfo:
    """What storage info shows that only SQLite has: the file's journal and pages."""

    journal_mode: str
    page_size: int
    page_count: int
    freelist_count: int


def file_info(conn: sqlite3.Connection) -> SQLiteInfo:
    return SQLiteInfo(
        *(
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "page_size", "page_count", "freelist_count")
        )
    )


def totals(conn: sqlite3.Connection) -> tuple[int, int | None, int | None]:
    """How many runs, and the start times (µs) of the oldest and newest."""
    return conn.execute(
        "SELECT count(*), min(start_time), max(start_time) FROM executions"
    ).fetchone()


def size_bytes(path: Path) -> int:
    """The database with its WAL and shared-memory files."""
    files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
    return sum(f.stat().st_size for f in files if f.exists())


def restore(conn: sqlite3.Connection, path: Path) -> None:
    """Write the database that `conn` still has open, though its file was deleted, to
    `path` again: a copy made beside it (SQLite's backup reads the WAL too), then moved
    into place. The deleted database's -wal and -shm files, if left at the path, go
    first: a new database must not meet the old one's write-ahead log."""
    copy = path.with_name(f"{path.name}.restoring")
    copy.unlink(missing_ok=True)
    target = sqlite3.connect(str(copy))
    try:
        conn.backup(target)
    finally:
        target.close()
    for leftover in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    os.replace(copy, path)
