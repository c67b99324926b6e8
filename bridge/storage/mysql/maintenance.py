"""Keeping the tables small: deleting expired runs in batches (their attempts and tags
go with them, ON DELETE CASCADE), giving deleted space back; and what storage info
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
_OPTIMIZED = ("executions", "execution_attempts", "execution_tags", "deliveries")
# A table is rebuilt once this share of it is free space (a rebuild copies the table).
_FREE_SHARE = 0.25


def delete_batch(cur: Any, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` finished runs started before the cutoff, oldest first."""
    return int(
        cur.execute(
            "DELETE FROM executions WHERE start_time < %s AND status NOT IN %s "
            "ORDER BY start_time LIMIT %s",
            (utc(cutoff), OPEN, limit),
        )
    )


def optimize(cur: Any, budget_s: float) -> None:
    """InnoDB reuses deleted rows' pages by itself; a table that is mostly free space
    is rebuilt (OPTIMIZE, online) while the budget lasts, to give the space back."""
    deadline = time.monotonic() + budget_s
    cur.execute(
        "SELECT table_name, data_free, data_length + index_length FROM "
        "information_schema.tables WHERE table_schema = DATABASE() AND table_name IN %s",
        (_OPTIMIZED,),
    )
    for name, free, used in cur.fetchall():
        if time.monotonic() >= deadline:
            log.info("OPTIMIZE stopped after %.0fs", budget_s)
            return
        if free and free > _FREE_SHARE * (free + used):
            cur.execute(f"OPTIMIZE TABLE {name}")
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
