"""Idempotency: a repeated delivery gets the first run's answer instead of a second run.

The first delivery of a key claims it in the store (one row per plugin and key, so two
gunicorn workers, or two hosts, agree); a duplicate waits while that run is in progress
and then is answered from the claim, which keeps how the run ended and its answer (the
run's final record and its claim are written in one transaction). Only completed runs
are replayed: when the first run failed, a redelivery runs the plugin again, which is
what a sender's retry is for.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any

from flask import Flask

from bridge import clock
from bridge.config import Config
from bridge.errors import BadPayload, DeliveryInProgress, StorageError
from bridge.model import DeliveryClaim, Replay, Run
from bridge.storage import Storage
from bridge.storage.base import ExecutionStore

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 200
POLL_SECONDS = 0.05
# A running claim held this long past its run's longest time belongs to a lost run.
LOST_AFTER_S = 60.0


class Deliveries:
    def __init__(self, config: Config, storage: Storage) -> None:
        settings = config.idempotency
        self.enabled = settings.enabled and float(settings.window) > 0
        self.window = float(settings.window)
        self.headers = tuple(settings.headers)
        self.retry_after = config.runner.retry_after
        self.storage = storage

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.deliveries"] = self

    def key_from(self, headers: Any, signed_id: str | None = None) -> str:
        """The delivery's idempotency key, checked, or "": the id its signature vouches
        for when the plugin is signed with a scheme that signs one (a header an attacker
        may add never overrides it), else the first idempotency header it carries."""
        if not self.enabled:
            return ""
        if signed_id is not None:
            return _checked(signed_id, "The signed delivery id")
        for name in self.headers:
            value = (headers.get(name) or "").strip()
            if value:
                return _checked(value, name)
        return ""

    def claim(self, run: Run, longest_s: float, async_mode: bool) -> Replay | None:
        """None when this delivery should run; what to answer when it repeats one.

        The claim alone decides, never the record (which cleanup may have taken): a
        completed claim is replayed; a failed one, or one held longer than its run can
        last (`longest_s`, plus a minute), is taken over and runs again; a running one
        is answered 202 in async mode, else waited for up to `longest_s` + 5 seconds,
        then DeliveryInProgress (409).
        """
        store = self.storage.live_store
        if not run.idempotency_key or store is None:
            return None
        plugin, key = run.plugin.name, run.idempotency_key
        started = json.dumps(
            {
                "method": run.method,
                "trace_id": run.trace_id,
                "start_time": clock.rfc3339(run.start_time),
            }
        )
        deadline = time.monotonic() + longest_s + 5
        try:
            while True:
                holder = store.claim_delivery(
                    plugin, key, run.execution_id, clock.utcnow(), self.window, started
                )
                if holder is None:
                    return None
                if holder.state == "completed":
                    store.mark_replayed(holder.execution_id, clock.utcnow())
                    return _replay(plugin, holder, store)
                if holder.state == "failed" or holder.age_s > longest_s + LOST_AFTER_S:
                    if store.take_over_delivery(
                        plugin, key, holder.execution_id, run.execution_id, clock.utcnow(), started
                    ):
                        return None
                    continue
                if async_mode:
                    return _replay(plugin, holder, store)
                if time.monotonic() >= deadline:
                    raise DeliveryInProgress(holder.execution_id, self.retry_after)
                time.sleep(POLL_SECONDS)
        except StorageError as exc:
            # Without the store there is no memory of deliveries: run rather than refuse.
            self.storage.write_failed("check an idempotency key", exc)
            return None

    def release(self, run: Run) -> None:
        """Give the key back when the run never started (429, 503), so a retry can run."""
        store = self.storage.live_store
        if not run.idempotency_key or store is None:
            return
        try:
            store.release_delivery(run.plugin.name, run.idempotency_key, run.execution_id)
        except StorageError as exc:
            self.storage.write_failed("release an idempotency key", exc)


def _checked(value: str, name: str) -> str:
    value = value.strip()
    if value and (len(value) > MAX_KEY_LENGTH or not value.isascii() or not value.isprintable()):
        raise BadPayload(f"{name} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")
    return value


def _replay(plugin: str, claim: DeliveryClaim, store: ExecutionStore) -> Replay:
    """The repeat's answer from the claim; from the record for a claim made before
    claims kept answers (then, once cleanup took the record, without its data)."""
    answer = json.loads(claim.answer) if claim.answer else {}
    finished = claim.state == "completed"
    if finished and "output" not in answer:
        record = store.get(claim.execution_id)
        if record is not None:
            answer = {
                "method": record.http_method,
                "trace_id": record.trace_id,
                "start_time": clock.rfc3339(record.start_time),
                "end_time": clock.rfc3339(record.end_time or record.start_time),
                "duration": record.duration,
                "attempts": record.attempts,
                "output": record.output,
            }

    def when(key: str) -> datetime | None:
        return datetime.fromisoformat(answer[key]) if answer.get(key) else None

    return Replay(
        execution_id=claim.execution_id,
        plugin=plugin,
        method=answer.get("method", ""),
        trace_id=answer.get("trace_id", ""),
        finished=finished,
        start_time=when("start_time"),
        end_time=when("end_time"),
        duration=answer.get("duration", 0),
        attempts=answer.get("attempts", 0),
        output=answer.get("output", ""),
    )
