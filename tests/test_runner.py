"""The runner's thread pool."""

from __future__ import annotations

import gc
import weakref

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

    future = pool.submit(fail)
    assert isinstance(future.exception(5), ValueError)
    assert pool.submit(lambda: 7).result(5) == 7  # the thread survives it
    pool.shutdown()
