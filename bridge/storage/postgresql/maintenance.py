"""Keeping the tables small: deleting expired runs in batches (their attempts and tags
go with them, ON DELETE CASCADE), vacuuming what was deleted; and what storage info
reports of the server."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from bridge.storage.postgresql.records import OPEN

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
_VACUUMED = ("executions", "execution_attempts", "execution_tags", "deliveries")


def delete_batch(conn: psycopg.Connection[Any], cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` finished runs started before the cutoff, oldest first."""
    return conn.execute(
        "DELETE FROM executions WHERE seq IN (SELECT seq FROM executions "
        "WHERE start_time < %s AND status <> ALL(%s) ORDER BY start_time LIMIT %s)",
        (cutoff, OPEN, limit),
    ).rowcount


def vacuum(conn: psycopg.Connection[Any], budget_s: float) -> None:
    """VACUUM (and ANALYZE) the tables runs are deleted from, so their space is reused
    and counts read the index alone again; stopped after the budget (autovacuum goes on
    from there). Needs a connection outside any transaction."""
    conn.execute(f"SET statement_timeout = {max(1, int(budget_s * 1000))}")
    try:
        conn.execute(f"VACUUM (ANALYZE) {', '.join(_VACUUMED)}")
    except psycopg.errors.QueryCanceled:
        log.info("VACUUM stopped after %.0fs; autovacuum carries on", budget_s)
    finally:
        conn.execute("RESET statement_timeout")


@dataclass(frozen=True)
class PostgreSQLInfo:
    """What storage info shows that only PostgreSQL has: the server, where the tables
    are, and the whole database's size (size_bytes is the bridge's tables only)."""

    server_version: str
    database: str
    schema: str
    database_size: int


def server_info(conn: psycopg.Connection[Any]) -> PostgreSQLInfo:
    row = conn.execute(
        "SELECT current_setting('server_version'), current_database(), current_schema(), "
        "pg_database_size(current_database())"
    ).fetchone()
    assert row is not None
    return PostgreSQLInfo(*row)


def size_bytes(conn: psycopg.Connection[Any]) -> int:
    """The bridge's tables with their indexes and TOAST."""
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(to_regclass(quote_ident(current_schema())"
        " || '.' || quote_ident(t)))), 0) FROM unnest(%s::text[]) AS t",
        (list(TABLES),),
    ).fetchone()
    return int(row[0]) if row else 0


def totals(conn: psycopg.Connection[Any]) -> tuple[int, datetime | None, datetime | None]:
    """How many runs, and the start times of the oldest and newest."""
    row = conn.execute(
        "SELECT count(*), min(start_time), max(start_time) FROM executions"
    ).fetchone()
    assert row is not None
    return int(row[0]), row[1], row[2]
