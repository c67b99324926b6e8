"""The Slack channel: an incoming-webhook message (`text`, with optional `channel` and
`username`), which Mattermost and Rocket.Chat accept too."""

from __future__ import annotations

from typing import Any

from bridge.alerts.channels.http import post_json
from bridge.alerts.message import Notification
from bridge.alerts.rules import Channel

_ICON = {"fired": ":rotating_light:", "reminded": ":bell:", "resolved": ":white_check_mark:"}


def message(channel: Channel, n: Notification) -> dict[str, Any]:
    icon = _ICON.get(n.kind, ":information_source:")
    payload: dict[str, Any] = {"text": f"{icon} *{n.title}*\n{n.summary}\n<{n.link}|The runs>"}
    for key in ("channel", "username"):
        if channel.settings.get(key):
            payload[key] = channel.settings[key]
    return payload


def send(channel: Channel, n: Notification, timeout: float) -> None:
    post_json(channel.settings["url"], message(channel, n), timeout)
