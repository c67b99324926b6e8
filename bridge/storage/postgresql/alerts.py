"""The alert tables on PostgreSQL: alert_state (a rule × plugin's state, with a
version) and alert_events (their history, detail as jsonb)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bridge.storage.alerts import AlertEvent, AlertState
from bridge.storage.postgresql.records import text

_COLUMNS = (
    "rule",
    "plugin",
    "state",
    "value",
    "since",
    "fired_at",
    "notified_at",
    "clear_since",
    "resolved_at",
    "updated_at",
    "version",
)


def states(conn: psycopg.Connection[Any]) -> list[AlertState]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM alert_state ORDER BY rule, plugin")
        return [AlertState(**row) for row in cur.fetchall()]


def put_state(conn: psycopg.Connection[Any], new: AlertState) -> bool:
    """Insert the first row (version 0 → 1), or update the row still at `new.version`."""
    values = [getattr(new, k) for k in _COLUMNS[:-1]]
    values[1] = text(values[1])
    if new.version == 0:
        cur = conn.execute(
            f"INSERT INTO alert_state ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) ON CONFLICT DO NOTHING",
            (*values, 1),
        )
    else:
        sets = ", ".join(f"{k} = %s" for k in _COLUMNS[2:-1])
        cur = conn.execute(
            f"UPDATE alert_state SET {sets}, version = version + 1 "
            "WHERE rule = %s AND plugin = %s AND version = %s",
            (*values[2:], new.rule, values[1], new.version),
        )
    return cur.rowcount == 1


def add_event(conn: psycopg.Connection[Any], e: AlertEvent) -> None:
    conn.execute(
        "INSERT INTO alert_events (at, rule, plugin, kind, severity, value, threshold, "
        "channel, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            e.at,
            e.rule,
            text(e.plugin),
            e.kind,
            e.severity,
            e.value,
            e.threshold,
            e.channel,
            Jsonb(e.detail or {}),
        ),
    )


def events(conn: psycopg.Connection[Any], since: datetime | None, limit: int) -> list[AlertEvent]:
    with conn.cursor(row_factory=dict_row) as cur:
        if since is None:
            cur.execute("SELECT * FROM alert_events ORDER BY at DESC, id DESC LIMIT %s", (limit,))
        else:
            cur.execute(
                "SELECT * FROM alert_events WHERE at >= %s ORDER BY at DESC, id DESC LIMIT %s",
                (since, limit),
            )
        return [AlertEvent(**row) for row in cur.fetchall()]


def delete_events(conn: psycopg.Connection[Any], before: datetime) -> int:
    return conn.execute("DELETE FROM alert_events WHERE at < %s", (before,)).rowcount
