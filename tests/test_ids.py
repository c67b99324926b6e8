from __future__ import annotations

import time
import uuid

from bridge.tracking import ids
from bridge.tracking.ids import uuid7, uuid7_from


def test_an_id_is_a_uuid7_holding_the_time_it_was_made():
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after
    assert uuid.UUID(str(value)) == value


def test_ids_sort_in_the_order_they_were_made_and_do_not_repeat(monkeypatch):
    now = [1_790_000_000_000_000_000]
    monkeypatch.setattr(ids.time, "time_ns", lambda: now[0])
    made = []
    for _ in range(200):
        made.append(str(uuid7()))
        now[0] += 1_000_000  # the next millisecond
    assert sorted(made) == made
    assert len({str(uuid7()) for _ in range(10_000)}) == 10_000  # within one millisecond


def test_an_id_for_a_past_time_holds_that_time():
    value = uuid7_from(1_700_000_000_123, (1 << 74) - 1)
    assert value.version == 7 and value.variant == uuid.RFC_4122
    assert value.int >> 80 == 1_700_000_000_123
    assert str(value).startswith("018bcfe5-687b-7fff-bfff-")


def test_webhook_execution_and_trace_ids_are_uuid7(client):
    body = client.post("/api/v1/webhook/ok", json={"a": 1}).get_json()
    assert uuid.UUID(body["execution_id"]).version == 7
    assert uuid.UUID(body["trace_id"]).version == 7
