"""Replay: a stored run's plugin run again, with its stored input or an edited one.

The replay is a `Delivery` like a webhook's, so it goes through the same dispatcher
(plugin lookup, method check, runner, tracking) and is answered the same way. It is
trusted (the caller holds an API key): no signature check, no idempotency key. Its
record points at the original (`replay_of`).
"""

from __future__ import annotations

import json
from typing import Any

from bridge.errors import NotReplayable
from bridge.model import Delivery, ExecutionRecord
from bridge.tracking.redact import MASK


def stored_input(record: ExecutionRecord) -> tuple[dict[str, Any], str]:
    """The run's input as the plugin got it, or NotReplayable if what was stored is not
    the whole of it."""
    if not record.input:
        raise NotReplayable(
            record.id,
            "its input was not stored (execution_tracking.track_input was off, or the "
            "delivery was refused before it ran)",
        )
    try:
        data = json.loads(record.input)
    except ValueError:
        raise NotReplayable(record.id, "its stored input is not JSON") from None
    if not isinstance(data, dict):
        raise NotReplayable(record.id, "its stored input is not a JSON object")
    if data.get("truncated") is True and {"original_size", "preview"} <= data.keys():
        raise NotReplayable(
            record.id,
            f"its input was truncated when stored ({data['original_size']} bytes, over "
            "execution_tracking.max_input_size)",
        )
    redacted = sorted(_masked(data))
    if redacted:
        raise NotReplayable(
            record.id, f"fields of its input were redacted when stored: {', '.join(redacted)}"
        )
    return data, record.input


def _masked(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        found = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found += [where] if item == MASK else _masked(item, where)
        return found
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in _masked(item, f"{path}[{i}]")]
    return []


def replay_delivery(record: ExecutionRecord, edited: dict[str, Any] | None = None) -> Delivery:
    """The delivery that runs `record`'s plugin again: with `edited` as its data when
    given, else with the stored input (NotReplayable if that is not whole)."""
    if edited is None:
        data, text = stored_input(record)
    else:
        data, text = edited, json.dumps(edited, ensure_ascii=False)
    try:
        tags = json.loads(record.tags or "{}")
    except ValueError:
        tags = {}
    return Delivery(
        plugin=record.plugin_name,
        method=record.http_method,
        parse=lambda: (data, text),
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
        metadata={"replay_of": record.id, "edited_input": edited is not None},
        trusted=True,
        replay_of=record.id,
    )
