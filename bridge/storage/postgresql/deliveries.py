"""The deliveries table: who holds each idempotency key, since when, how its run ended
and what a repeat is answered with.

A claim is one INSERT ... ON CONFLICT: of two hosts claiming a key at once, the
second waits for the first's row and then finds it held.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from bridge.model import DeliveryClaim, ExecutionRecord, Status
from bridge.storage.postgresql.records import text


def claim(
    conn: psycopg.Connection[Any],
    plugin: str,
    key: str,
    execution_id: str,
    now: datetime,
    window_s: float,
    answer: str = "",
) -> DeliveryClaim | None:
    """Claim (plugin, key) unless a claim younger than the window holds it; None when
    claimed, else the holder."""
    plugin, key = text(plugin), text(key)
    claimed = conn.execute(
        "INSERT INTO deliveries (plugin_name, key, execution_id, created_at, state, answer) "
        "VALUES (%s, %s, %s, %s, 'running', %s) ON CONFLICT (plugin_name, key) DO UPDATE SET "
        "execution_id = excluded.execution_id, created_at = excluded.created_at, "
        "state = 'running', answer = excluded.answer WHERE deliveries.created_at < %s "
        "RETURNING execution_id",
        (plugin, key, execution_id, now, text(answer), now - timedelta(seconds=window_s)),
    ).fetchone()
    if claimed is not None:
        return None
    row = conn.execute(
        "SELECT execution_id, created_at, state, answer FROM deliveries "
        "WHERE plugin_name = %s AND key = %s",
        (plugin, key),
    ).fetchone()
    if row is None or row[0] == execution_id:
        return None
    holder, created, state, held_answer = row
    return DeliveryClaim(holder, max(0.0, (now - created).total_seconds()), state, held_answer)


def take_over(
    conn: psycopg.Connection[Any],
    plugin: str,
    key: str,
    holder: str,
    execution_id: str,
    now: datetime,
    answer: str = "",
) -> bool:
    cur = conn.execute(
        "UPDATE deliveries SET execution_id = %s, created_at = %s, state = 'running', "
        "answer = %s WHERE plugin_name = %s AND key = %s AND execution_id = %s",
        (execution_id, now, text(answer), text(plugin), text(key), holder),
    )
    return cur.rowcount == 1


def finish(conn: psycopg.Connection[Any], record: ExecutionRecord) -> None:
    """The run that holds its delivery's claim ended: the claim keeps how, and the answer."""
    state = "completed" if record.status is Status.COMPLETED else "failed"
    conn.execute(
        "UPDATE deliveries SET state = %s, answer = %s WHERE plugin_name = %s AND key = %s "
        "AND execution_id = %s",
        (
            state,
            text(record.delivery_answer),
            text(record.plugin_name),
            text(record.idempotency_key),
            record.id,
        ),
    )


def release(conn: psycopg.Connection[Any], plugin: str, key: str, execution_id: str) -> None:
    conn.execute(
        "DELETE FROM deliveries WHERE plugin_name = %s AND key = %s AND execution_id = %s",
        (text(plugin), text(key), execution_id),
    )


def mark_replayed(conn: psycopg.Connection[Any], execution_id: str, now: datetime) -> None:
    conn.execute(
        "UPDATE executions SET replays = replays + 1, updated_at = %s WHERE id = %s",
        (now, execution_id),
    )


def purge(conn: psycopg.Connection[Any], before: datetime) -> int:
    return conn.execute("DELETE FROM deliveries WHERE created_at < %s", (before,)).rowcount
