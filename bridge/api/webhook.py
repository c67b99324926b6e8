"""Webhook routes: `/api/v1/webhook/<plugin>` runs the plugin and answers with its result."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.body_budget import BodyBudget
from bridge.api.delivery import delivery_from_request, trace_id_from
from bridge.api.schemas import (
    ErrorSchema,
    WebhookErrorSchema,
    WebhookQuerySchema,
    WebhookResponseSchema,
    rfc3339,
)
from bridge.dispatcher import Dispatcher, Result
from bridge.errors import WebhookFailed
from bridge.model import Outcome, Replay, Run, Status
from bridge.tracking.classify import described, message_of

blp = Blueprint(
    "webhook",
    __name__,
    url_prefix="/api/v1/webhook",
    description="Run a plugin: the request's data goes in, its result comes out.",
)

_FAILURE_STATUS = {Status.TIMEOUT: 504, Status.CANCELED: 503}
_SIGNATURE_401 = "Missing or invalid webhook signature (plugins with a signature setting)"
_IN_PROGRESS_409 = "A delivery with the same idempotency key is still running"
_BUSY_429 = "The plugin runs max_concurrency deliveries already; see Retry-After"
_OBJECT = {"type": "object", "additionalProperties": True}
# The body is free-form: what the plugin reads. Documented so that clients and the docs
# page know what is accepted; parse_payload is what checks it.
REQUEST_BODY = {
    "required": False,
    "description": "The plugin's data: a JSON object, or form fields (urlencoded or "
    "multipart/form-data). Its keys overlay the query parameters'. A JSON "
    "array or scalar gets 400; other content types 415 (text/plain holding "
    "a JSON object is read as JSON); more than server.max_body_size bytes "
    "413.",
    "content": {
        "application/json": {"schema": _OBJECT, "example": {"event": "push", "ref": "main"}},
        "application/x-www-form-urlencoded": {"schema": _OBJECT},
    },
}


def answer(result: Result) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The webhook answer for what became of a delivery: the one place that decides
    its HTTP status. A failed run raises WebhookFailed, rendered in the error shape."""
    if result.replayed is not None:
        return _replayed(result.replayed, result.async_mode)
    run = result.run
    assert run is not None
    headers = {"X-Execution-ID": run.execution_id}
    if result.outcome is None:
        location = f"/api/v1/executions/{run.execution_id}"
        body = {
            "plugin": run.plugin_name,
            "method": run.method,
            "status_code": 202,
            "message": "Accepted: the run continues in the background; poll "
            "status_url for its record",
            "timestamp": rfc3339(run.start_time),
            "request_id": run.trace_id,
            "execution_id": run.execution_id,
            "trace_id": run.trace_id,
            "status_url": location,
        }
        return body, 202, {**headers, "Location": location}
    outcome = result.outcome
    if outcome.status is Status.COMPLETED:
        return _response_fields(run, outcome, 200, "Plugin executed successfully"), 200, headers
    code = _FAILURE_STATUS.get(outcome.status, 500)
    error = outcome.error
    if outcome.status is Status.TIMEOUT:
        message = message_of(error) if error else "timeout"
    else:
        text = described(error) if error else "unknown error"
        message = f"Plugin '{run.plugin_name}' failed: {text}"
    fields = _response_fields(run, outcome, code, message)
    fields.update(error=message_of(error) if error else "", error_type=outcome.error_type)
    if code == 503:
        headers["Retry-After"] = str(current_app.extensions["bridge.config"].runner.retry_after)
    raise WebhookFailed(code, message, fields, headers)


def _response_fields(run: Run, outcome: Outcome, code: int, message: str) -> dict:
    return {
        "plugin": run.plugin_name,
        "method": run.method,
        "status_code": code,
        "message": message,
        "execution_time": round(outcome.duration / 1e9, 6),
        "timestamp": rfc3339(outcome.end_time),
        "data": outcome.result,
        "request_id": run.trace_id,
        "execution_id": run.execution_id,
        "trace_id": run.trace_id,
        "attempts": len(outcome.attempts),
    }


def _replayed(replay: Replay, async_mode: bool) -> tuple[dict, int, dict]:
    """The first run's answer, as its idempotency claim keeps it, for a repeat."""
    location = f"/api/v1/executions/{replay.execution_id}"
    headers = {"X-Execution-ID": replay.execution_id, "Idempotent-Replayed": "true"}
    body: dict[str, Any] = {
        "plugin": replay.plugin,
        "method": replay.method,
        "replayed": True,
        "request_id": replay.trace_id,
        "execution_id": replay.execution_id,
        "trace_id": replay.trace_id,
    }
    if async_mode or not replay.finished:
        body.update(
            status_code=202,
            status_url=location,
            message="Replayed: this delivery was already accepted; poll status_url",
            timestamp=rfc3339(replay.start_time),
        )
        return body, 202, {**headers, "Location": location}
    try:
        data = json.loads(replay.output) if replay.output else None
    except ValueError:
        data = None
    body.update(
        status_code=200,
        data=data if isinstance(data, dict) else None,
        message="Replayed: this delivery was already processed; this is the first run's result",
        execution_time=round(replay.duration / 1e9, 6),
        attempts=replay.attempts,
        timestamp=rfc3339(replay.end_time or replay.start_time),
    )
    return body, 200, headers


_ANSWERS: dict[int, tuple[Any, str]] = {
    202: (WebhookResponseSchema, "Accepted (async mode)"),
    400: (ErrorSchema, ""),
    401: (ErrorSchema, _SIGNATURE_401),
    404: (ErrorSchema, "Unknown plugin"),
    405: (ErrorSchema, "Method the plugin does not handle"),
    409: (ErrorSchema, _IN_PROGRESS_409),
    413: (ErrorSchema, "Body over server.max_body_size"),
    415: (ErrorSchema, "Body neither JSON nor form fields"),
    429: (ErrorSchema, _BUSY_429),
    500: (WebhookErrorSchema, "The plugin failed"),
    503: (WebhookErrorSchema, "Runner saturated"),
    504: (WebhookErrorSchema, "The plugin timed out"),
}


def _answers(*codes: int, bad: str) -> list[Callable[[Any], Any]]:
    return [
        blp.alt_response(code, schema=_ANSWERS[code][0], description=_ANSWERS[code][1] or bad)
        for code in codes
    ]


def documented(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """flask-smorest decorators applied for the OpenAPI document only.

    The webhook route is the hot path: each decorator adds a wrapper per call, the query
    schema is built per call, and the response is dumped through marshmallow. The view
    validates its few control parameters itself (parse_query) and answers with JSON it
    builds (_json); the document is the same as with the decorators applied."""

    def decorator(func: Any) -> Any:
        probe = func
        for apply in reversed(decorators):
            probe = apply(probe)
        func._apidoc = probe._apidoc
        return func

    return decorator


def _json(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    text = json.dumps(body, default=str, separators=(",", ":"))
    return Response(text, status, headers, mimetype="application/json")


@blp.route("/<plugin>")
class WebhookView(MethodView):
    """Every method runs the same way; the plugin decides which methods it handles."""

    def _answer(self, plugin_name: str) -> Response:
        """A large body first waits for room in the body budget (503 after the plugin
        timeout); then the delivery, and its answer as JSON."""
        # The objects behind Flask's proxies, looked up once (each proxy access is one).
        req, ext = request._get_current_object(), current_app.extensions
        budget: BodyBudget = ext["bridge.body_budget"]
        dispatcher: Dispatcher = ext["bridge.dispatcher"]
        g.trace_id = trace_id = trace_id_from(req.environ)
        with budget.hold(req.content_length, float(ext["bridge.config"].plugins.timeout)):
            delivery = delivery_from_request(req, ext, plugin_name, trace_id)
            return _json(*answer(dispatcher.deliver(delivery)))

    @documented(
        blp.arguments(WebhookQuerySchema, location="query"),
        blp.response(200, WebhookResponseSchema),
        *_answers(202, 400, 401, 404, 405, 409, 429, 500, 503, 504, bad="Invalid tag"),
    )
    def get(self, plugin: str) -> Response:
        """Run a plugin with the query parameters as its data."""
        return self._answer(plugin)

    @documented(
        blp.arguments(WebhookQuerySchema, location="query"),
        blp.response(200, WebhookResponseSchema),
        *_answers(
            202,
            400,
            401,
            404,
            405,
            409,
            413,
            415,
            429,
            500,
            503,
            504,
            bad="Malformed or non-object JSON, or an invalid tag",
        ),
        blp.doc(requestBody=REQUEST_BODY),
    )
    def post(self, plugin: str) -> Response:
        """Run a plugin with the JSON object (or form fields) and query parameters."""
        return self._answer(plugin)

    put = post
    patch = post
    delete = get


@blp.after_request
def _trace_header(response: Response) -> Response:
    trace_id = g.get("trace_id")
    if trace_id:
        response.headers["X-Request-ID"] = trace_id
    return response
