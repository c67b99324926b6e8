"""Alert channels, one module each: `send(channel, notification, timeout)` delivers one
notification or raises DeliveryError saying why."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from bridge.alerts.message import Notification
from bridge.alerts.rules import Channel

Sender = Callable[[Channel, Notification, float], None]


def sender(kind: str) -> Sender:
    from bridge.alerts.channels import email, log, slack, webhook

    modules: dict[str, ModuleType] = {
        "webhook": webhook,
        "slack": slack,
        "email": email,
        "log": log,
    }
    return modules[kind].send
