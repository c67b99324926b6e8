"""The API's one error shape, produced here for every route and every status.

`{"code": 404, "status": "Not Found", "message": "...", "errors": {field: [...]}}`;
`errors` only where fields were invalid. Webhook failures add their result fields.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from bridge.errors import BridgeError

log = logging.getLogger(__name__)

_DEFAULT_MESSAGES = {
    400: "The request could not be understood.",
    404: "Nothing is at this URL. The API lives under /api/v1; see /docs.",
    405: "This URL does not accept that HTTP method.",
    413: "The request body is larger than server.max_body_size allows.",
    415: "The request body's content type is not supported.",
    422: "Some request parameters are invalid.",
    500: "The server hit an unexpected error; the logs have the details.",
}


def error_response(
    code: int,
    message: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = "Error"
    payload: dict[str, Any] = {
        "code": code,
        "status": phrase,
        "message": message or _DEFAULT_MESSAGES.get(code, phrase),
    }
    if errors:
        payload["errors"] = errors
    for key, value in extra.items():
        payload.setdefault(key, value)
    response = jsonify(payload)
    response.status_code = code
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages: Any) -> dict[str, Any]:
    """webargs nests errors by location ({"query": {"limit": [...]}}): key them by field."""
    if not isinstance(messages, dict):
        return {"_schema": messages if isinstance(messages, list) else [str(messages)]}
    flat: dict[str, Any] = {}
    for location, fields in messages.items():
        if location in {"query", "json", "form", "headers", "view_args", "path"} and isinstance(
            fields, dict
        ):
            flat.update(fields)
        else:
            flat[location] = fields
    return flat


def handle_http_exception(error: HTTPException) -> Response:
    code = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = None
    if "errors" in data:
        errors = _flatten(data["errors"])
    elif "messages" in data:
        errors = _flatten(data["messages"])
    message = data.get("message")
    if message is None and errors and code == 422:
        message = f"Invalid request parameters: {', '.join(sorted(errors))}."
    custom = error.description != type(error).description  # one the bridge wrote
    if message is None and (custom or code not in _DEFAULT_MESSAGES) and error.description:
        message = error.description
    headers = dict(data.get("headers") or {})
    if code == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    return error_response(code, message, errors, headers)


def handle_bridge_error(error: BridgeError) -> Response:
    extra = dict(error.extra)
    errors = extra.pop("errors", None)
    return error_response(error.http_status, error.message, errors, error.headers, **extra)


def handle_unexpected(error: Exception) -> Response:
    log.exception("Unhandled error: %s", error)
    return error_response(500)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(BridgeError, handle_bridge_error)
    app.register_error_handler(Exception, handle_unexpected)
