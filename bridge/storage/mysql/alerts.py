"""The alert tables on MySQL: alert_state (a rule × plugin's state, with a version)
and alert_events (their history, detail as JSON). Times are naive UTC DATETIME(6)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from bridge.storage.alerts import AlertEvent, AlertState
from bridge.storage.mysql.records import aware, text, utc

_TIMES = ("since", "fired_at", "notified_at", "clear_since", "resolved_at", "updated_at")
_COLUMNS = ("rule", "plugin", "state", "value", *_TIMES, "version")
_EVENT_COLUMNS = (
    "id",
    "at",
    "rule",
    "plugin",
    "kind",
    "severity",
    "value",
    "threshold",
    "channel",
    "detail",
)


def states(cur: Any) -> list[AlertState]:
    cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM alert_state ORDER BY rule, plugin")
    out = []
    for row in cur.fetchall():
        item = dict(zip(_COLUMNS, row, strict=True))
        out.append(AlertState(**{k: (aware(v) if k in _TIMES else v) for k, v in item.items()}))
    return out


def put_state(cur: Any, new: AlertState) -> bool:
    """Insert the first row (version 0 → 1), or update the row still at `new.version`.
    Found rows are counted (CLIENT_FOUND_ROWS), so an update that changes no value of
    the row still counts as done."""
    values = [getattr(new, k) for k in _COLUMNS[:-1]]
    values[1] = text(values[1])
    values[4:] = [utc(v) for v in values[4:]]
    if new.version == 0:
        cur.execute(
            f"INSERT IGNORE INTO alert_state ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join(['%s'] * len(_COLUMNS))})",
            (*values, 1),
        )
    else:
        sets = ", ".join(f"{k} = %s" for k in _COLUMNS[2:-1])
        cur.execute(
            f"UPDATE alert_state SET {sets}, version = version + 1 "
            "WHERE rule = %s AND plugin = %s AND version = %s",
            (*values[2:], new.rule, values[1], new.version),
        )
    return cur.rowcount == 1


def add_event(cur: Any, e: AlertEvent) -> None:
    cur.execute(
        "INSERT INTO alert_events (at, rule, plugin, kind, severity, value, threshold, "
        "channel, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            utc(e.at),
            e.rule,
            text(e.plugin),
            e.kind,
            e.severity,
            e.value,
            e.threshold,
            e.channel,
            json.dumps(e.detail or {}, ensure_ascii=False),
        ),
    )


def events(cur: Any, since: datetime | None, limit: int) -> list[AlertEvent]:
    where = "WHERE at >= %s " if since is not None else ""
    args = ([utc(since)] if since is not None else []) + [limit]
    cur.execute(
        f"SELECT {', '.join(_EVENT_COLUMNS)} FROM alert_events {where}"
        "ORDER BY at DESC, id DESC LIMIT %s",
        args,
    )
    out = []
    for row in cur.fetchall():
        item = dict(zip(_EVENT_COLUMNS, row, strict=True))
        item["at"] = aware(item["at"])
        item["detail"] = json.loads(item["detail"]) if item["detail"] else {}
        out.append(AlertEvent(**item))
    return out


def delete_events(cur: Any, before: datetime) -> int:
    cur.execute("DELETE FROM alert_events WHERE at < %s", (utc(before),))
    return cur.rowcount
