"""The deliveries table: who holds each idempotency key, since when, how its run ended
and what a repeat is answered with.

A claim is one INSERT ... ON DUPLICATE KEY UPDATE whose assignments keep the holder's
row unless its claim is older than the window, then a read of the row in the same
transaction: the insert locks the row, so of two hosts claiming a key at once the
second waits for the first and then finds it held. The affected-row count is not used
(1, 2 or 0 for inserted, changed or kept, and changed by CLIENT_FOUND_ROWS).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bridge.model import DeliveryClaim, ExecutionRecord, Status
from bridge.storage.mysql.records import aware, text, utc

# MySQL assigns left to right, each seeing the ones before: created_at goes last, so
# every IF reads the held claim's time.
_EXPIRED = "created_at < %s"
CLAIM = (
    "INSERT INTO deliveries (plugin_name, `key`, execution_id, created_at, state, answer) "
    "VALUES (%s, %s, %s, %s, 'running', %s) ON DUPLICATE KEY UPDATE "
    f"execution_id = IF({_EXPIRED}, VALUES(execution_id), execution_id), "
    f"state = IF({_EXPIRED}, 'running', state), "
    f"answer = IF({_EXPIRED}, VALUES(answer), answer), "
    f"created_at = IF({_EXPIRED}, VALUES(created_at), created_at)"
)


def claim(
    cur: Any,
    plugin: str,
    key: str,
    execution_id: str,
    now: datetime,
    window_s: float,
    answer: str = "",
) -> DeliveryClaim | None:
    """Claim (plugin, key) unless a claim younger than the window holds it; None when
    claimed, else the holder. The caller runs it in one transaction."""
    plugin, key = text(plugin), text(key)
    expired = utc(now - timedelta(seconds=window_s))
    cur.execute(CLAIM, (plugin, key, execution_id, utc(now), text(answer), *([expired] * 4)))
    cur.execute(
        "SELECT execution_id, created_at, state, answer FROM deliveries "
        "WHERE plugin_name = %s AND `key` = %s",
        (plugin, key),
    )
    row = cur.fetchone()
    if row is None or row[0] == execution_id:
        return None
    holder, created, state, held_answer = row
    age = max(0.0, (now - aware(created)).total_seconds())  # type: ignore[operator]
    return DeliveryClaim(holder, age, state, held_answer)


def take_over(
    cur: Any,
    plugin: str,
    key: str,
    holder: str,
    execution_id: str,
    now: datetime,
    answer: str = "",
) -> bool:
    cur.execute(
        "UPDATE deliveries SET execution_id = %s, created_at = %s, state = 'running', "
        "answer = %s WHERE plugin_name = %s AND `key` = %s AND execution_id = %s",
        (execution_id, utc(now), text(answer), text(plugin), text(key), holder),
    )
    return cur.rowcount == 1


def finish(cur: Any, record: ExecutionRecord) -> None:
    """The run that holds its delivery's claim ended: the claim keeps how, and the answer."""
    state = "completed" if record.status is Status.COMPLETED else "failed"
    cur.execute(
        "UPDATE deliveries SET state = %s, answer = %s WHERE plugin_name = %s AND `key` = %s "
        "AND execution_id = %s",
        (
            state,
            text(record.delivery_answer),
            text(record.plugin_name),
            text(record.idempotency_key),
            record.id,
        ),
    )


def release(cur: Any, plugin: str, key: str, execution_id: str) -> None:
    cur.execute(
        "DELETE FROM deliveries WHERE plugin_name = %s AND `key` = %s AND execution_id = %s",
        (text(plugin), text(key), execution_id),
    )


def mark_replayed(cur: Any, execution_id: str, now: datetime) -> None:
    cur.execute(
        "UPDATE executions SET replays = replays + 1, updated_at = %s WHERE id = %s",
        (utc(now), execution_id),
    )


def purge(cur: Any, before: datetime) -> int:
    return int(cur.execute("DELETE FROM deliveries WHERE created_at < %s", (utc(before),)))
