"""Delivering notifications: each channel has its own worker thread and queue, so a
receiver that is down or hangs delays only its own channel, never a webhook, the
evaluation, or another channel. Each try has a timeout; failed tries are retried with
a doubling wait; a delivery that fails every try is reported to `failed`."""

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
        self._pending: set[Future[Outcome]] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _pool(self, name: str) -> ThreadPoolExecutor:
        with self._lock:
            if name not in self._pools:
                self._pools[name] = ThreadPoolExecutor(1, thread_name_prefix=f"alert-{name}")
            return self._pools[name]

    def submit(self, note: Notification, names: Iterable[str]) -> list[Future[Outcome]]:
        """Queue `n` on each named channel; returns at once."""
        futures = [self._pool(n).submit(self._deliver, self.channels[n], note) for n in names]
        with self._lock:
            self._pending.update(futures)
        for future in futures:
            future.add_done_callback(self._done)
        return futures

    def _done(self, future: Future[Outcome]) -> None:
        with self._lock:
            self._pending.discard(future)

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
        try:
            self.failed(n, outcome)
        except Exception:
            log.exception("Recording the failed delivery of alert %s failed", n.rule.name)
        return outcome

    def shutdown(self, grace: float = 0.0) -> None:
        """Give queued deliveries `grace` seconds, then stop retrying and drop the rest."""
        if grace > 0:
            self.flush(grace)
        self._stop.set()
        with self._lock:
            for pool in self._pools.values():
                pool.shutdown(wait=False, cancel_futures=True)
            self._pools.clear()
