"""The gunicorn layer against hostile and unusual clients, through a real gunicorn on
127.0.0.1: chunked bodies. Every client here is bounded in count and time."""

from __future__ import annotations

import threading

import pytest
import requests

pytestmark = pytest.mark.slow

WEBHOOK = "/api/v1/webhook"


def _chunks(body: bytes, size: int = 64 * 1024):
    for i in range(0, len(body), size):
        yield body[i : i + size]


def _json_body(size: int, seconds: float = 0) -> bytes:
    head = b'{"seconds": %s, "pad": "' % str(seconds).encode()
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_a_chunked_body_of_exactly_max_body_size_is_accepted_like_content_length(gunicorn):
    limit = 300 * 1024
    with gunicorn(server={"max_body_size": limit}) as server:
        url = f"{server.base}{WEBHOOK}/ok"
        answers = {}
        for size in (limit, limit + 1):
            body = _json_body(size)
            for framing, data in (("length", body), ("chunked", _chunks(body))):
                r = requests.post(
                    url, data=data, headers={"Content-Type": "application/json"}, timeout=20
                )
                answers[(size - limit, framing)] = r.status_code
    assert answers == {
        (0, "length"): 200,
        (0, "chunked"): 200,
        (1, "length"): 413,
        (1, "chunked"): 413,
    }


def test_chunked_bodies_wait_for_the_body_budget_like_content_length_ones(gunicorn):
    """Two large chunked bodies in one worker whose budget holds one: the second waits
    for the first, and past plugins.timeout of waiting gets 503 with Retry-After."""
    size = 400 * 1024
    with gunicorn(
        server={"workers": 1, "max_inflight_body_size": size},
        plugins={"timeout": "1s", "settings": {"sleepy": {"timeout": "10s"}}},
    ) as server:
        url = f"{server.base}{WEBHOOK}/sleepy"
        answers: list[requests.Response] = []

        def post(seconds: float) -> None:
            body = _json_body(size, seconds)
            answers.append(
                requests.post(
                    url,
                    data=_chunks(body),
                    headers={"Content-Type": "application/json"},
                    timeout=20,
                )
            )

        first = threading.Thread(target=post, args=(3,))
        first.start()
        budget = {}
        for _ in range(50):  # until the first body holds the budget (at most 5 s)
            health = requests.get(f"{server.base}/health", timeout=5).json()
            budget = health["checks"]["runner"]
            if budget.get("busy"):
                break
            threading.Event().wait(0.1)
        post(0)
        first.join(20)
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 503], [r.text[:200] for r in answers]
    refused = next(r for r in answers if r.status_code == 503)
    assert refused.headers.get("Retry-After")
