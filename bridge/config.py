"""Configuration: `config.yaml` loaded into typed dataclasses and validated once.

Durations are written Go style (`30s`, `12h`, `1h30m`), sizes in bytes. A bad value
stops start-up with one line naming the key and the value; an unknown key only warns.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from bridge.errors import ConfigError
from bridge.model import ERROR_TYPES

log = logging.getLogger(__name__)


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def resolve_env(value: str, where: str, environ: Mapping[str, str]) -> str:
    """`env:NAME` read from `environ`, anything else as written: secrets and keys stay
    out of config.yaml. An error names the variable, never a value."""
    if not value.startswith("env:"):
        return value
    name = value[4:].strip()
    resolved = environ.get(name, "") if name else ""
    if not resolved:
        raise ConfigError(where, name, "unset or empty environment variable")
    return resolved


def parse_duration(value: Any) -> float:
    """Seconds from a Go-style duration (`1h30m`, `500ms`) or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"invalid duration {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}")
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError(f"invalid duration {value!r}")
        return seconds
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r}")
    return total


def retry_delay(backoff: float, max_backoff: float, failed_attempt: int) -> float:
    """The longest wait after attempt `failed_attempt` (1, 2, ...): the backoff doubled
    each time, capped at `max_backoff` (the runner waits between half of it and all)."""
    return min(max_backoff, backoff * 2.0 ** min(failed_attempt - 1, 62))


def longest_run(timeout: float, attempts: int, backoff: float, max_backoff: float) -> float:
    """Seconds a run can take at most: every attempt's timeout and the waits between
    them. gunicorn's worker timeout, stale-run detection and the idempotency wait all
    start from it."""
    waits = sum(retry_delay(backoff, max_backoff, n) for n in range(1, attempts))
    return timeout * attempts + waits


class Duration(float):
    """A number of seconds read from a duration string."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8001
    max_body_size: int = 10 * 1024 * 1024
    max_inflight_body_size: int = 4 * 1024 * 1024
    # Form fields in a body, and query parameters, a webhook may carry (413 / 400 past it).
    max_form_fields: int = 1000
    # A request must arrive whole within this of its connection opening (408 past it).
    request_timeout: Duration = Duration(30)
    # Bytes of requests one worker holds, from their first byte until answered; past
    # it, requests still arriving are read no further (the oldest reads on).
    max_receiving_size: int = 32 * 1024 * 1024
    workers: int = 2
    threads: int = 8
    graceful_timeout: Duration = Duration(30)
    trusted_proxies: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PluginsConfig:
    dirs: list[str] = field(default_factory=lambda: ["plugins"])
    timeout: Duration = Duration(30)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RunnerConfig:
    max_workers: int = 16
    max_attempts: int = 1
    backoff: Duration = Duration(1)
    # The longest wait between two attempts, however many there are.
    max_backoff: Duration = Duration(60)
    retry_on: list[str] = field(default_factory=lambda: ["timeout", "connection_error"])
    max_pending: int = 100
    retry_after: int = 1
    # Default per-plugin share of max_workers when a plugin sets no max_concurrency;
    # 0 means three quarters of max_workers, so one hung plugin leaves room for others.
    plugin_max_concurrency: int = 0

    @property
    def default_plugin_limit(self) -> int:
        if self.plugin_max_concurrency:
            return self.plugin_max_concurrency
        return max(1, (self.max_workers * 3) // 4)


@dataclass(frozen=True)
class BackendConfig:
    """What every storage backend's section (`storage.<type>`) has."""

    retention_days: int = 30


@dataclass(frozen=True)
class SQLiteConfig(BackendConfig):
    database_path: str = "data/executions.db"
    max_connections: int = 10
    enable_wal: bool = True
    enable_foreign_keys: bool = True
    busy_timeout: Duration = Duration(5)
    synchronous: str = "NORMAL"


SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class PostgreSQLConfig(BackendConfig):
    """A PostgreSQL server: `dsn` (a postgresql:// URL, libpq key=value text, or
    env:NAME), or host, port, user, password (env:NAME only) and database."""

    dsn: str = ""
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""
    database: str = "webhook_bridge"
    max_connections: int = 10  # the pool's size in each process
    connect_timeout: Duration = Duration(5)
    sslmode: str = "prefer"


@dataclass(frozen=True)
class MySQLConfig(BackendConfig):
    """A MySQL or MariaDB server: `dsn` (a mysql:// or mariadb:// URL, or env:NAME), or
    host, port, user, password (env:NAME only) and database."""

    dsn: str = ""
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str = "webhook_bridge"
    max_connections: int = 10  # the pool's size in each process
    connect_timeout: Duration = Duration(5)


@dataclass(frozen=True)
class StorageConfig:
    """`type` names the backend; its settings are the section of that name. A new
    backend adds its section here (and its package under bridge/storage/)."""

    type: str = "sqlite"
    sqlite: SQLiteConfig = field(default_factory=SQLiteConfig)
    postgresql: PostgreSQLConfig = field(default_factory=PostgreSQLConfig)
    mysql: MySQLConfig = field(default_factory=MySQLConfig)

    @classmethod
    def types(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "type"]

    @property
    def backend(self) -> BackendConfig:
        """The selected backend's section."""
        return getattr(self, self.type)


@dataclass(frozen=True)
class TrackingConfig:
    enabled: bool = True
    track_input: bool = True
    track_output: bool = True
    track_errors: bool = True
    max_input_size: int = 1024 * 1024
    max_output_size: int = 1024 * 1024
    cleanup_interval: Duration = Duration(24 * 3600)
    metrics_aggregation_interval: Duration = Duration(3600)
    # When set, wins over storage.sqlite.retention_days (see README).
    retention_days: int | None = None
    stale_check_interval: Duration = Duration(60)
    # Keys whose values are stored as "[REDACTED]" (matched case-insensitively, ignoring
    # "-" and "_", anywhere in a key's name), in stored input and output alike.
    redact_fields: list[str] = field(
        default_factory=lambda: [
            "password",
            "token",
            "secret",
            "authorization",
            "api_key",
            "cookie",
        ]
    )


@dataclass(frozen=True)
class AuthConfig:
    # Each: {name, key (or "env:NAME") | sha256, scopes: [read|write|admin]}.
    api_keys: list[dict[str, Any]] = field(default_factory=list)
    # When true, webhook routes also need a key with the `write` scope.
    protect_webhooks: bool = False


@dataclass(frozen=True)
class IdempotencyConfig:
    enabled: bool = True
    window: Duration = Duration(24 * 3600)
    headers: list[str] = field(
        default_factory=lambda: ["Idempotency-Key", "X-GitHub-Delivery", "webhook-id", "svix-id"]
    )


@dataclass(frozen=True)
class SchedulerConfig:
    enabled: bool = True
    lock_path: str | None = None
    takeover_interval: Duration = Duration(5)


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    # text, or json: one JSON object per line for log shippers.
    format: str = "text"


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    plugins: PluginsConfig = field(default_factory=PluginsConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    execution_tracking: TrackingConfig = field(default_factory=TrackingConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    idempotency: IdempotencyConfig = field(default_factory=IdempotencyConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # Where relative paths (plugin dirs, database) are resolved from.
    base_dir: str = "."

    @property
    def retention_days(self) -> int:
        explicit = self.execution_tracking.retention_days
        return explicit if explicit is not None else self.storage.backend.retention_days

    def resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    @property
    def longest_run(self) -> float:
        """The longest run that config allows, with each plugin's overrides (a plugin's
        class attributes may allow more; the runner asks `longest_run` per plugin)."""
        runner = self.runner
        values = [float(self.plugins.timeout)]
        for s in [{}, *self.plugins.settings.values()]:
            values.append(
                longest_run(
                    parse_duration(s.get("timeout") or self.plugins.timeout),
                    int(s.get("max_attempts") or runner.max_attempts),
                    parse_duration(
                        s["backoff"] if s.get("backoff") is not None else runner.backoff
                    ),
                    float(runner.max_backoff),
                )
            )
        return max(values)

    @property
    def database_path(self) -> Path:
        """The SQLite database (gunicorn's control socket sits beside it too)."""
        return self.resolve(self.storage.sqlite.database_path)

    @property
    def plugin_dirs(self) -> list[Path]:
        return [self.resolve(d) for d in self.plugins.dirs]


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


def _validate(config: Config) -> None:
    def check(ok: bool, key: str, value: Any, why: str) -> None:
        if not ok:
            raise ConfigError(key, value, why)

    check(
        config.storage.type in StorageConfig.types(),
        "storage.type",
        config.storage.type,
        f"unsupported storage type (available: {', '.join(StorageConfig.types())})",
    )
    check(1 <= config.server.port <= 65535, "server.port", config.server.port, "out of range")
    check(
        config.server.max_body_size > 0,
        "server.max_body_size",
        config.server.max_body_size,
        "must be > 0",
    )
    check(
        config.server.max_inflight_body_size >= 0,
        "server.max_inflight_body_size",
        config.server.max_inflight_body_size,
        "must be >= 0 (0: no limit)",
    )
    check(
        config.server.max_form_fields >= 1,
        "server.max_form_fields",
        config.server.max_form_fields,
        "must be >= 1",
    )
    check(
        config.server.request_timeout > 0,
        "server.request_timeout",
        config.server.request_timeout,
        "must be > 0",
    )
    check(
        config.server.max_receiving_size > 0,
        "server.max_receiving_size",
        config.server.max_receiving_size,
        "must be > 0",
    )
    check(config.server.workers >= 1, "server.workers", config.server.workers, "must be >= 1")
    check(config.server.threads >= 1, "server.threads", config.server.threads, "must be >= 1")
    for i, proxy in enumerate(config.server.trusted_proxies):
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"server.trusted_proxies[{i}]", proxy, "invalid IP or CIDR") from None
    check(config.plugins.timeout > 0, "plugins.timeout", config.plugins.timeout, "must be > 0")
    check(
        config.runner.max_workers >= 1,
        "runner.max_workers",
        config.runner.max_workers,
        "must be >= 1",
    )
    check(
        config.runner.max_attempts >= 1,
        "runner.max_attempts",
        config.runner.max_attempts,
        "must be >= 1",
    )
    for i, kind in enumerate(config.runner.retry_on):
        check(kind in ERROR_TYPES, f"runner.retry_on[{i}]", kind, "unknown error type")
    check(
        config.storage.sqlite.max_connections >= 1,
        "storage.sqlite.max_connections",
        config.storage.sqlite.max_connections,
        "must be >= 1",
    )
    check(
        config.storage.sqlite.synchronous.upper() in {"OFF", "NORMAL", "FULL", "EXTRA"},
        "storage.sqlite.synchronous",
        config.storage.sqlite.synchronous,
        "expected OFF, NORMAL, FULL or EXTRA",
    )
    _validate_postgresql(config.storage.postgresql, config.storage.type == "postgresql")
    _validate_mysql(config.storage.mysql, config.storage.type == "mysql")
    tracking = config.execution_tracking
    check(
        tracking.cleanup_interval > 0,
        "execution_tracking.cleanup_interval",
        tracking.cleanup_interval,
        "must be > 0",
    )
    check(
        tracking.metrics_aggregation_interval > 0,
        "execution_tracking.metrics_aggregation_interval",
        tracking.metrics_aggregation_interval,
        "must be > 0",
    )
    for i, header in enumerate(config.idempotency.headers):
        check(
            bool(header.strip()) and header.isascii(),
            f"idempotency.headers[{i}]",
            header,
            "expected a header name",
        )
    check(
        config.logging.format in ("text", "json"),
        "logging.format",
        config.logging.format,
        "expected text or json",
    )
    level = config.logging.level.upper()
    check(
        logging.getLevelName(level) != f"Level {level}",
        "logging.level",
        config.logging.level,
        "unknown level",
    )
    for name, settings in config.plugins.settings.items():
        check(
            isinstance(settings, dict), f"plugins.settings.{name}", settings, "expected a mapping"
        )


def _validate_postgresql(pg: PostgreSQLConfig, selected: bool) -> None:
    """The section's values, checked whether or not it is the selected backend (as
    storage.sqlite's are); its environment variables only when it is. A password is
    never shown, not even in an error."""
    key = "storage.postgresql"
    if pg.password and not pg.password.startswith("env:"):
        raise ConfigError(
            f"{key}.password", "<hidden>", "write env:NAME, never the password itself"
        )
    if pg.password and selected and not pg.dsn:  # a dsn replaces the fields
        resolve_env(pg.password, f"{key}.password", os.environ)
    dsn = pg.dsn
    if dsn.startswith("env:"):
        dsn = resolve_env(dsn, f"{key}.dsn", os.environ) if selected else ""
    if dsn:
        scheme = dsn.partition("://")[0].lower() if "://" in dsn else ""
        if scheme and scheme not in ("postgresql", "postgres"):
            raise ConfigError(f"{key}.dsn", redact_url(dsn), "expected a postgresql:// URL")
        if not scheme and "=" not in dsn:
            raise ConfigError(
                f"{key}.dsn", redact_url(dsn), "expected a postgresql:// URL or key=value pairs"
            )
    for name, ok, why in (
        ("host", bool(pg.host.strip()), "expected a host name"),
        ("port", 1 <= pg.port <= 65535, "out of range"),
        ("user", bool(pg.user.strip()), "expected a user name"),
        ("database", bool(pg.database.strip()), "expected a database name"),
        ("max_connections", pg.max_connections >= 1, "must be >= 1"),
        ("connect_timeout", pg.connect_timeout >= 1, "must be >= 1s"),
        ("sslmode", pg.sslmode in SSL_MODES, f"expected one of {', '.join(SSL_MODES)}"),
    ):
        if not ok:
            raise ConfigError(f"{key}.{name}", getattr(pg, name), why)


MYSQL_SCHEMES = ("mysql", "mariadb")


def _validate_mysql(my: MySQLConfig, selected: bool) -> None:
    """As _validate_postgresql, for storage.mysql: a dsn is a mysql:// or mariadb://
    URL with a database and no options."""
    key = "storage.mysql"
    if my.password and not my.password.startswith("env:"):
        raise ConfigError(
            f"{key}.password", "<hidden>", "write env:NAME, never the password itself"
        )
    if my.password and selected and not my.dsn:  # a dsn replaces the fields
        resolve_env(my.password, f"{key}.password", os.environ)
    dsn = my.dsn
    if dsn.startswith("env:"):
        dsn = resolve_env(dsn, f"{key}.dsn", os.environ) if selected else ""
    if dsn:
        scheme, _, rest = dsn.partition("://")
        if scheme.lower() not in MYSQL_SCHEMES or not rest.partition("/")[2] or "?" in rest:
            raise ConfigError(
                f"{key}.dsn", redact_url(dsn), "expected mysql://user@host:port/database"
            )
    for name, ok, why in (
        ("host", bool(my.host.strip()), "expected a host name"),
        ("port", 1 <= my.port <= 65535, "out of range"),
        ("user", bool(my.user.strip()), "expected a user name"),
        ("database", bool(my.database.strip()), "expected a database name"),
        ("max_connections", my.max_connections >= 1, "must be >= 1"),
        ("connect_timeout", my.connect_timeout >= 1, "must be >= 1s"),
    ):
        if not ok:
            raise ConfigError(f"{key}.{name}", getattr(my, name), why)


def redact_url(url: str) -> str:
    """A database URL or libpq text as it may be shown: any password replaced by ***."""
    if "://" in url:  # user:password@ before the host, or ?password= among the query
        url = re.sub(r"(://[^:/?#@]*):[^/?#]*@", r"\1:***@", url)
        return re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", url)
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


def from_dict(raw: dict[str, Any] | None, base_dir: str | os.PathLike[str] = ".") -> Config:
    """A validated Config from a parsed YAML mapping."""
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError("<root>", raw, "expected a mapping")
    raw = dict(raw or {})
    raw["base_dir"] = str(base_dir)
    config = _build(Config, raw)
    _validate(config)
    # Per-plugin settings are checked here too, so a typo stops start-up.
    from bridge.plugin import PluginSettings

    for name, settings in config.plugins.settings.items():
        PluginSettings.from_overrides(settings, f"plugins.settings.{name}")
    from bridge.auth import parse_keys

    parse_keys(config.auth.api_keys)
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
        raise ConfigError("config", str(path), f"not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError("config", str(path), "expected a mapping at the top level")
    return from_dict(
        database_url(env_overrides(raw, environ), environ), base_dir=path.resolve().parent
    )


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
