"""Keeping the tables in shape: deleting expired runs in batches (their attempts and
tags go with them, ON DELETE CASCADE), fresh statistics after; and what storage info
reports of the server."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bridge.storage.mysql.records import OPEN, aware, utc

log = logging.getLogger(__name__)

TABLES = (
    "executions",
    "execution_attempts",
    "execution_tags",
    "execution_metrics",
    "execution_metrics_daily",
    "bridge_state",
    "deliveries",
    "schema_version",
)
_ANALYZED = ("executions", "execution_attempts", "execution_tags", "deliveries")


def delete_batch(cur: Any, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` finished runs started before the cutoff, oldest first."""
    return int(
        cur.execute(
            "DELETE FROM executions WHERE start_time < %s AND status NOT IN %s "
            "ORDER BY start_time LIMIT %s",
            (utc(cutoff), OPEN, limit),
        )
    )


def analyze(cur: Any, budget_s: float) -> None:
    """Fresh statistics for the tables runs were deleted from, while the budget lasts.
    InnoDB reuses the deleted rows' pages by itself; the space is not given back to the
    file system, as OPTIMIZE TABLE would: it rebuilds the table, ~20 s for the
    benchmark's million rows, and its last step held the webhooks' writes for up to
    0.3 s on a quiet server, 1.6 s under load (p99 34x the quiet one's)."""
    deadline = time.monotonic() + budget_s
    for name in _ANALYZED:
        if time.monotonic() >= deadline:
            log.info("ANALYZE stopped after %.0fs", budget_s)
            return
        cur.execute(f"ANALYZE TABLE {name}")
        cur.fetchall()


@dataclass(frozen=True)
class MySQLInfo:
    """What storage info shows that only MySQL has: the server, the database, and its
    whole size (size_bytes is the bridge's tables only)."""

    server_version: str
    database: str
    database_size: int


def server_info(cur: Any) -> MySQLInfo:
    cur.execute(
        "SELECT VERSION(), DATABASE(), (SELECT COALESCE(SUM(data_length + index_length), 0) "
        "FROM information_schema.tables WHERE table_schema = DATABASE())"
    )
    version, database, size = cur.fetchone()
    return MySQLInfo(version, database, int(size))


def size_bytes(cur: Any) -> int:
    """The bridge's tables with their indexes (InnoDB's estimate, updated as it goes)."""
    cur.execute(
        "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables "
        "WHERE table_schema = DATABASE() AND table_name IN %s",
        (TABLES,),
    )
    row = cur.fetchone()
    return int(row[0]) if row else 0


def totals(cur: Any) -> tuple[int, datetime | None, datetime | None]:
    """How many runs, and the start times of the oldest and newest."""
    cur.execute("SELECT COUNT(*), MIN(start_time), MAX(start_time) FROM executions")
    total, oldest, newest = cur.fetchone()
    return int(total), aware(oldest), aware(newest)
