"""The plugin API: what a file in `plugins/` subclasses.

Compatible with the original webhook_bridge Python API (also importable as
`webhook_bridge.plugin.BasePlugin`): `self.data`, `self.logger`, `self.http_method`,
`handle()`, per-method handlers falling back to `handle()`, and the legacy `run()`.
"""

from __future__ import annotations

import difflib
import logging
import os
import threading
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from bridge.config import parse_duration, resolve_env, warn_once
from bridge.errors import ConfigError
from bridge.model import ERROR_TYPES
from bridge.signatures import SignatureSpec

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class BasePlugin:
    """Base class for webhook plugins.

    Class attributes set defaults that `plugins.settings.<name>` in config.yaml can
    override: `timeout` (seconds or a duration string), `max_attempts`, `methods`.
    """

    timeout: ClassVar[float | str | None] = None
    max_attempts: ClassVar[int | None] = None
    methods: ClassVar[list[str] | None] = None
    backoff: ClassVar[float | str | None] = None
    retry_on: ClassVar[list[str] | None] = None
    # At most this many deliveries run at once; more get 429 with Retry-After.
    max_concurrency: ClassVar[int | None] = None
    # {type, secret, header, encoding, tolerance}: see bridge.signatures and the README.
    signature: ClassVar[dict[str, Any] | None] = None
    # The plugin's own settings (defaults); plugins.settings.<name>.options overrides
    # them key by key, with `env:NAME` values read from the environment.
    options: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        logger: logging.Logger | None = None,
        http_method: str = "POST",
        *,
        cancel_event: threading.Event | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        self.data = data if data is not None else {}
        self.logger = logger or logging.getLogger(f"plugins.{type(self).__name__}")
        self.http_method = http_method.upper()
        self.result: dict[str, Any] = {}
        self.cancel_event = cancel_event or threading.Event()
        # Request facts a plugin may want: execution_id, trace_id, attempt, headers, query.
        self.context = context or {}
        self.options: dict[str, Any] = dict(type(self).options)

    @property
    def cancelled(self) -> bool:
        """True once the bridge has given up on this run (timeout or shutdown)."""
        return self.cancel_event.is_set()

    def execute(self) -> Any:
        """Run the handler for `http_method`: `run()` if overridden, else the method's."""
        if type(self).run is not BasePlugin.run:
            return self.run()
        handler = getattr(self, self.http_method.lower(), None)
        if callable(handler):
            return handler()
        return self.handle()

    def run(self) -> Any:
        """Legacy entry point of the original API; dispatches like `execute()`."""
        handler = getattr(self, self.http_method.lower(), None)
        return handler() if callable(handler) else self.handle()

    def handle(self) -> Any:
        """The handler for every method not overridden. Plugins usually override this."""
        return {"message": "Plugin executed successfully", "data": self.data}

    def get(self) -> Any:
        return self.handle()

    def post(self) -> Any:
        return self.handle()

    def put(self) -> Any:
        return self.handle()

    def patch(self) -> Any:
        return self.handle()

    def delete(self) -> Any:
        return self.handle()

    def get_data(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set_result(self, key: str, value: Any) -> None:
        self.result[key] = value

    def get_result(self) -> dict[str, Any]:
        return dict(self.result)

    @classmethod
    def supported_methods(cls) -> list[str]:
        """`methods` if set; else the overridden method handlers; else every method."""
        if cls.methods:
            return [m.upper() for m in cls.methods]
        overrides_generic = cls.handle is not BasePlugin.handle or cls.run is not BasePlugin.run
        specific = [
            m for m in HTTP_METHODS if getattr(cls, m.lower()) is not getattr(BasePlugin, m.lower())
        ]
        if overrides_generic or not specific:
            return list(HTTP_METHODS)
        return specific


@dataclass(frozen=True)
class PluginSettings:
    """The effective per-plugin settings: class attributes, then config overrides."""

    timeout: float | None = None
    max_attempts: int | None = None
    methods: tuple[str, ...] | None = None
    backoff: float | None = None
    retry_on: tuple[str, ...] | None = None
    max_concurrency: int | None = None
    signature: SignatureSpec | None = None
    options: dict[str, Any] | None = None

    KEYS: ClassVar[tuple[str, ...]] = (
        "timeout",
        "max_attempts",
        "methods",
        "backoff",
        "retry_on",
        "max_concurrency",
        "signature",
        "options",
    )

    @classmethod
    def from_overrides(cls, raw: dict[str, Any], where: str) -> PluginSettings:
        """Validate a mapping of settings; `where` names it in errors."""
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in cls.KEYS:
                close = difflib.get_close_matches(key, cls.KEYS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                warn_once(f"Unknown plugin setting {where}.{key} ignored{hint}")
                continue
            if value is None:
                continue
            values[key] = _check_setting(f"{where}.{key}", key, value)
        return cls(**values)

    @classmethod
    def for_plugin(
        cls, plugin_class: type[BasePlugin], name: str, overrides: dict[str, Any] | None
    ) -> PluginSettings:
        own = {key: getattr(plugin_class, key, None) for key in cls.KEYS}
        if own["methods"] is None and plugin_class.supported_methods() != list(HTTP_METHODS):
            own["methods"] = plugin_class.supported_methods()
        settings = cls.from_overrides(own, f"plugin {name}")
        if overrides:
            configured = cls.from_overrides(overrides, f"plugins.settings.{name}")
            settings = replace(
                settings,
                **{
                    key: getattr(configured, key)
                    for key in cls.KEYS
                    if getattr(configured, key) is not None and key != "options"
                },
                options={**(settings.options or {}), **(configured.options or {})},
            )
        return settings


def _check_setting(where: str, key: str, value: Any) -> Any:
    if key == "options":
        if not isinstance(value, dict):
            raise ConfigError(where, value, "expected a mapping")
        return {str(k): _resolved(f"{where}.{k}", v) for k, v in value.items()}
    if key in ("timeout", "backoff"):
        try:
            seconds = parse_duration(value)
        except ValueError:
            raise ConfigError(where, value, "invalid duration") from None
        if key == "timeout" and seconds <= 0:
            raise ConfigError(where, value, "must be > 0")
        return seconds
    if key == "signature":
        return (
            value if isinstance(value, SignatureSpec) else SignatureSpec.from_mapping(value, where)
        )
    if key in ("max_attempts", "max_concurrency"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(where, value, "expected a whole number >= 1")
        return value
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(where, value, "expected a list of strings")
    if key == "methods":
        upper = tuple(v.upper() for v in value)
        for method in upper:
            if method not in HTTP_METHODS:
                raise ConfigError(where, method, "unknown HTTP method")
        return upper
    for kind in value:
        if kind not in ERROR_TYPES:
            raise ConfigError(where, kind, "unknown error type")
    return tuple(value)


def _resolved(where: str, value: Any) -> Any:
    """An option's value with every `env:NAME` string read from the environment."""
    if isinstance(value, str):
        return resolve_env(value, where, os.environ)
    if isinstance(value, dict):
        return {k: _resolved(f"{where}.{k}", v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(f"{where}[{i}]", v) for i, v in enumerate(value)]
    return value
