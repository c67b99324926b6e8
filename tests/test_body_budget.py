"""Large bodies in flight are bounded per process; small ones never wait."""

from __future__ import annotations

import json
import threading
import time

from bridge.api.body_budget import EXEMPT_BELOW


def _body(seconds: float, size: int) -> bytes:
    head = json.dumps({"seconds": seconds, "pad": ""}).encode()
    return head[:-2] + b"x" * (size - len(head)) + head[-2:]


def _post(client, body: bytes, answers: list, started: float) -> None:
    r = client.post(
        "/api/v1/webhook/sleepy", data=body, headers={"Content-Type": "application/json"}
    )
    answers.append((r.status_code, time.monotonic() - started, r.headers.get("Retry-After")))


def _concurrently(app, bodies: list[bytes]) -> list:
    answers: list = []
    started = time.monotonic()
    threads = [
        threading.Thread(target=_post, args=(app.test_client(), b, answers, started))
        for b in bodies
    ]
    for t in threads:
        t.start()
        time.sleep(0.05)  # in this order
    for t in threads:
        t.join(20)
    return sorted(answers, key=lambda a: a[1])


def test_a_large_body_waits_for_room_and_then_runs(make_app):
    size = EXEMPT_BELOW * 2
    app = make_app(server={"max_inflight_body_size": size + size // 2})
    answers = _concurrently(app, [_body(0.5, size), _body(0, size)])
    assert [a[0] for a in answers] == [200, 200]
    assert answers[1][1] >= 0.45, "the second body ran while the first held the budget"
    budget = app.extensions["bridge.body_budget"].snapshot()
    assert budget["waits"] == 1 and budget["in_use"] == 0


def test_small_bodies_never_wait(make_app):
    app = make_app(server={"max_inflight_body_size": EXEMPT_BELOW * 2})
    large, small = _body(0.5, EXEMPT_BELOW * 2), _body(0, 1024)
    answers = _concurrently(app, [large, small])
    assert [a[0] for a in answers] == [200, 200]
    assert answers[0][1] < 0.4, "a small body waited behind a large one"
    assert app.extensions["bridge.body_budget"].snapshot()["waits"] == 0


def test_a_body_that_waits_too_long_gets_503_and_nothing_runs(make_app):
    size = EXEMPT_BELOW * 2
    app = make_app(  # a large body waits for the budget at most plugins.timeout
        server={"max_inflight_body_size": size},
        plugins={"timeout": "0.4s", "settings": {"sleepy": {"timeout": "5s"}}},
    )
    answers = _concurrently(app, [_body(1.5, size), _body(0, size), _body(0, 1024)])
    assert sorted(a[0] for a in answers) == [200, 200, 503]
    refused = next(a for a in answers if a[0] == 503)
    assert refused[2] is not None  # Retry-After
    listed = app.test_client().get("/api/v1/executions?plugin=sleepy").get_json()
    assert listed["total"] == 2  # the refused body left no record


def test_zero_turns_the_budget_off(make_app):
    size = EXEMPT_BELOW * 2
    app = make_app(server={"max_inflight_body_size": 0})
    answers = _concurrently(app, [_body(0.5, size), _body(0, size)])
    assert [a[0] for a in answers] == [200, 200]
    assert answers[0][1] < 0.4
