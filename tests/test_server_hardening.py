"""The gunicorn layer against hostile and unusual clients, through a real gunicorn on
127.0.0.1: slow senders, chunked bodies, gunicorn's own errors, a plugin's share of the
threads, the access log. Every client here is bounded in count and time and stops by
itself."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from urllib.parse import urlsplit

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


class SlowClients:
    """`count` connections that each send `request` `piece` bytes at a time, one piece
    every `every` seconds, from one thread, until answered or closed or `seconds` have
    passed; `answers[i]` is what connection i received."""

    def __init__(self, base: str, request: bytes, count: int, piece: int, every: float) -> None:
        url = urlsplit(base)
        self.address = (url.hostname, url.port)
        self.request, self.count, self.piece, self.every = request, count, piece, every
        self.answers: list[bytes] = [b""] * count
        self.closed = [False] * count
        self._stop = threading.Event()

    def run(self, seconds: float) -> SlowClients:
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        self._socks = [socket.create_connection(self.address, 5) for _ in range(self.count)]
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for sock in self._socks:
            sock.close()

    def _run(self, seconds: float) -> None:
        sent = [0] * self.count
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            for i, sock in enumerate(self._socks):
                if self.closed[i] or sent[i] >= len(self.request):
                    continue
                try:
                    sock.sendall(self.request[sent[i] : sent[i] + self.piece])
                    sent[i] += self.piece
                except OSError:
                    self.closed[i] = True
            pending = [s for i, s in enumerate(self._socks) if not self.closed[i]]
            if not pending:
                return
            stop = time.monotonic() + self.every
            while (left := stop - time.monotonic()) > 0:
                readable, _, _ = select.select(pending, [], [], left)
                for sock in readable:
                    i = self._socks.index(sock)
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    self.answers[i] += data
                    if not data:
                        self.closed[i] = True
                        pending.remove(sock)
                if not pending:
                    return


def _probe(server, seconds: float) -> list:
    """/health and a webhook, one after the other for `seconds`: (what, status or error,
    seconds it took)."""
    results = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for what, call in (
            ("health", lambda: requests.get(f"{server.base}/health", timeout=3)),
            (
                "webhook",
                lambda: requests.post(f"{server.base}{WEBHOOK}/ok", json={"a": 1}, timeout=3),
            ),
        ):
            started = time.monotonic()
            try:
                outcome = call().status_code
            except requests.RequestException as exc:
                outcome = type(exc).__name__
            results.append((what, outcome, round(time.monotonic() - started, 2)))
        time.sleep(0.2)
    return results


def _status_and_error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


def test_slow_headers_from_64_sockets_hold_no_thread_and_get_408(gunicorn):
    """Slowloris: 64 connections trickling their headers a byte at a time. /health and a
    webhook keep answering, each within 3 s, and each slow client gets 408."""
    request = b"POST /api/v1/webhook/ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100
    with gunicorn(server={"request_timeout": "4s"}) as server:
        slow = SlowClients(server.base, request, count=64, piece=1, every=0.5).run(seconds=9)
        try:
            time.sleep(1)  # every slow client has sent a byte or two
            probes = _probe(server, seconds=5)
            slow._thread.join(6)  # their 408s are due by about 5 s
        finally:
            slow.stop()
    assert [p for p in probes if p[1] != 200] == [], probes
    answers = [_status_and_error(a) for a in slow.answers if a]
    assert len(answers) == 64
    assert {status for status, _ in answers} == {408}
    assert answers[0][1]["code"] == 408 and answers[0][1]["status"] == "Request Timeout"


def test_a_slow_body_holds_no_thread_nor_the_body_budget(gunicorn):
    """Eight clients announce a 1 MB body (the whole body budget) and trickle it. A
    large webhook from someone else still runs at once; the slow ones get 408."""
    size = 1024 * 1024
    head = (
        b"POST /api/v1/webhook/ok HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % size
    )
    request = head + _json_body(size)
    with gunicorn(
        server={"workers": 1, "max_inflight_body_size": size, "request_timeout": "4s"},
        plugins={"timeout": "2s"},
    ) as server:
        slow = SlowClients(server.base, request, count=8, piece=len(head) + 1024, every=0.5)
        slow.run(seconds=8)
        try:
            time.sleep(1)
            started = time.monotonic()
            r = requests.post(
                f"{server.base}{WEBHOOK}/ok",
                data=_json_body(600 * 1024),
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            took = time.monotonic() - started
            slow._thread.join(6)
        finally:
            slow.stop()
    assert r.status_code == 200 and took < 2, (r.status_code, took, r.text[:200])
    assert [_status_and_error(a)[0] for a in slow.answers] == [408] * 8


def _exchange(server, data: bytes, seconds: float = 5) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    url = urlsplit(server.base)
    with socket.create_connection((url.hostname, url.port), seconds) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
    return received


def test_errors_gunicorn_answers_itself_are_the_api_error_shape(gunicorn):
    """400, 414, 431 and 413 answered before the app runs: JSON, like the app's errors.
    A malformed chunk is one of them, not an error inside the app."""
    requests_and_codes = [
        (b"NOT A REQUEST\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (
            b"POST /api/v1/webhook/ok HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: 1\r\n" % i for i in range(120))
            + b"\r\n",
            431,
        ),
        (
            b"POST /api/v1/webhook/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
            413,
        ),
    ]
    chunked = b"POST /api/v1/webhook/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for bad_chunks in (b"zz\r\n{}\r\n0\r\n\r\n", b"-5\r\n{}\r\n0\r\n\r\n", b"2\r\n{}xx0\r\n\r\n"):
        requests_and_codes.append((chunked + bad_chunks, 400))
    with gunicorn() as server:
        answers = [_exchange(server, data) for data, _ in requests_and_codes]
    for (_, code), answer in zip(requests_and_codes, answers, strict=True):
        status, error = _status_and_error(answer)
        assert status == code, answer[:300]
        assert set(error) == {"code", "status", "message"} and error["code"] == code
        assert error["message"] and "<" not in error["message"]


def test_a_plugin_error_quoting_a_long_input_is_answered_and_grouped(gunicorn, plugin_dir):
    """A plugin that puts its input in its error message: a long input made the error
    fingerprint's patterns run for minutes (the worker was killed, its run never
    recorded). The answer is the usual 500, and the run is stored with its group."""
    (plugin_dir / "quoting.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n"
        "class Plugin(BasePlugin):\n"
        "    def handle(self):\n"
        "        raise ValueError(f\"unsupported event {self.data['event']}\")\n"
    )
    with gunicorn() as server:
        url = f"{server.base}{WEBHOOK}/quoting"
        answer = requests.post(url, json={"event": "a" * 200_000}, timeout=25)
        assert answer.status_code == 500, answer.text[:300]
        body = answer.json()
        assert body["error_type"] == "validation_error"
        run = requests.get(
            f"{server.base}/api/v1/executions/{body['execution_id']}", timeout=10
        ).json()["execution"]
    assert run["status"] == "failed" and len(run["error_group"]) == 16


def test_the_access_log_redacts_secrets_in_query_strings(gunicorn):
    with gunicorn() as server:
        r = requests.get(
            f"{server.base}{WEBHOOK}/ok?order=42&api_token=s3cr3t-1&Password=s3cr3t-2"
            "&my+secret=s3cr3t-4&tag=client_secret:s3cr3t-3&tag=env:prod",
            timeout=5,
        )
        assert r.status_code == 200
        time.sleep(0.5)  # the access line is written after the answer
        log = server.log.read_text()
    line = next(line for line in log.splitlines() if "order=42" in line)
    assert "s3cr3t" not in log, line
    for masked in ("api_token", "Password", "my+secret", "tag=client_secret:"):
        assert f"{masked}{'' if masked.endswith(':') else '='}[REDACTED]" in line, line
    assert "tag=env:prod" in line


def test_http_11_features_still_work_with_whole_requests(gunicorn):
    """Keep-alive, pipelining, Expect: 100-continue and chunked trailers, through the
    worker that receives requests whole."""
    body = b'{"a": 1}'
    post = (
        b"POST /api/v1/webhook/ok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n" % len(body)
    )
    with gunicorn() as server:
        with requests.Session() as session:
            codes = [session.get(f"{server.base}/health", timeout=5).status_code for _ in range(3)]
        pipelined = _exchange(
            server,
            (post + b"\r\n" + body) * 2 + b"GET /health HTTP/1.1\r\n"
            b"Host: x\r\nConnection: close\r\n\r\n",
        )
        url = urlsplit(server.base)
        with socket.create_connection((url.hostname, url.port), 5) as sock:
            sock.sendall(post + b"Expect: 100-continue\r\n\r\n")
            interim = sock.recv(65536)
            sock.sendall(body)
            final = sock.recv(65536)
        chunked = _exchange(
            server,
            b"POST /api/v1/webhook/ok HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b'3\r\n{"a\r\n5\r\n": 1}\r\n0\r\nX-Trailer: 1\r\n\r\n',
        )
    assert codes == [200, 200, 200]
    assert pipelined.count(b"HTTP/1.1 200 OK") == 3, pipelined[:500]
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert b"HTTP/1.1 200 OK" in interim + final and (interim + final).count(b" 100 ") == 1
    assert chunked.startswith(b"HTTP/1.1 200 OK") and b'"echo":{"a":1}' in chunked


def test_a_slow_plugin_holds_at_most_its_share_of_the_threads(gunicorn):
    """Sixteen calls to a plugin that takes 5 s, half of them repeats of one delivery
    (which wait for its run), on one worker of 4 threads: the plugin holds 2 of them,
    so /health, the management API and another plugin answer meanwhile. The calls past
    its share wait holding no thread, and get 429 with Retry-After after
    plugins.timeout."""
    with gunicorn(
        server={"workers": 1},
        plugins={"timeout": "2s", "settings": {"sleepy": {"timeout": "10s"}}},
    ) as server:
        calls: list = []

        def call(i: int) -> None:
            key = "the-same-delivery" if i % 2 else f"delivery-{i}"
            try:
                r = requests.post(
                    f"{server.base}{WEBHOOK}/sleepy",
                    json={"seconds": 5},
                    headers={"Idempotency-Key": key},
                    timeout=12,
                )
                calls.append((r.status_code, r.headers.get("Retry-After"), r.json()))
            except requests.RequestException as exc:
                calls.append((type(exc).__name__, None, None))

        flood = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for thread in flood:
            thread.start()
        time.sleep(0.5)
        probes = []
        for method, url in (
            ("GET", "/health"),
            ("GET", "/api/v1/executions?limit=5"),
            ("POST", f"{WEBHOOK}/ok"),  # another plugin
        ):
            try:
                r = requests.request(method, f"{server.base}{url}", json={}, timeout=2)
                probes.append(r.status_code)
            except requests.RequestException as exc:
                probes.append(type(exc).__name__)
        for thread in flood:
            thread.join(15)
    assert probes == [200, 200, 200]
    assert sorted(c[0] for c in calls) == [200] * 2 + [429] * 14, calls
    refused = [c for c in calls if c[0] == 429]
    assert all(c[1] and c[2]["code"] == 429 and "sleepy" in c[2]["message"] for c in refused)


def test_a_worker_holding_max_receiving_size_reads_newer_bodies_no_further(gunicorn):
    """A 700 KB body runs for 2 s on a worker that may hold 512 KB of requests: its
    bytes count until it is answered, so a 300 KB body sent meanwhile is read no
    further than its first piece until then, and runs after it."""
    with gunicorn(server={"workers": 1, "max_receiving_size": 512 * 1024}) as server:
        done: dict[str, tuple[int, float]] = {}

        def post(name: str, plugin: str, body: bytes) -> None:
            r = requests.post(
                f"{server.base}{WEBHOOK}/{plugin}",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=20,
            )
            done[name] = (r.status_code, time.monotonic())

        first = threading.Thread(target=post, args=("first", "sleepy", _json_body(700_000, 2)))
        first.start()
        time.sleep(0.5)
        post("second", "ok", _json_body(300_000))
        first.join(20)
    assert done["first"][0] == done["second"][0] == 200
    assert done["second"][1] >= done["first"][1] - 0.05, done
