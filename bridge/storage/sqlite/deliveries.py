"""The deliveries table: who holds each idempotency key, since when, how its run ended
and what a repeat is answered with."""

from __future__ import annotations

import sqlite3

from bridge.model import DeliveryClaim, ExecutionRecord, Status


def claim(
    conn: sqlite3.Connection,
    plugin: str,
    key: str,
    execution_id: str,
    now_us: int,
    window_us: int,
    answer: str = "",
) -> DeliveryClaim | None:
    """Claim (plugin, key) unless a claim younger than the window holds it; None when
    claimed, else the holder."""
    conn.execute(
        "INSERT INTO deliveries (plugin_name, key, execution_id, created_at, state, answer) "
        "VALUES (?, ?, ?, ?, 'running', ?) ON CONFLICT (plugin_name, key) DO UPDATE SET "
        "execution_id = excluded.execution_id, created_at = excluded.created_at, "
        "state = 'running', answer = excluded.answer WHERE deliveries.created_at < ?",
        (plugin, key, execution_id, now_us, answer, now_us - window_us),
    )
    holder, created, state, held_answer = conn.execute(
        "SELECT execution_id, created_at, state, answer FROM deliveries "
        "WHERE plugin_name = ? AND key = ?",
        (plugin, key),
    ).fetchone()
    if holder == execution_id:
        return None
    return DeliveryClaim(holder, max(0.0, (now_us - created) / 1e6), state, held_answer)


def take_over(
    conn: sqlite3.Connection,
    plugin: str,
    key: str,
    holder: str,
    execution_id: str,
    now_us: int,
    answer: str = "",
) -> bool:
    return (
        conn.execute(
            "UPDATE deliveries SET execution_id = ?, created_at = ?, state = 'running', "
            "answer = ? WHERE plugin_name = ? AND key = ? AND execution_id = ?",
            (execution_id, now_us, answer, plugin, key, holder),
        ).rowcount
        == 1
    )


def finish(conn: sqlite3.Connection, record: ExecutionRecord) -> None:
    """The run that holds its delivery's claim ended: the claim keeps how, and the answer."""
    state = "completed" if record.status is Status.COMPLETED else "failed"
    conn.execute(
        "UPDATE deliveries SET state = ?, answer = ? WHERE plugin_name = ? AND key = ? "
        "AND execution_id = ?",
        (state, record.delivery_answer, record.plugin_name, record.idempotency_key, record.id),
    )


def release(conn: sqlite3.Connection, plugin: str, key: str, execution_id: str) -> None:
    conn.execute(
        "DELETE FROM deliveries WHERE plugin_name = ? AND key = ? AND execution_id = ?",
        (plugin, key, execution_id),
    )


def mark_replayed(conn: sqlite3.Connection, execution_id: str, now_us: int) -> None:
    conn.execute(
        "UPDATE executions SET replays = replays + 1, updated_at = ? WHERE id = ?",
        (now_us, execution_id),
    )


def purge(conn: sqlite3.Connection, before_us: int) -> int:
    return conn.execute("DELETE FROM deliveries WHERE created_at < ?", (before_us,)).rowcount
