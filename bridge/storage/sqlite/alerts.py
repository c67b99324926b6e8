"""The alert tables on SQLite: alert_state (a rule × plugin's state, with a version)
and alert_events (their history). Times are integer microseconds (connection.py)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from bridge.storage.alerts import AlertEvent, AlertState
from bridge.storage.sqlite.connection import from_us, to_us

_TIMES = ("since", "fired_at", "notified_at", "clear_since", "resolved_at", "updated_at")
_COLUMNS = ("rule", "plugin", "state", "value", *_TIMES, "version")


def states(conn: sqlite3.Connection) -> list[AlertState]:
    rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM alert_state ORDER BY rule, plugin")
    return [
        AlertState(**{k: (from_us(row[k]) if k in _TIMES else row[k]) for k in _COLUMNS})
        for row in rows
    ]


def put_state(conn: sqlite3.Connection, new: AlertState) -> bool:
    """Insert the first row (version 0 → 1), or update the row still at `new.version`."""
    values = [getattr(new, k) for k in _COLUMNS[:-1]]
    values[4:] = [to_us(v) for v in values[4:]]
    if new.version == 0:
        cur = conn.execute(
            f"INSERT OR IGNORE INTO alert_state ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_COLUMNS))})",
            (*values, 1),
        )
    else:
        sets = ", ".join(f"{k} = ?" for k in _COLUMNS[2:-1])
        cur = conn.execute(
            f"UPDATE alert_state SET {sets}, version = version + 1 "
            "WHERE rule = ? AND plugin = ? AND version = ?",
            (*values[2:], new.rule, new.plugin, new.version),
        )
    return cur.rowcount == 1


def add_event(conn: sqlite3.Connection, e: AlertEvent) -> None:
    conn.execute(
        "INSERT INTO alert_events (at, rule, plugin, kind, severity, value, threshold, "
        "channel, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            to_us(e.at),
            e.rule,
            e.plugin,
            e.kind,
            e.severity,
            e.value,
            e.threshold,
            e.channel,
            json.dumps(e.detail or {}, ensure_ascii=False),
        ),
    )


def events(conn: sqlite3.Connection, since: datetime | None, limit: int) -> list[AlertEvent]:
    rows = conn.execute(
        "SELECT * FROM alert_events WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?",
        (to_us(since) if since else 0, limit),
    )
    return [
        AlertEvent(
            at=from_us(r["at"]),  # type: ignore[arg-type]
            rule=r["rule"],
            plugin=r["plugin"],
            kind=r["kind"],
            severity=r["severity"],
            value=r["value"],
            threshold=r["threshold"],
            channel=r["channel"],
            detail=json.loads(r["detail"]),
            id=r["id"],
        )
        for r in rows
    ]


def delete_events(conn: sqlite3.Connection, before: datetime) -> int:
    return conn.execute("DELETE FROM alert_events WHERE at < ?", (to_us(before),)).rowcount
