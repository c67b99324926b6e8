"""Config from the environment (`BRIDGE_<SECTION>__<KEY>`, `BRIDGE_DATABASE_URL`) and
the config warnings, said once per process tree in the log's own format."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import yaml

from bridge.config.values import MYSQL_SCHEMES, redact_url
from bridge.errors import ConfigError

log = logging.getLogger("bridge.config")

ENV_PREFIX = "BRIDGE_"
DATABASE_URL = "BRIDGE_DATABASE_URL"


def database_url(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """`raw` with `BRIDGE_DATABASE_URL` over its storage settings, for twelve-factor
    deployments: `postgresql://user@host:port/db` selects PostgreSQL with that URL as
    its dsn, `mysql://` (or `mariadb://`) MySQL; `sqlite:///data/x.db` (relative to
    the config's folder) or `sqlite:////abs/x.db` selects SQLite with that file. The
    other keys of the selected section (pool size, retention) still apply."""
    url = environ.get(DATABASE_URL, "").strip()
    if not url:
        return raw
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres"):
        kind, settings = "postgresql", {"dsn": url}
    elif scheme in MYSQL_SCHEMES:
        kind, settings = "mysql", {"dsn": url}
    elif scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        kind, settings = "sqlite", {"database_path": url[len("sqlite:///") :]}
    else:
        raise ConfigError(
            DATABASE_URL,
            redact_url(url),
            "expected postgresql://, mysql://user@host:port/database or sqlite:///path",
        )
    merged = dict(raw)
    storage = merged.get("storage")
    storage = dict(storage) if isinstance(storage, dict) else {}
    section = storage.get(kind)
    storage[kind] = {**(section if isinstance(section, dict) else {}), **settings}
    storage["type"] = kind
    merged["storage"] = storage
    return merged


def env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """`raw` with every `BRIDGE_<SECTION>__<KEY>[__<SUBKEY>]` variable set over it:
    `BRIDGE_SERVER__PORT=9000` sets server.port. Names are lower-cased; `__` separates
    levels; values are read as YAML scalars or flow lists (`9000`, `true`, `30s`,
    `[a, b]`). Variables without `__` (BRIDGE_CONFIG, BRIDGE_API_KEY, ...) are not keys."""
    merged = dict(raw)
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            raise ConfigError(name, name, "expected BRIDGE_<SECTION>__<KEY>")
        try:
            value = yaml.safe_load(environ[name])
        except yaml.YAMLError:
            value = environ[name]
        node = merged
        for i, key in enumerate(keys[:-1]):
            child = node.get(key)
            if not isinstance(child, dict):
                if child is not None:
                    raise ConfigError(".".join(keys[: i + 1]), child, f"not a section ({name})")
                child = {}
            node[key] = child = dict(child)
            node = child
        node[keys[-1]] = value
    return merged


_warned: set[str] = set()
_pending: list[str] = []


def warn_once(message: str) -> None:
    """Log a config warning once per process tree: gunicorn's master reads the config
    before it forks, and its workers, which read it again, inherit what was said. Said
    before logging is set up (the config names the log format), it waits for
    `flush_warnings`, so that it is written in that format."""
    if message in _warned:
        return
    _warned.add(message)
    if logging.getLogger().handlers:
        log.warning(message)
    else:
        _pending.append(message)


def flush_warnings() -> None:
    while _pending:
        log.warning(_pending.pop(0))
