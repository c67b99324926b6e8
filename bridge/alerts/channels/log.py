"""The log channel: one structured line (key=value fields) on the `bridge.alerts`
logger, which the JSON log format carries as its message."""

from __future__ import annotations

import logging

from bridge.alerts.message import Notification
from bridge.alerts.rules import Channel

log = logging.getLogger("bridge.alerts")


def line(n: Notification) -> str:
    fields = n.to_json()
    keys = ("rule", "plugin", "severity", "metric", "value", "threshold", "window_seconds")
    parts = [f"{k}={fields[k]}" for k in keys]
    parts += [f"since={fields['since'] or '-'}", f"link={fields['link']}"]
    return f"Alert {fields['event']}: " + " ".join(parts)


def send(channel: Channel, n: Notification, timeout: float) -> None:
    level = logging.getLevelName(str(channel.settings.get("level", "WARNING")).upper())
    log.log(level, "%s", line(n))
