"""Delivering notifications: each channel has its own worker thread and queue, so a
receiver that is down or hangs delays only its own channel, never a webhook, the
evaluation, or another channel. Each try has a timeout; failed tries are retried with
a doubling wait; a delivery that fails every try is reported to `failed`, and so is one
still queued when the bridge shuts down."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from bridge.alerts.channels import Sender, sender
from bridge.alerts.message import Notification
from bridge.alerts.rules import Channel

log = logging.getLogger("bridge.alerts")


@dataclass(frozen=True)
class Outcome:
    channel: str
    ok: bool
    attempts: int
    error: str = ""


class Delivery:
    def __init__(
        self,
        channels: Mapping[str, Channel],
        timeout: float,
        attempts: int,
        backoff: float,
        failed: Callable[[Notification, Outcome], None],
        senders: Mapping[str, Sender] | None = None,
    ) -> None:
        self.channels = channels
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.failed = failed
        self.senders = senders or {}
        self._pools: dict[str, ThreadPoolExecutor] = {}
        # Queued or under way: each one's notification and channel.
        self._pending: dict[Future[Outcome], tuple[Notification, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def submit(self, note: Notification, names: Iterable[str]) -> list[Future[Outcome]]:
        """Queue `n` on each named channel; returns at once."""
        futures = []
        with self._lock:
            for name in names:
                if name not in self._pools:
                    self._pools[name] = ThreadPoolExecutor(1, thread_name_prefix=f"alert-{name}")
                future = self._pools[name].submit(self._deliver, self.channels[name], note)
                self._pending[future] = (note, name)
                futures.append(future)
        for future in futures:  # one done already is called back at once
            future.add_done_callback(self._done)
        return futures

    def _done(self, future: Future[Outcome]) -> None:
        with self._lock:
            note, name = self._pending.pop(future)
        if future.cancelled():  # still queued at shutdown
            log.warning(
                "Alert %s of %s to channel %s not sent: the bridge shut down first",
                note.kind,
                note.rule.name,
                name,
            )
            self._report(note, Outcome(name, False, 0, "not sent: the bridge shut down first"))

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` for the queued deliveries; whether all are done."""
        with self._lock:
            pending = list(self._pending)
        return not wait(pending, timeout=timeout).not_done

    def _deliver(self, channel: Channel, n: Notification) -> Outcome:
        send = self.senders.get(channel.type) or sender(channel.type)
        error, attempt = "", 0
        for attempt in range(1, self.attempts + 1):
            try:
                send(channel, n, self.timeout)
                return Outcome(channel.name, True, attempt)
            except Exception as exc:  # any failure of a receiver is retried, then recorded
                error = str(exc) or type(exc).__name__
                log.warning(
                    "Alert %s of %s to channel %s failed (try %d of %d): %s",
                    n.kind,
                    n.rule.name,
                    channel.name,
                    attempt,
                    self.attempts,
                    error,
                )
            if attempt < self.attempts and self._stop.wait(self.backoff * 2 ** (attempt - 1)):
                break
        outcome = Outcome(channel.name, False, attempt, error)
        self._report(n, outcome)
        return outcome

    def _report(self, n: Notification, outcome: Outcome) -> None:
        try:
            self.failed(n, outcome)
        except Exception:
            log.exception("Recording the failed delivery of alert %s failed", n.rule.name)

    def shutdown(self, grace: float = 0.0) -> None:
        """Give queued deliveries `grace` seconds, then stop retrying and drop the rest
        (each reported to `failed`)."""
        if grace > 0:
            self.flush(grace)
        self._stop.set()
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:  # not under the lock: a canceled delivery's callback takes it
            pool.shutdown(wait=False, cancel_futures=True)
