"""Alert rules and channels as config writes them (`alerts.rules`, `alerts.channels`),
checked once at start-up: each error is one line naming the rule (or channel) and key."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.config.values import parse_duration, resolve_env
from bridge.errors import ConfigError
from bridge.tracking.classify import ERROR_TYPE_RULE, is_error_type

METRICS = (
    "failure_rate",
    "error_count",
    "p95_duration",
    "p99_duration",
    "consecutive_failures",
    "no_runs",
    "new_error_group",
)
DURATION_METRICS = ("p95_duration", "p99_duration")
SEVERITIES = ("info", "warning", "critical")
CHANNEL_TYPES = ("webhook", "slack", "email", "log")
EMAIL_SECURITY = ("starttls", "ssl", "none")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_RULE_KEYS = {
    "name",
    "plugin",
    "metric",
    "window",
    "threshold",
    "min_runs",
    "for",
    "severity",
    "channels",
    "repeat",
    "resolve_after",
    "error_type",
}
_CHANNEL_KEYS: dict[str, set[str]] = {
    "webhook": {"type", "url", "secret", "headers"},
    "slack": {"type", "url", "channel", "username"},
    "email": {
        "type",
        "host",
        "port",
        "security",
        "username",
        "password",
        "from",
        "to",
    },
    "log": {"type", "level"},
}


@dataclass(frozen=True)
class Rule:
    """One rule: `metric` of `plugin` (a name, or `*` for each plugin separately) over
    the last `window` seconds, against `threshold` (a fraction for failure_rate,
    seconds for durations, a count otherwise)."""

    name: str
    plugin: str
    metric: str
    window: float
    threshold: float
    min_runs: int = 1
    for_: float = 0.0
    severity: str = "warning"
    channels: tuple[str, ...] = ()
    repeat: float = 0.0  # 0: no reminders
    resolve_after: float = 0.0  # how long the condition must stay clear to resolve
    error_type: str = ""

    def breached(self, value: float) -> bool:
        """no_runs fires when the last run is older than the window (value: its age);
        every other metric when its value reaches the threshold."""
        if self.metric == "no_runs":
            return value >= self.window
        return value >= self.threshold


@dataclass(frozen=True)
class Channel:
    name: str
    type: str
    settings: Mapping[str, Any] = field(default_factory=dict)


def _rule_key(i: int, name: Any, key: str) -> str:
    who = name if isinstance(name, str) and _NAME.fullmatch(name) else f"[{i}]"
    return f"alerts.rules.{who}.{key}" if key else f"alerts.rules.{who}"


def _duration(raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
    if raw.get(key) is None:
        return default
    try:
        return parse_duration(raw[key])
    except ValueError:
        raise ConfigError(where, raw[key], "expected a duration such as 30s, 5m or 1h") from None


def _threshold(raw: Mapping[str, Any], metric: str, where: str) -> float:
    value = raw.get("threshold")
    if metric == "no_runs":  # the window is its threshold
        return 0.0
    if value is None:
        raise ConfigError(where, None, "missing: every rule but no_runs needs a threshold")
    if metric in DURATION_METRICS:
        try:
            return parse_duration(value)
        except ValueError:
            raise ConfigError(where, value, "expected a duration such as 2s or 500ms") from None
    if metric == "failure_rate" and isinstance(value, str) and value.strip().endswith("%"):
        try:
            value = float(value.strip()[:-1]) / 100
        except ValueError:
            why = "expected a share such as 0.2 or 20%"
            raise ConfigError(where, raw["threshold"], why) from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(where, value, "expected a number >= 0")
    if metric == "failure_rate" and not 0 < value <= 1:
        raise ConfigError(where, value, "expected a share in (0, 1], such as 0.2 or 20%")
    if metric in ("error_count", "consecutive_failures") and value < 1:
        raise ConfigError(where, value, "expected a count >= 1")
    return float(value)


def parse_rule(i: int, raw: Any, channels: Mapping[str, Channel], error_groups: bool) -> Rule:
    if not isinstance(raw, dict):
        raise ConfigError(f"alerts.rules[{i}]", raw, "expected a mapping with name, metric, ...")
    name = raw.get("name")

    def key(k: str) -> str:
        return _rule_key(i, name, k)

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(key("name"), name, "expected a name of letters, digits, _ . -")
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise ConfigError(key(unknown[0]), raw[unknown[0]], "unknown key")
    plugin = raw.get("plugin", "*")
    if not isinstance(plugin, str) or not plugin.strip():
        raise ConfigError(key("plugin"), plugin, "expected a plugin name or *")
    metric = raw.get("metric")
    if metric not in METRICS:
        raise ConfigError(key("metric"), metric, f"expected one of {', '.join(METRICS)}")
    if metric == "new_error_group" and not error_groups:
        raise ConfigError(
            key("metric"), metric, "needs error groups, which this version does not keep"
        )
    window = _duration(raw, "window", key("window"), 0.0)
    if window <= 0:
        raise ConfigError(key("window"), raw.get("window"), "expected a duration > 0")
    threshold = _threshold(raw, metric, key("threshold"))
    min_runs = raw.get("min_runs", 1)
    if isinstance(min_runs, bool) or not isinstance(min_runs, int) or min_runs < 1:
        raise ConfigError(key("min_runs"), min_runs, "expected a whole number >= 1")
    severity = raw.get("severity", "warning")
    if severity not in SEVERITIES:
        raise ConfigError(key("severity"), severity, f"expected one of {', '.join(SEVERITIES)}")
    names = raw.get("channels", [])
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(key("channels"), names, "expected a list of channel names")
    for n in names:
        if n not in channels:
            known = ", ".join(sorted(channels)) or "none configured"
            raise ConfigError(key("channels"), n, f"no such channel in alerts.channels ({known})")
    error_type = raw.get("error_type", "")
    if error_type and (metric != "error_count" or not is_error_type(error_type)):
        why = (
            "only error_count takes an error_type"
            if metric != "error_count"
            else f"expected {ERROR_TYPE_RULE}"
        )
        raise ConfigError(key("error_type"), error_type, why)
    for_ = _duration(raw, "for", key("for"), 0.0)
    return Rule(
        name=name,
        plugin=plugin.strip(),
        metric=metric,
        window=window,
        threshold=threshold,
        min_runs=min_runs,
        for_=for_,
        severity=severity,
        channels=tuple(names),
        repeat=_duration(raw, "repeat", key("repeat"), 0.0),
        resolve_after=_duration(raw, "resolve_after", key("resolve_after"), for_),
        error_type=error_type,
    )


def parse_channel(name: str, raw: Any, environ: Mapping[str, str]) -> Channel:
    where = f"alerts.channels.{name}"
    if not _NAME.fullmatch(name):
        raise ConfigError(where, name, "expected a name of letters, digits, _ . -")
    if not isinstance(raw, dict):
        raise ConfigError(where, raw, "expected a mapping with a type")
    kind = raw.get("type")
    if kind not in CHANNEL_TYPES:
        raise ConfigError(f"{where}.type", kind, f"expected one of {', '.join(CHANNEL_TYPES)}")
    unknown = sorted(set(raw) - _CHANNEL_KEYS[kind])
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", raw[unknown[0]], f"unknown key for {kind}")
    settings = dict(raw)
    if kind in ("webhook", "slack"):
        url = raw.get("url")
        if isinstance(url, str):  # a Slack URL holds its token: env:NAME keeps it out
            url = resolve_env(url, f"{where}.url", environ)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            shown = raw.get("url") if not isinstance(url, str) or url == raw["url"] else "<env>"
            raise ConfigError(f"{where}.url", shown, "expected an http:// or https:// URL")
        settings["url"] = url
    if kind == "webhook" and raw.get("secret") is not None:
        secret = raw["secret"]
        if not isinstance(secret, str) or not secret.startswith("env:"):
            raise ConfigError(f"{where}.secret", "<hidden>", "write env:NAME, never the secret")
        settings["secret"] = resolve_env(secret, f"{where}.secret", environ)
        try:
            key = base64.b64decode(settings["secret"].removeprefix("whsec_"), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) < 16:
            why = "expected whsec_ and the base64 of at least 16 bytes"
            raise ConfigError(f"{where}.secret", "<hidden>", why)
    if kind == "webhook" and not isinstance(raw.get("headers", {}), dict):
        raise ConfigError(f"{where}.headers", raw["headers"], "expected a mapping")
    if kind == "email":
        _email(where, raw, settings, environ)
    if kind == "log" and raw.get("level", "WARNING").upper() not in (
        "INFO",
        "WARNING",
        "ERROR",
        "CRITICAL",
    ):
        why = "expected INFO, WARNING, ERROR or CRITICAL"
        raise ConfigError(f"{where}.level", raw["level"], why)
    return Channel(name, kind, settings)


def _email(
    where: str, raw: Mapping[str, Any], settings: dict[str, Any], environ: Mapping[str, str]
) -> None:
    if not isinstance(raw.get("host"), str) or not raw["host"].strip():
        raise ConfigError(f"{where}.host", raw.get("host"), "expected the SMTP server's host")
    security = raw.get("security", "starttls")
    if security not in EMAIL_SECURITY:
        raise ConfigError(f"{where}.security", security, "expected starttls, ssl or none")
    port = raw.get("port", 465 if security == "ssl" else 587)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"{where}.port", port, "expected a port number")
    settings.update(security=security, port=port)
    sender = raw.get("from")
    if not isinstance(sender, str) or "@" not in sender:
        raise ConfigError(f"{where}.from", sender, "expected an email address")
    to = raw.get("to")
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(a, str) and "@" in a for a in to):
        raise ConfigError(f"{where}.to", raw.get("to"), "expected a list of email addresses")
    settings["to"] = to
    password = raw.get("password")
    if password is not None:
        if not isinstance(password, str) or not password.startswith("env:"):
            raise ConfigError(f"{where}.password", "<hidden>", "write env:NAME, never the password")
        settings["password"] = resolve_env(password, f"{where}.password", environ)
        if not raw.get("username"):
            raise ConfigError(f"{where}.username", None, "a password needs a username")


def parse(
    channels_raw: Mapping[str, Any],
    rules_raw: list[Any],
    error_groups: bool = False,
    environ: Mapping[str, str] | None = None,
) -> tuple[dict[str, Channel], list[Rule]]:
    """The channels and rules of the `alerts` section; raises ConfigError on the first
    mistake. `error_groups`: whether the store keeps failure fingerprints."""
    environ = os.environ if environ is None else environ
    channels = {name: parse_channel(name, raw, environ) for name, raw in channels_raw.items()}
    rules: list[Rule] = []
    for i, raw in enumerate(rules_raw):
        rule = parse_rule(i, raw, channels, error_groups)
        if any(r.name == rule.name for r in rules):
            raise ConfigError(_rule_key(i, rule.name, "name"), rule.name, "duplicate rule name")
        rules.append(rule)
    return channels, rules
