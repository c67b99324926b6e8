"""Idempotency: a repeated delivery gets the first run's answer instead of a second run.

The first delivery of a key claims it in the store (one row per plugin and key, so two
gunicorn workers agree); a duplicate waits while that run is in progress and then is
answered from its record. Only completed runs are replayed: when the first run failed,
a redelivery runs the plugin again, which is what a sender's retry is for.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask

from bridge import clock
from bridge.config import Config
from bridge.errors import BadPayload, DeliveryInProgress, StorageError
from bridge.model import ExecutionRecord, Run, Status
from bridge.storage import Storage

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 200
POLL_SECONDS = 0.05


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

    def claim(self, run: Run, wait_s: float) -> ExecutionRecord | None:
        """None when this delivery should run; the first run's record when it is a replay.

        Raises DeliveryInProgress when the first run is still going after `wait_s`.
        """
        store = self.storage.store
        if not run.idempotency_key or store is None:
            return None
        plugin, key = run.plugin.name, run.idempotency_key
        deadline = time.monotonic() + wait_s
        try:
            while True:
                holder = store.claim_delivery(
                    plugin, key, run.execution_id, clock.utcnow(), self.window
                )
                if holder is None:
                    return None
                record = store.get(holder.execution_id)
                if record is not None and record.status is Status.COMPLETED:
                    store.mark_replayed(record.id, clock.utcnow())
                    return record
                finished_badly = record is not None and record.status.is_final
                # A claim whose record never appeared belongs to a run that was lost.
                lost = record is None and holder.age_s > max(wait_s, 60.0)
                if finished_badly or lost:
                    if store.take_over_delivery(
                        plugin, key, holder.execution_id, run.execution_id, clock.utcnow()
                    ):
                        return None
                    continue
                if time.monotonic() >= deadline:
                    raise DeliveryInProgress(holder.execution_id, self.retry_after)
                time.sleep(POLL_SECONDS)
        except StorageError as exc:
            # Without the store there is no memory of deliveries: run rather than refuse.
            self.storage.write_failed("check an idempotency key", exc)
            return None

    def release(self, run: Run) -> None:
        """Give the key back when the run never started (429, 503), so a retry can run."""
        store = self.storage.store
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
