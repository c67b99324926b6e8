"""The answers the worker writes itself, without a thread or a view: gunicorn's own
errors (400, 414, 431, ...), 408, 413 and 429, in the API's one error shape
(`bridge.api.errors`), as bytes for a socket."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask import Flask, Response
from gunicorn import util

from bridge.api.errors import error_response, handle_bridge_error
from bridge.errors import BridgeError


def http_bytes(response: Response) -> bytes:
    """`response` as an HTTP/1.1 message that closes the connection."""
    body = response.get_data()
    phrase = HTTPStatus(response.status_code).phrase
    lines = [f"HTTP/1.1 {response.status_code} {phrase}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "content-length"]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def error_bytes(app: Flask, status: int, message: str | None = None) -> bytes:
    with app.app_context():
        return http_bytes(error_response(status, message))


def bridge_error_bytes(app: Flask, error: BridgeError) -> bytes:
    with app.app_context():
        return http_bytes(handle_bridge_error(error))


def json_error_writer(app: Flask) -> Callable[[Any, int, str, str], None]:
    """A replacement for gunicorn's `util.write_error` (an HTML page): the error shape."""

    def write_error(sock: Any, status: int, reason: str, message: str) -> None:
        util.write_nonblock(sock, error_bytes(app, status, message or None))

    return write_error
