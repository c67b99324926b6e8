"""A JSON POST with a timeout, shared by the webhook and Slack channels."""

from __future__ import annotations

import json
import urllib.error
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
        raise DeliveryError(f"{url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{url} could not be reached: {reason}") from None
    return body
