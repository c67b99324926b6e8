"""The config's sections as typed, frozen dataclasses, with their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bridge.config.values import Duration, longest_run, parse_duration

__all__ = [
    "SSL_MODES",
    "SYNCHRONOUS_COMMIT",
    "AlertsConfig",
    "AnalysisConfig",
    "AuthConfig",
    "BackendConfig",
    "Config",
    "IdempotencyConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MySQLConfig",
    "PluginsConfig",
    "PostgreSQLConfig",
    "RunnerConfig",
    "SQLiteConfig",
    "SchedulerConfig",
    "ServerConfig",
    "StorageConfig",
    "TrackingConfig",
]


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
SYNCHRONOUS_COMMIT = ("on", "off", "local", "remote_write", "remote_apply")


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
    # The WAL flush a run's record waits for. "off": committed (a crash of the bridge
    # loses nothing) without waiting for the fsync, as SQLite's synchronous NORMAL.
    synchronous_commit: str = "off"


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
    # Where a server database's run records wait while it is unreachable (a folder of
    # SQLite files, one per process), and how many bytes they may take in each process.
    spool_path: str = "data/spool"
    spool_max_size: int = 256 * 1024 * 1024
    sqlite: SQLiteConfig = field(default_factory=SQLiteConfig)
    postgresql: PostgreSQLConfig = field(default_factory=PostgreSQLConfig)
    mysql: MySQLConfig = field(default_factory=MySQLConfig)

    @classmethod
    def types(cls) -> list[str]:
        defaults = cls()
        return [f.name for f in fields(cls) if isinstance(getattr(defaults, f.name), BackendConfig)]

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
class AlertsConfig:
    """Threshold rules over rolling windows, and the channels that tell people. Rules
    and channels are mappings checked by bridge.alerts.rules (one line per error)."""

    enabled: bool = True
    evaluation_interval: Duration = Duration(30)
    # Where notifications link to (the runs that made a rule fire); default: server's.
    public_url: str = ""
    # Each delivery: how long one try may take, how many tries, the first wait between.
    delivery_timeout: Duration = Duration(10)
    delivery_attempts: int = 3
    delivery_backoff: Duration = Duration(2)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class AnalysisConfig:
    """When GET /api/v1/executions/analysis (and `flask bridge analysis`) names a finding."""

    # A plugin needs this many runs in the period before any finding is made of it.
    min_calls: int = 20
    # p95 at least this many times the previous period's.
    p95_rise_factor: float = 1.5
    # Failure rate up by at least this many percentage points on the previous period.
    failure_rate_rise: float = 5.0
    # Percent of runs that timed out; percent of run time spent in retries.
    timeout_share: float = 5.0
    retry_share: float = 20.0
    # An error group is rising at this many times its previous period's count.
    error_rising_factor: float = 2.0


@dataclass(frozen=True)
class MetricsConfig:
    """GET /metrics, the Prometheus text format."""

    enabled: bool = True


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
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
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
