"""Configuration: `config.yaml` loaded into typed dataclasses and validated once.

Durations are written Go style (`30s`, `12h`, `1h30m`), sizes in bytes. A bad value
stops start-up with one line naming the key and the value; an unknown key only warns.

The package's modules: values (durations, secrets), sections (the dataclasses),
validate, environment (overrides from the environment, warnings); here, loading.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from bridge.config.environment import (
    DATABASE_URL,
    ENV_PREFIX,
    database_url,
    env_overrides,
    flush_warnings,
    warn_once,
)
from bridge.config.sections import *  # noqa: F403
from bridge.config.sections import Config
from bridge.config.validate import validate
from bridge.config.values import (
    MYSQL_SCHEMES,
    Duration,
    longest_run,
    parse_duration,
    redact_url,
    resolve_env,
    retry_delay,
)
from bridge.errors import ConfigError

__all__ = [
    "DATABASE_URL",
    "ENV_PREFIX",
    "MYSQL_SCHEMES",
    "Config",
    "ConfigError",
    "Duration",
    "database_url",
    "env_overrides",
    "flush_warnings",
    "from_dict",
    "load",
    "longest_run",
    "parse_duration",
    "redact_url",
    "resolve_env",
    "retry_delay",
    "warn_once",
]


def _convert(key: str, hint: Any, value: Any) -> Any:
    """Check `value` against the annotation `hint`, converting durations."""
    origin = get_origin(hint)
    if hint is Duration:
        try:
            return Duration(parse_duration(value))
        except ValueError:
            raise ConfigError(key, value, "invalid duration") from None
    if is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(key, value, "expected a mapping")
        return _build(hint, value, key)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, value, "expected true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(key, value, "expected a whole number >= 0")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise ConfigError(key, value, "expected a number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, value, "expected a string")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(key, value, "expected a list")
        (item,) = get_args(hint)
        return [_convert(f"{key}[{i}]", item, v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, value, "expected a mapping")
        return {str(k): v for k, v in value.items()}
    args = [a for a in get_args(hint) if a is not type(None)]
    if args and value is None:
        return None
    if len(args) == 1:
        return _convert(key, args[0], value)
    return value


def _build(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for name in raw:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warn_once(f"Unknown config key {prefix}{'.' if prefix else ''}{name} ignored{hint}")
    kwargs = {
        name: _convert(f"{prefix}.{name}" if prefix else name, hints[name], raw[name])
        for name in known
        if name in raw
    }
    return cls(**kwargs)


def from_dict(raw: dict[str, Any] | None, base_dir: str | os.PathLike[str] = ".") -> Config:
    """A validated Config from a parsed YAML mapping."""
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError("<root>", raw, "expected a mapping")
    raw = dict(raw or {})
    raw["base_dir"] = str(base_dir)
    config = _build(Config, raw)
    validate(config)
    # Per-plugin settings are checked here too, so a typo stops start-up.
    from bridge.plugin import PluginSettings

    for name, settings in config.plugins.settings.items():
        PluginSettings.from_overrides(settings, f"plugins.settings.{name}")
    from bridge.auth import parse_keys

    parse_keys(config.auth.api_keys)
    from bridge.alerts.metrics import error_groups_available
    from bridge.alerts.rules import parse as parse_alerts

    parse_alerts(config.alerts.channels, config.alerts.rules, error_groups_available())
    return config


def load(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Read the config file named by `path`, `$BRIDGE_CONFIG` or `config.yaml`, with
    `BRIDGE_<SECTION>__<KEY>` environment variables over it (see env_overrides), and
    `BRIDGE_DATABASE_URL` over the storage settings (see database_url)."""
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get("BRIDGE_CONFIG") or "config.yaml")
    if not path.exists():
        if environ.get("BRIDGE_CONFIG") or path.name != "config.yaml":
            raise ConfigError("config", str(path), "file not found")
        return from_dict(database_url(env_overrides({}, environ), environ), base_dir=".")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())  # PyYAML's text spans lines: one line here
        raise ConfigError("config", str(path), f"not valid YAML ({reason})") from None
    except UnicodeDecodeError:
        raise ConfigError("config", str(path), "not UTF-8 text") from None
    except OSError as exc:  # a folder, a file it may not read
        raise ConfigError("config", str(path), exc.strerror or type(exc).__name__) from None
    if not isinstance(raw, dict):
        raise ConfigError("config", str(path), "expected a mapping at the top level")
    return from_dict(
        database_url(env_overrides(raw, environ), environ), base_dir=path.resolve().parent
    )
