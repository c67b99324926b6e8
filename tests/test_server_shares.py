"""How many of a worker's threads one plugin's webhooks may hold."""

from __future__ import annotations

from bridge.server.shares import ThreadShares


def test_one_plugin_never_takes_the_last_two_threads_nor_webhooks_the_last_one():
    shares: ThreadShares[str] = ThreadShares(threads=8, wait=30)
    assert [shares.admit("hung", f"h{i}", 0) for i in range(8)] == [True] * 6 + [False] * 2
    assert shares.admit("other", "o1", 0) is True  # the 7th thread
    assert shares.admit("other", "o2", 0) is False  # the 8th is never a webhook's


def test_a_released_thread_goes_to_the_first_waiting_request_that_fits():
    shares: ThreadShares[str] = ThreadShares(threads=4, wait=30)  # 2 per plugin, 3 in all
    for request in ("a1", "a2", "a3", "b1", "a4"):
        shares.admit(request[0], request, 0)
    assert [w[2] for w in shares.waiting] == ["a3", "a4"]  # b1 took the third thread
    assert shares.release("b") == []  # a still holds its two
    assert shares.release("a") == ["a3"]
    assert [w[2] for w in shares.waiting] == ["a4"]


def test_waiting_requests_expire_in_the_order_they_came():
    shares: ThreadShares[str] = ThreadShares(threads=2, wait=5)
    shares.admit("p", "first", 0)
    shares.admit("p", "second", 1)
    shares.admit("p", "third", 2)
    assert shares.expired(6.5) == [("p", "second")]
    assert shares.expired(10) == [("p", "third")]
    assert shares.release("p") == []
