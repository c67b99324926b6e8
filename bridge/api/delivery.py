"""The delivery an HTTP request makes: its raw body (for the signature check), the
plugin's data parsed from it, the query parameters, tags, trace id and client address.

Everything here reads the request and checks it as the OpenAPI document says; bad
input raises the bridge's errors (400, 413, 415, 422), rendered in the one error shape.
The request and the app's extensions are passed in, and the headers read from the WSGI
environ: each of Flask's context proxies (`request.x`, `current_app.x`) costs a lookup
of its own, ~30 on this path per webhook before.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import json
import math
import re
from typing import Any

from flask import Request, g
from flask_smorest import abort
from marshmallow import ValidationError
from werkzeug.datastructures import Headers
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from bridge.api.schemas import WebhookQuerySchema
from bridge.errors import BadPayload, TooManyFields
from bridge.model import Delivery
from bridge.tracking.ids import uuid7

RESERVED_QUERY = ("async", "tag")


_API_KEYS = ("authorization", "x-api-key")


MAX_TAGS = 20


_TRACE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")


_TAG = re.compile(r"\s*([^:=\s][^:=]*?)\s*[:=]\s*(.*?)\s*")


_QUERY = WebhookQuerySchema()


def trace_id_from(environ: dict[str, Any]) -> str:
    """The caller's X-Request-ID / X-Trace-ID, or W3C traceparent's trace id, or a new one."""
    for name in ("HTTP_X_REQUEST_ID", "HTTP_X_TRACE_ID"):
        value = (environ.get(name) or "").strip()
        if value and _TRACE_ID.fullmatch(value):
            return value
    match = _TRACEPARENT.fullmatch((environ.get("HTTP_TRACEPARENT") or "").strip().lower())
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
                ip = ipaddress.ip_address(hop)
            except ValueError:
                return addr
            # Without an IPv6 zone ("%eth0"): the sender's zone names an interface of
            # the sender's, and it may be any length.
            return str(ip if getattr(ip, "scope_id", None) is None else type(ip)(int(ip)))
        addr = hop
    return addr


def _tag_value(value: Any) -> str:
    """A JSON tag value as a tag's text: a string as it is, a number, true, false or
    null as JSON writes it (not as Python would: True, None)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        raise BadPayload("X-Bridge-Tags values must be strings, numbers, booleans or null")
    return json.dumps(value)


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
            items += [f"{k}:{_tag_value(v)}" for k, v in parsed.items()]
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


def raw_body(req: Request, ext: dict[str, Any]) -> bytes:
    """The request body, whole; the form parser reads these cached bytes too. A chunked
    body (no Content-Length) may be server.max_body_size bytes long, as one with
    Content-Length may: it is read up to one byte more, and a body with that byte is
    413. Once read, it is counted in the body budget, as one with Content-Length was
    before it was read."""
    if req.content_length is not None:
        return req.get_data(cache=True)
    if "chunked_body" not in g:
        limit = req.max_content_length
        if limit is not None:
            req.max_content_length = limit + 1
        raw = req.get_data(cache=True)
        if limit is not None and len(raw) > limit:
            raise RequestEntityTooLarge()
        ext["bridge.body_budget"].count(len(raw))
        g.chunked_body = raw
    return g.chunked_body


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):  # 1e999: Infinity by another name
        raise ValueError(f"{literal[:40]} is beyond the range of a number")
    return number


def loads_json(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN and Infinity, which Python's json module accepts
    and would echo back into answers no JSON parser reads, are refused, and so is a
    number too large for a float (1e999), which Python reads as Infinity."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def _fields(multi: Any) -> dict[str, Any]:
    return {
        key: values[0] if len(values) == 1 else values
        for key, values in ((k, multi.getlist(k)) for k in multi)
        if key not in RESERVED_QUERY
    }


def query_data(req: Request, ext: dict[str, Any]) -> dict[str, Any]:
    """The query parameters that are the plugin's (all but `async` and `tag`), at most
    `server.max_form_fields` of them (400 past it)."""
    if not req.query_string:
        return {}
    limit = ext["bridge.config"].server.max_form_fields
    if req.query_string.count(b"&") >= limit:
        raise BadPayload(f"Too many query parameters: at most {limit} (server.max_form_fields)")
    return _fields(req.args)


def _form(req: Request, ext: dict[str, Any], mimetype: str) -> Any:
    """The body's form fields. Werkzeug's own parse (request.form) turns a body it
    cannot read into no fields at all: the plugin ran with {}."""
    raw = raw_body(req, ext)
    parser = req.make_form_data_parser()
    parser.silent = False
    try:
        _, form, _ = parser.parse(io.BytesIO(raw), mimetype, len(raw), req.mimetype_params)
    except UnicodeDecodeError:
        raise BadPayload("The request body is not valid UTF-8") from None
    except ValueError as exc:  # a multipart body without its boundary, or cut short
        raise BadPayload(f"The form body could not be read: {exc}") from None
    return form


def parse_payload(req: Request, ext: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The body as the plugin's data: a JSON object or form fields (at most
    `server.max_form_fields`, 413 past it); and the body's JSON text when it can be
    stored as it came (no `\\u` escapes, which could hide a field to redact)."""
    mimetype = req.mimetype
    encoding = (req.environ.get("HTTP_CONTENT_ENCODING") or "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(
            f"Unsupported Content-Encoding {encoding[:40]!r}: send the body uncompressed"
        )
    if mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        limit = ext["bridge.config"].server.max_form_fields
        # Counted before parsing: a million fields cost seconds of CPU to parse.
        if mimetype.endswith("urlencoded") and raw_body(req, ext).count(b"&") >= limit:
            raise TooManyFields(limit)
        req.max_form_parts = limit
        return _fields(_form(req, ext, mimetype)), None
    raw = raw_body(req, ext)
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


def delivery_from_request(
    req: Request, ext: dict[str, Any], plugin: str, trace_id: str
) -> Delivery:
    """The delivery this request makes: its raw body for the signature check, and
    `parse_payload` to read the plugin's data once the signature is checked."""
    body = raw_body(req, ext)  # before anything parses it or checks its signature
    env = req.environ
    control = parse_query(req)
    async_mode = bool(control.get("async_")) or "respond-async" in env.get("HTTP_PREFER", "")
    headers = req.headers
    if ext["bridge.auth"].protect_webhooks:
        # The caller's API key was the bridge's to check, not the plugin's to see.
        headers = Headers([(k, v) for k, v in headers.items() if k.lower() not in _API_KEYS])
    return Delivery(
        plugin=plugin,
        method=req.method,
        parse=functools.partial(parse_payload, req, ext),
        body=body,
        query=query_data(req, ext),
        headers=headers,
        trace_id=trace_id,
        user_agent=env.get("HTTP_USER_AGENT", "")[:512],
        remote_ip=client_ip(
            req.remote_addr, env.get("HTTP_X_FORWARDED_FOR"), ext["bridge.trusted_proxies"]
        ),
        tags=parse_tags(env.get("HTTP_X_BRIDGE_TAGS"), control.get("tag") or []),
        metadata={
            "content_type": req.mimetype or "",
            "content_length": req.content_length or 0,
            "async": async_mode,
        },
        async_mode=async_mode,
    )


def parse_query(req: Request) -> dict[str, Any]:
    """The control parameters (`async`, `tag`), validated as the document says; every
    other query parameter is the plugin's."""
    args = req.args
    if "async" not in args and "tag" not in args:
        return {}
    present = {
        key: args.getlist(key) if key == "tag" else args[key]
        for key in RESERVED_QUERY
        if key in args
    }
    try:
        return _QUERY.load(present)
    except ValidationError as exc:
        abort(422, errors={"query": exc.messages})
