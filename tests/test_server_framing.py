"""Where a request ends, as bytes arrive: the worker hands a request to a thread only
once it is whole, and refuses one announced too large."""

from __future__ import annotations

import pytest

from bridge.server.framing import Framing

HEAD = b"POST /api/v1/webhook/ok HTTP/1.1\r\nHost: x\r\n"


def _feed(data: bytes, step: int = 0, max_body: int = 1000) -> tuple[Framing, int]:
    """Feed `data` whole, or `step` bytes at a time; how many bytes made it ready."""
    framing = Framing(max_head=4096, max_body=max_body)
    sizes = range(step, len(data) + step, step) if step else [len(data)]
    for size in sizes:
        if framing.feed(data[:size]):
            return framing, min(size, len(data))
    return framing, -1


@pytest.mark.parametrize("step", [0, 1, 7])
@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        HEAD + b"Content-Length: 5\r\n\r\nhello",
        HEAD + b"content-length:  0 \r\n\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    ],
)
def test_a_whole_request_is_ready_at_its_last_byte_and_not_before(request_bytes, step):
    framing, at = _feed(request_bytes, step)
    assert at == len(request_bytes) and not framing.too_large
    assert not Framing(4096, 1000).feed(request_bytes[:-1])


def test_bytes_of_a_pipelined_request_do_not_end_the_first_early():
    first = HEAD + b"Content-Length: 10\r\n\r\n"
    second = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    assert not Framing(4096, 1000).feed(first + b"12345")
    assert Framing(4096, 1000).feed(first + b"1234567890" + second)


@pytest.mark.parametrize(
    "request_bytes",
    [
        HEAD + b"Content-Length: 1001\r\n\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n3e9\r\n",  # one chunk of 1001
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n1f4\r\n" + b"x" * 500 + b"\r\n1f5\r\n",
    ],
)
def test_a_body_announced_over_max_body_is_too_large_before_it_arrives(request_bytes):
    framing, _ = _feed(request_bytes)
    assert framing.ready and framing.too_large


def test_a_body_of_exactly_max_body_is_not_too_large():
    chunked = HEAD + b"Transfer-Encoding: chunked\r\n\r\n3e8\r\n" + b"x" * 1000 + b"\r\n0\r\n\r\n"
    for data in (HEAD + b"Content-Length: 1000\r\n\r\n" + b"x" * 1000, chunked):
        framing, at = _feed(data)
        assert at == len(data) and not framing.too_large


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF
        HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
        HEAD + b"Content-Length: five\r\n\r\n",
        HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        HEAD + b"Transfer-Encoding: gzip\r\n\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        b"GET /" + b"a" * 5000,  # a head past max_head
    ],
)
def test_what_the_scan_does_not_follow_is_ready_at_once_for_gunicorn_to_refuse(request_bytes):
    framing, at = _feed(request_bytes)
    assert framing.ready and not framing.too_large and at == len(request_bytes)


def test_expect_100_continue_is_seen_once_the_head_is_complete():
    framing = Framing(4096, 1000)
    assert not framing.feed(HEAD + b"Content-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    assert framing.expects_continue
