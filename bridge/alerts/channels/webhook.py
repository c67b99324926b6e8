"""The webhook channel: the notification's JSON POSTed to a URL, signed with Standard
Webhooks headers (webhook-id, webhook-timestamp, webhook-signature) when the channel
has a `secret` (whsec_<base64>, as the receiver's library makes them)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

from bridge.alerts.channels.http import post_body
from bridge.alerts.message import Notification
from bridge.alerts.rules import Channel


def signature_headers(secret: str, body: bytes, msg_id: str, timestamp: int) -> dict[str, str]:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{base64.b64encode(signed).decode()}",
    }


def send(channel: Channel, n: Notification, timeout: float) -> None:
    body = json.dumps(n.to_json(), ensure_ascii=False).encode()
    headers = {str(k): str(v) for k, v in dict(channel.settings.get("headers") or {}).items()}
    secret = channel.settings.get("secret")
    if secret:
        headers.update(signature_headers(secret, body, f"msg_{uuid.uuid4().hex}", int(time.time())))
    post_body(channel.settings["url"], body, timeout, headers)
