"""A JSON POST with a timeout, shared by the webhook and Slack channels."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from bridge import __version__
from bridge.errors import DeliveryError


def post_json(
    url: str, payload: Any, timeout: float, headers: Mapping[str, str] | None = None
) -> bytes:
    """POST `payload` as JSON; the body sent. A non-2xx answer, a refused connection or
    a timeout raises DeliveryError."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    return post_body(url, body, timeout, headers)


def post_body(
    url: str, body: bytes, timeout: float, headers: Mapping[str, str] | None = None
) -> bytes:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": f"webhook-bridge/{__version__}",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(65536)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"{_where(url)} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{_where(url)} could not be reached: {reason}") from None
    return body


def _where(url: str) -> str:
    """The receiver as an error names it: its scheme, host and port. A URL's path and
    query may be its secret (a Slack webhook's token), and errors are logged and kept
    in the alert events that a read-only key may list."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}/..."
