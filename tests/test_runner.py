"""The runner's thread pool."""

from __future__ import annotations

import gc
import threading
import weakref
from concurrent.futures import CancelledError

import pytest

from bridge.runner import DaemonPool


class _Body:
    """Stands for a run's parsed body: something that can be weakly referenced."""


def test_an_idle_pool_thread_keeps_nothing_of_its_last_job():
    """A thread waiting for work must not hold its last job's arguments: each would keep
    a run's parsed body (~10 MB for 1 MB of JSON) alive, one per idle thread."""
    pool = DaemonPool(4, "test")
    refs = []
    for _ in range(8):
        body = _Body()
        refs.append(weakref.ref(body))
        assert pool.submit(lambda b: type(b).__name__, body).result(5) == "_Body"
        del body
    gc.collect()
    assert [r() for r in refs] == [None] * 8
    pool.shutdown()


def test_a_job_that_raises_hands_its_error_to_the_caller():
    pool = DaemonPool(1, "test")

    def fail():
        raise ValueError("plugin said no")

    job = pool.submit(fail)
    with pytest.raises(ValueError, match="plugin said no"):
        job.result(5)
    assert pool.submit(lambda: 7).result(5) == 7  # the thread survives it
    pool.shutdown()


def test_a_job_still_running_at_its_timeout_raises_timeout_error():
    pool = DaemonPool(1, "test")
    release = threading.Event()
    job = pool.submit(release.wait, 5)
    with pytest.raises(TimeoutError):
        job.result(0.05)
    release.set()
    assert job.result(5) is True  # and its result, once it returns
    pool.shutdown()


def test_jobs_queued_when_the_pool_shuts_down_are_cancelled():
    pool = DaemonPool(1, "test")
    started, release = threading.Event(), threading.Event()

    def hold() -> bool:
        started.set()
        return release.wait(5)

    first = pool.submit(hold)
    assert started.wait(5)
    queued = pool.submit(lambda: "ran")
    pool.shutdown()
    release.set()
    assert first.result(5) is True
    with pytest.raises(CancelledError):
        queued.result(5)
