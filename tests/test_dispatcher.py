"""The dispatcher serves every caller the same way: a delivery built without HTTP (as
a replay or the CLI builds one) runs, is tracked and is answered like a webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from bridge.dispatcher import Dispatcher
from bridge.errors import MethodNotAllowed, PluginNotFound, SignatureInvalid
from bridge.model import Delivery, Status


def _delivery(plugin: str, data: dict, **fields) -> Delivery:
    body = json.dumps(data).encode()
    return Delivery(
        plugin=plugin, method="POST", parse=lambda: (dict(data), None), body=body, **fields
    )


def _dispatcher(app) -> Dispatcher:
    return app.extensions["bridge.dispatcher"]


def test_a_delivery_without_http_runs_and_is_recorded(app):
    result = _dispatcher(app).deliver(_delivery("ok", {"a": 1}, trace_id="cli-1"))
    assert result.outcome is not None and result.outcome.status is Status.COMPLETED
    assert result.outcome.result == {"echo": {"a": 1}, "method": "POST"}
    record = app.extensions["bridge.storage"].store.get(result.run.execution_id)
    assert record.status is Status.COMPLETED and record.trace_id == "cli-1"
    assert json.loads(record.input) == {"a": 1} and record.attempts == 1


def test_failures_before_a_run_are_domain_errors(app):
    dispatcher = _dispatcher(app)
    with pytest.raises(PluginNotFound):
        dispatcher.deliver(_delivery("nope", {}))
    get_only = Delivery(plugin="post_only", method="GET", parse=lambda: ({}, None))
    with pytest.raises(MethodNotAllowed):
        dispatcher.deliver(get_only)


def test_trusted_delivery_skips_signature_and_idempotency(make_app, monkeypatch):
    monkeypatch.setenv("TEST_GITHUB_SECRET", "s3cret")
    app = make_app()
    dispatcher = _dispatcher(app)
    unsigned = _delivery("signed", {"x": 1}, headers={"X-GitHub-Delivery": "d1"})
    with pytest.raises(SignatureInvalid):
        dispatcher.deliver(unsigned)
    body = json.dumps({"x": 1}).encode()
    digest = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    signed = _delivery(
        "signed",
        {"x": 1},
        headers={"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": "d1"},
    )
    first = dispatcher.deliver(signed)
    assert first.outcome.status is Status.COMPLETED
    assert dispatcher.deliver(signed).replayed.execution_id == first.run.execution_id
    again = dispatcher.deliver(_delivery("signed", {"x": 1}, trusted=True, headers=signed.headers))
    assert again.replayed is None and again.outcome.status is Status.COMPLETED
    assert again.run.execution_id != first.run.execution_id
    counters = app.extensions["bridge.counters"].snapshot()
    assert counters["webhook.signature_rejected"] == 1 and counters["webhook.replayed"] == 1


def test_async_delivery_is_accepted_then_completed(app):
    result = _dispatcher(app).deliver(_delivery("ok", {"b": 2}, async_mode=True))
    assert result.outcome is None and result.run is not None
    store = app.extensions["bridge.storage"].store
    deadline = time.monotonic() + 5
    while store.get(result.run.execution_id).status is not Status.COMPLETED:
        assert time.monotonic() < deadline, store.get(result.run.execution_id)
        time.sleep(0.01)
