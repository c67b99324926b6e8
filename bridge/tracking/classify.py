"""Error classification: an exception's type first, then its message.

Values: timeout, connection_error, permission_denied, validation_error, not_found,
unauthorized, forbidden, interrupted, unknown_error.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import re
import socket
import ssl
import urllib.error

from bridge.errors import PluginReportedError, PluginTimeout
from bridge.model import ERROR_TYPES

# Class names of popular HTTP clients' errors, matched along the MRO so the bridge
# need not import requests, httpx or urllib3 to recognise them.
_NAME_RULES: tuple[tuple[str, str], ...] = (
    ("Timeout", "timeout"),
    ("TimeoutError", "timeout"),
    ("ReadTimeout", "timeout"),
    ("ConnectTimeout", "timeout"),
    ("ConnectionError", "connection_error"),
    ("ConnectError", "connection_error"),
    ("NewConnectionError", "connection_error"),
    ("MaxRetryError", "connection_error"),
    ("ProtocolError", "connection_error"),
    ("RemoteProtocolError", "connection_error"),
    ("ValidationError", "validation_error"),
    ("DoesNotExist", "not_found"),
    ("NotFound", "not_found"),
    ("NotFoundError", "not_found"),
    ("Unauthorized", "unauthorized"),
    ("AuthenticationError", "unauthorized"),
    ("Forbidden", "forbidden"),
    ("PermissionDenied", "permission_denied"),
)

_MESSAGE_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind)
    for pattern, kind in (
        (r"time[d\s-]*out|deadline exceeded", "timeout"),
        (r"\b401\b|unauthori[sz]ed|authentication (failed|required)", "unauthorized"),
        (r"\b403\b|forbidden", "forbidden"),
        (r"permission denied|access denied|not permitted", "permission_denied"),
        (
            r"connection (refused|reset|aborted|error)|could not connect|name or service not "
            r"known|network is unreachable|broken pipe|host unreachable",
            "connection_error",
        ),
        (r"\b404\b|not found|no such", "not_found"),
        (r"invalid|validation|malformed|required field|must be", "validation_error"),
    )
)


def _status_code(exc: BaseException) -> int | None:
    """An HTTP status carried by a client library's error (requests, httpx, urllib)."""
    for holder in (exc, getattr(exc, "response", None)):
        for attr in ("status_code", "status", "code"):
            value = getattr(holder, attr, None)
            if isinstance(value, int) and 100 <= value <= 599:
                return value
    return None


# A plugin may name its own error types: words, as the built-in ones are. Anything else
# (a number, a list, a sentence) would be a stats row, a Prometheus label and a filter
# value that nobody could type; its message is classified instead.
_WORD = r"[a-z][a-z0-9_]{0,63}"
OWN_ERROR_TYPE = f"^{_WORD}$"  # as the API documents it
_OWN_ERROR_TYPE = re.compile(_WORD)
# What an error type may be, as the API, the CLI and the alert rules say it.
ERROR_TYPE_RULE = (
    f"one of {', '.join(ERROR_TYPES)}, or a type a plugin names (lowercase letters, "
    "digits and _, starting with a letter, at most 64)"
)


def is_error_type(value: object) -> bool:
    """Whether `value` is an error type: a built-in one or one a plugin may name. The
    whole string (with `re.match`, the `$` of OWN_ERROR_TYPE takes "timeout\\n" too)."""
    return isinstance(value, str) and _OWN_ERROR_TYPE.fullmatch(value) is not None


def classify(exc: BaseException) -> str:
    """The error_type for an exception raised by (or on behalf of) a plugin."""
    if isinstance(exc, PluginReportedError) and exc.error_type:
        named = exc.error_type
        if is_error_type(named):
            return named
        return classify_message(message_of(exc))
    if isinstance(
        exc, PluginTimeout | TimeoutError | socket.timeout | concurrent.futures.TimeoutError
    ):
        return "timeout"
    status = _status_code(exc)
    if status == 401:
        return "unauthorized"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    if isinstance(
        exc, ConnectionError | socket.gaierror | ssl.SSLError | http.client.HTTPException
    ) or (isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError)):
        return "connection_error"
    if isinstance(exc, PermissionError):
        return "permission_denied"
    if isinstance(exc, FileNotFoundError):
        return "not_found"
    if isinstance(exc, KeyError | ValueError | TypeError):
        return "validation_error"
    for cls in type(exc).__mro__:
        for name, kind in _NAME_RULES:
            if cls.__name__ == name:
                return kind
    return classify_message(message_of(exc))


def message_of(exc: BaseException) -> str:
    """str(exc), or a stand-in when the plugin's exception cannot say what it is (its
    __str__ raised): the run still ends as a failure with a record."""
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose message could not be read>"


def described(exc: BaseException) -> str:
    """'ValueError: bad input', as a traceback's last line has it."""
    return f"{type(exc).__name__}: {message_of(exc)}"


def classify_message(message: str) -> str:
    for pattern, kind in _MESSAGE_RULES:
        if pattern.search(message):
            return kind
    return "unknown_error"
