"""API keys for the management API: who may read the run history and who may change it.

Keys come from `auth.api_keys` in config (the key itself, `env:NAME`, or its SHA-256)
and from `$BRIDGE_API_KEY` (an admin key). Only digests are kept in memory, and every
presented key is compared with every configured digest in constant time. With no key
configured, the management API answers loopback clients only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, g, request

from bridge.config import Config, resolve_env
from bridge.errors import ConfigError, Forbidden, Unauthorized

log = logging.getLogger(__name__)

SCOPES = ("read", "write", "admin")  # each scope includes the ones before it
# Blueprints behind keys; webhook routes are guarded by signatures instead.
PROTECTED = ("executions", "plugins", "alerts", "access", "insight", "metrics")
READ_METHODS = ("GET", "HEAD", "OPTIONS")
ENV_KEY = "BRIDGE_API_KEY"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
# Headers that proxies, load balancers and CDNs add: a request carrying any of them was
# relayed, so its loopback address says nothing about the real client. A proxy that
# adds none (nginx's bare proxy_pass) cannot be detected: behind one, configure a key.
FORWARDING_HEADERS = (
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Real-IP",
    "X-Client-IP",
    "X-Cluster-Client-IP",
    "Via",
    "CF-Connecting-IP",
    "True-Client-IP",
    "Fastly-Client-IP",
    "X-Original-Forwarded-For",
)

SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from auth.api_keys or BRIDGE_API_KEY",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key, in the X-API-Key header",
    },
}


@dataclass(frozen=True)
class ApiKey:
    name: str
    digest: bytes  # SHA-256 of the key
    scope: int  # index into SCOPES: the highest scope the key holds

    @property
    def scopes(self) -> list[str]:
        return list(SCOPES[: self.scope + 1])


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def parse_keys(raw: list[dict[str, Any]], environ: Mapping[str, str] | None = None) -> list[ApiKey]:
    """Validated keys from `auth.api_keys` plus `$BRIDGE_API_KEY`; errors never show a key."""
    environ = os.environ if environ is None else environ
    keys: list[ApiKey] = []
    names: set[str] = set()
    for i, entry in enumerate(raw):
        where = f"auth.api_keys[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(where, "<entry>", "expected a mapping with name, key and scopes")
        unknown = set(entry) - {"name", "key", "sha256", "scopes"}
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}", "<value>", "unknown key")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}.name", name, "expected a non-empty string")
        if name in names:
            raise ConfigError(f"{where}.name", name, "duplicate key name")
        names.add(name)
        if ("key" in entry) == ("sha256" in entry):
            raise ConfigError(where, name, "set exactly one of key and sha256")
        if "key" in entry:
            value = entry["key"]
            if not isinstance(value, str):
                raise ConfigError(f"{where}.key", "<hidden>", "expected a string")
            # Stripped as a presented key is: a key pasted with its newline still matches.
            value = resolve_env(value, f"{where}.key", environ).strip()
            if len(value) < 16:
                raise ConfigError(
                    f"{where}.key", "<hidden>", "too short: use at least 16 characters"
                )
            key_digest = digest(value)
        else:
            value = entry["sha256"]
            if not isinstance(value, str) or not _HEX64.fullmatch(value):
                raise ConfigError(
                    f"{where}.sha256", "<hidden>", "expected 64 hex digits (sha256sum of the key)"
                )
            key_digest = bytes.fromhex(value)
        scopes = entry.get("scopes", ["read"])
        if (
            not isinstance(scopes, list)
            or not scopes
            or not all(isinstance(s, str) and s in SCOPES for s in scopes)
        ):
            raise ConfigError(f"{where}.scopes", scopes, "expected a list of read, write, admin")
        keys.append(ApiKey(name, key_digest, max(SCOPES.index(s) for s in scopes)))
    env_key = environ.get(ENV_KEY, "").strip()
    if env_key:
        if len(env_key) < 16:
            raise ConfigError(ENV_KEY, "<hidden>", "too short: use at least 16 characters")
        keys.append(ApiKey("BRIDGE_API_KEY", digest(env_key), SCOPES.index("admin")))
    return keys


def required_scope(method: str, path: str = "") -> str:
    """The scope a management request needs: reading needs `read`, a replay (it runs a
    plugin, as a webhook would) `write`, any other change `admin`."""
    if method.upper() in READ_METHODS:
        return "read"
    return "write" if path.endswith("/replay") else "admin"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def exposure_warning(config: Config, bind_host: str | None = None) -> str | None:
    """The warning to print at start-up when the API would be exposed without keys."""
    host = bind_host if bind_host is not None else config.server.host
    if config.auth.api_keys or os.environ.get(ENV_KEY) or is_loopback(host):
        return None
    return (
        f"SECURITY WARNING: listening on {host} with no API key configured. The "
        "management API (/api/v1/executions, /api/v1/plugins, /api/v1/alerts) will refuse every "
        "non-loopback client with 403 until you set auth.api_keys or BRIDGE_API_KEY."
    )


def local_only_notice(config: Config) -> str | None:
    """The start-up line that says what "loopback only" can and cannot see."""
    if config.auth.api_keys or os.environ.get(ENV_KEY, "").strip():
        return None
    return (
        "No API key configured: the management API answers local clients only. A request "
        "carrying a forwarding header (X-Forwarded-For, X-Real-IP, Via, ...) counts as "
        "remote, but a reverse proxy that adds no such header cannot be told from a local "
        "client: behind a proxy, configure auth.api_keys or BRIDGE_API_KEY."
    )


def local_client() -> bool:
    """A loopback client that no proxy relayed (whatever its address, a request carrying
    a forwarding header came from somewhere else)."""
    relayed = any(name in request.headers for name in FORWARDING_HEADERS)
    return is_loopback(request.remote_addr or "") and not relayed


def presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key", "").strip() or None


class Authenticator:
    """Checks every request to a protected blueprint before its view runs."""

    def __init__(self, config: Config) -> None:
        self.keys = parse_keys(config.auth.api_keys)
        self.protect_webhooks = config.auth.protect_webhooks

    def init_app(self, app: Flask) -> None:
        app.extensions["bridge.auth"] = self
        app.before_request(self.guard)

    def guard(self) -> None:
        blueprint = request.blueprint or ""
        if blueprint in PROTECTED:
            rule = request.url_rule.rule if request.url_rule else ""
            self.check(required_scope(request.method, rule))
        elif blueprint == "webhook" and self.protect_webhooks:
            self.check("write")

    def check(self, scope: str) -> None:
        key = presented_key()
        if not self.keys:
            if local_client():
                return
            raise Forbidden(
                "The management API answers only local clients until an API "
                "key is configured (auth.api_keys or BRIDGE_API_KEY)"
            )
        if key is None:
            raise Unauthorized(
                "An API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        presented = digest(key)
        match = None
        for candidate in self.keys:  # no early exit: the time taken does not depend on which
            if hmac.compare_digest(candidate.digest, presented):
                match = candidate
        if match is None:
            raise Unauthorized("The API key is not valid")
        if match.scope < SCOPES.index(scope):
            raise Forbidden(
                f"The API key '{match.name}' lacks the '{scope}' scope this request needs"
            )
        g.api_key = match.name
        g.api_scopes = match.scopes
