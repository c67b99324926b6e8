"""Checks of a loaded config that its types alone do not make: ranges, names, the
storage backend's settings. Each failure is one ConfigError naming the key."""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Any

from bridge.config.sections import (
    SSL_MODES,
    SYNCHRONOUS_COMMIT,
    Config,
    MySQLConfig,
    PostgreSQLConfig,
    StorageConfig,
)
from bridge.config.values import MYSQL_SCHEMES, redact_url, resolve_env
from bridge.errors import ConfigError
from bridge.model import ERROR_TYPES


def validate(config: Config) -> None:
    def check(ok: bool, key: str, value: Any, why: str) -> None:
        if not ok:
            raise ConfigError(key, value, why)

    check(
        config.storage.type in StorageConfig.types(),
        "storage.type",
        config.storage.type,
        f"unsupported storage type (available: {', '.join(StorageConfig.types())})",
    )
    check(
        config.storage.spool_max_size > 0,
        "storage.spool_max_size",
        config.storage.spool_max_size,
        "must be > 0 (bytes)",
    )
    check(bool(config.storage.spool_path), "storage.spool_path", "", "must not be empty")
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
    alerts = config.alerts
    for name, value in (
        ("evaluation_interval", alerts.evaluation_interval),
        ("delivery_timeout", alerts.delivery_timeout),
    ):
        check(value > 0, f"alerts.{name}", value, "must be > 0")
    check(
        alerts.delivery_attempts >= 1,
        "alerts.delivery_attempts",
        alerts.delivery_attempts,
        "must be >= 1",
    )
    analysis = config.analysis
    check(analysis.min_calls >= 1, "analysis.min_calls", analysis.min_calls, "must be >= 1")
    for key in ("p95_rise_factor", "error_rising_factor"):
        value = getattr(analysis, key)
        check(value > 1, f"analysis.{key}", value, "must be > 1")
    for key in ("failure_rate_rise", "timeout_share", "retry_share"):
        value = getattr(analysis, key)
        check(0 < value <= 100, f"analysis.{key}", value, "must be a percentage in (0, 100]")


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
        (
            "synchronous_commit",
            pg.synchronous_commit in SYNCHRONOUS_COMMIT,
            f"expected one of {', '.join(SYNCHRONOUS_COMMIT)}",
        ),
    ):
        if not ok:
            raise ConfigError(f"{key}.{name}", getattr(pg, name), why)


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
