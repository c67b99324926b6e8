"""Webhook routes: `/api/v1/webhook/<plugin>` runs the plugin and answers with its result."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from marshmallow import ValidationError
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from bridge.api.body_budget import BodyBudget
from bridge.api.schemas import (
    ErrorSchema,
    WebhookErrorSchema,
    WebhookQuerySchema,
    WebhookResponseSchema,
    rfc3339,
)
from bridge.dispatcher import Dispatcher, Result
from bridge.errors import BadPayload, TooManyFields, WebhookFailed
from bridge.model import Delivery, Outcome, Replay, Run, Status
from bridge.tracking.ids import uuid7

blp = Blueprint(
    "webhook",
    __name__,
    url_prefix="/api/v1/webhook",
    description="Run a plugin: the request's data goes in, its result comes out.",
)

RESERVED_QUERY = ("async", "tag")
_API_KEYS = ("authorization", "x-api-key")
MAX_TAGS = 20
_TRACE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_TAG = re.compile(r"\s*([^:=\s][^:=]*?)\s*[:=]\s*(.*?)\s*")
_FAILURE_STATUS = {Status.TIMEOUT: 504, Status.CANCELED: 503}
_SIGNATURE_401 = "Missing or invalid webhook signature (plugins with a signature setting)"
_IN_PROGRESS_409 = "A delivery with the same idempotency key is still running"
_BUSY_429 = "The plugin runs max_concurrency deliveries already; see Retry-After"
_QUERY = WebhookQuerySchema()
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


def trace_id_from(headers: Any) -> str:
    """The caller's X-Request-ID / X-Trace-ID, or W3C traceparent's trace id, or a new one."""
    for name in ("X-Request-ID", "X-Trace-ID"):
        value = (headers.get(name) or "").strip()
        if value and _TRACE_ID.fullmatch(value):
            return value
    match = _TRACEPARENT.fullmatch((headers.get("traceparent") or "").strip().lower())
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    return uuid7().hex


def client_ip(
    remote_addr: str | None,
    forwarded_for: str | None,
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The client's address, believing X-Forwarded-For only when sent by a trusted proxy."""

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr.strip())
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    addr = remote_addr or ""
    if not forwarded_for or not is_trusted(addr):
        return addr
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return addr
        addr = hop
    return addr


def parse_tags(header: str | None, query_tags: list[str]) -> dict[str, str]:
    """Tags from `X-Bridge-Tags` (JSON object or `k:v, k2=v2`) and `?tag=k:v`."""
    tags: dict[str, str] = {}
    items: list[str] = []
    if header:
        header = header.strip()
        if header.startswith("{"):
            try:
                parsed = loads_json(header)
            except ValueError:
                raise BadPayload("X-Bridge-Tags is not a JSON object") from None
            if not isinstance(parsed, dict):
                raise BadPayload("X-Bridge-Tags is not a JSON object")
            items += [f"{k}:{v}" for k, v in parsed.items()]
        else:
            items += [part for part in header.split(",") if part.strip()]
    items += query_tags
    for item in items:
        match = _TAG.fullmatch(item)
        if not match or len(match.group(1)) > 64 or len(match.group(2)) > 256:
            raise BadPayload(
                f"Invalid tag {item[:80]!r}: use key:value (key up to 64 "
                "characters, value up to 256)"
            )
        tags[match.group(1)] = match.group(2)
    if len(tags) > MAX_TAGS:
        raise BadPayload(f"Too many tags: at most {MAX_TAGS}")
    return tags


def raw_body() -> bytes:
    """The request body, whole; the form parser reads these cached bytes too. A chunked
    body (no Content-Length) may be server.max_body_size bytes long, as one with
    Content-Length may: it is read up to one byte more, and a body with that byte is
    413. Once read, it is counted in the body budget, as one with Content-Length was
    before it was read."""
    if request.content_length is not None:
        return request.get_data(cache=True)
    if "chunked_body" not in g:
        limit = request.max_content_length
        if limit is not None:
            request.max_content_length = limit + 1
        raw = request.get_data(cache=True)
        if limit is not None and len(raw) > limit:
            raise RequestEntityTooLarge()
        current_app.extensions["bridge.body_budget"].count(len(raw))
        g.chunked_body = raw
    return g.chunked_body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads_json(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity, which Python's json module accepts
    and would echo back into answers no JSON parser reads, are refused."""
    return json.loads(text, parse_constant=_no_constant)


def _fields(multi: Any) -> dict[str, Any]:
    return {
        key: values[0] if len(values) == 1 else values
        for key, values in ((k, multi.getlist(k)) for k in multi)
        if key not in RESERVED_QUERY
    }


def query_data() -> dict[str, Any]:
    """The query parameters that are the plugin's (all but `async` and `tag`), at most
    `server.max_form_fields` of them (400 past it)."""
    if not request.query_string:
        return {}
    limit = current_app.extensions["bridge.config"].server.max_form_fields
    if request.query_string.count(b"&") >= limit:
        raise BadPayload(f"Too many query parameters: at most {limit} (server.max_form_fields)")
    return _fields(request.args)


def parse_payload() -> tuple[dict[str, Any], str | None]:
    """The body as the plugin's data: a JSON object or form fields (at most
    `server.max_form_fields`, 413 past it); and the body's JSON text when it can be
    stored as it came (no `\\u` escapes, which could hide a field to redact)."""
    mimetype = request.mimetype
    if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        limit = current_app.extensions["bridge.config"].server.max_form_fields
        # Counted before parsing: a million fields cost seconds of CPU to parse.
        if mimetype.endswith("urlencoded") and raw_body().count(b"&") >= limit:
            raise TooManyFields(limit)
        request.max_form_parts = limit
        return _fields(request.form), None
    raw = raw_body()
    if not raw.strip():
        return {}, None
    if mimetype and not (
        mimetype == "application/json" or mimetype.endswith("+json") or mimetype == "text/plain"
    ):
        raise UnsupportedMediaType(
            f"Unsupported content type {mimetype!r}: send JSON (application/json) or form fields"
        )
    try:
        text = raw.decode("utf-8")
        body = loads_json(text)
    except UnicodeDecodeError:
        raise BadPayload("The request body is not valid UTF-8") from None
    except RecursionError:
        raise BadPayload("The JSON body is nested too deeply") from None
    except ValueError as exc:
        raise BadPayload(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadPayload(f"The JSON body must be an object, not {type(body).__name__}")
    return body, (None if "\\u" in text else text.strip())


def _wants_async() -> bool:
    return bool(parse_query().get("async_")) or "respond-async" in request.headers.get("Prefer", "")


def delivery_from_request(plugin: str) -> Delivery:
    """The delivery this request makes: its raw body for the signature check, and
    `parse_payload` to read the plugin's data once the signature is checked."""
    body = raw_body()  # before anything parses it or checks its signature
    async_mode = _wants_async()
    headers = request.headers
    if current_app.extensions["bridge.auth"].protect_webhooks:
        # The caller's API key was the bridge's to check, not the plugin's to see.
        headers = Headers([(k, v) for k, v in headers.items() if k.lower() not in _API_KEYS])
    return Delivery(
        plugin=plugin,
        method=request.method,
        parse=parse_payload,
        body=body,
        query=query_data(),
        headers=headers,
        trace_id=g.trace_id,
        user_agent=request.headers.get("User-Agent", "")[:512],
        remote_ip=client_ip(
            request.remote_addr,
            request.headers.get("X-Forwarded-For"),
            current_app.extensions["bridge.trusted_proxies"],
        ),
        tags=parse_tags(request.headers.get("X-Bridge-Tags"), parse_query().get("tag") or []),
        metadata={
            "content_type": request.mimetype or "",
            "content_length": request.content_length or 0,
            "async": async_mode,
        },
        async_mode=async_mode,
    )


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
        message = str(error)
    else:
        text = f"{type(error).__name__}: {error}" if error else "unknown error"
        message = f"Plugin '{run.plugin_name}' failed: {text}"
    fields = _response_fields(run, outcome, code, message)
    fields.update(error=str(error) if error else "", error_type=outcome.error_type)
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


def parse_query() -> dict[str, Any]:
    """The control parameters (`async`, `tag`), validated as the document says; every
    other query parameter is the plugin's."""
    args = request.args
    if "async" not in args and "tag" not in args:
        return {}
    if "webhook_query" in g:
        return g.webhook_query
    present = {
        key: args.getlist(key) if key == "tag" else args[key]
        for key in RESERVED_QUERY
        if key in args
    }
    try:
        g.webhook_query = _QUERY.load(present)
    except ValidationError as exc:
        abort(422, errors={"query": exc.messages})
    return g.webhook_query


def _json(body: dict[str, Any], status: int, headers: dict[str, str]) -> Response:
    text = json.dumps(body, default=str, separators=(",", ":"))
    return current_app.response_class(text, status, headers, mimetype="application/json")


@blp.route("/<plugin>")
class WebhookView(MethodView):
    """Every method runs the same way; the plugin decides which methods it handles."""

    def _answer(self, plugin_name: str) -> Response:
        """A large body first waits for room in the body budget (503 after the plugin
        timeout); then the delivery, and its answer as JSON."""
        ext = current_app.extensions
        budget: BodyBudget = ext["bridge.body_budget"]
        dispatcher: Dispatcher = ext["bridge.dispatcher"]
        g.trace_id = trace_id_from(request.headers)
        with budget.hold(request.content_length, float(ext["bridge.config"].plugins.timeout)):
            return _json(*answer(dispatcher.deliver(delivery_from_request(plugin_name))))

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
