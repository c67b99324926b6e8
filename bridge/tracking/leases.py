"""Leases: each process says in the database, again and again, that it is alive, so
that another host closing leftover `running` rows closes only those of a process
whose lease ran out (it died, or its host did), never a live run of another host.

A lease is a `bridge_state` value under `lease:<host:pid>` (no table of its own: the
state table is already on every backend), renewed every `scheduler.takeover_interval`
and valid for LEASE_PERIODS of them (at least MIN_TTL_S), so that a few missed
renewals (a slow database, a long pause) do not retire a live process. The stale-run
job forgets leases that ran out a day ago (or longer than any run can last), so that
every worker restart does not leave a row behind for good.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from bridge import clock
from bridge.storage import Storage

log = logging.getLogger(__name__)

PREFIX = "lease:"
LEASE_PERIODS = 6
MIN_TTL_S = 15.0
KEY_CHARS = 64  # the state table's key length on MySQL


def lease_key(worker: str) -> str:
    key = f"{PREFIX}{worker}"
    if len(key) <= KEY_CHARS:
        return key
    return f"{PREFIX}{hashlib.sha256(worker.encode()).hexdigest()[: KEY_CHARS - len(PREFIX)]}"


class Leases:
    """This process's lease (renewed by a thread while the app serves), and others'."""

    def __init__(self, storage: Storage, every: float, worker: Any) -> None:
        self.storage = storage
        self.every = max(float(every), 0.1)
        self.ttl = max(self.every * LEASE_PERIODS, MIN_TTL_S)
        self._worker = worker  # () -> "host:pid", asked again after a fork
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self, ttl: float | None = None) -> bool:
        """Write this process's lease, valid for `ttl` seconds from now; False if the
        store did not take it (a database away: the lease runs out meanwhile)."""
        store = self.storage.live_store
        if store is None:
            return False
        worker = self._worker()
        now = clock.utcnow().timestamp()
        value = {
            "worker": worker,
            "renewed_at": now,
            "expires_at": now + (self.ttl if ttl is None else ttl),
        }
        try:
            store.write(lambda w: w.set_state(lease_key(worker), value))
        except Exception as exc:
            log.debug("Lease not renewed: %s", exc)
            return False
        return True

    def alive(self, worker: str) -> bool | None:
        """Whether `worker`'s lease still runs (None: it never had one)."""
        store = self.storage.require()
        with store.snapshot() as reader:
            lease = reader.state(lease_key(worker))
        if not isinstance(lease, dict) or lease.get("worker") != worker:
            return None
        return float(lease.get("expires_at", 0)) > clock.utcnow().timestamp()

    def purge(self, older_than: float) -> int:
        """Forget the leases that ran out more than `older_than` seconds ago (processes
        long gone, whose rows the age rule retires anyway); how many."""
        store = self.storage.live_store
        if store is None:
            return 0
        cutoff = clock.utcnow().timestamp() - older_than
        with store.snapshot() as reader:
            leases = reader.states(PREFIX)
        gone = [
            key
            for key, lease in leases.items()
            if not isinstance(lease, dict) or float(lease.get("expires_at", 0)) < cutoff
        ]
        if gone:

            def forget(w: Any) -> None:
                for key in gone:
                    w.delete_state(key)

            store.write(forget)
        return len(gone)

    def start(self) -> None:
        """Renew now and then every `every` seconds, in a thread, until `stop`."""
        if self._thread is not None:
            return
        self.renew()

        def loop() -> None:
            while not self._stop.wait(self.every):
                self.renew()

        self._thread = threading.Thread(target=loop, name="lease-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing and end the lease at once: this process's runs are closed by
        its own shutdown."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self.renew(ttl=0)
