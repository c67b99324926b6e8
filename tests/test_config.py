from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ConfigError, from_dict, load, parse_duration, redact_url


@pytest.mark.parametrize(
    "text,seconds",
    [("30s", 30), ("12h", 43200), ("1h30m", 5400), ("500ms", 0.5), (5, 5), ("2.5", 2.5)],
)
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_bad_value_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        from_dict({"execution_tracking": {"cleanup_interval": "soon"}})
    assert str(err.value) == "execution_tracking.cleanup_interval: invalid duration 'soon'"
    with pytest.raises(ConfigError, match=r"plugins\.settings\.x\.max_attempts"):
        from_dict({"plugins": {"settings": {"x": {"max_attempts": 0}}}})
    with pytest.raises(ConfigError, match=r"runner\.retry_on"):
        from_dict({"runner": {"retry_on": ["sometimes"]}})


def test_unknown_key_warns(caplog):
    from_dict({"server": {"prot": 1}})
    assert "Unknown config key server.prot" in caplog.text


def test_seed_config_loads_and_retention_precedence(tmp_path):
    cfg = load("config.yaml")
    assert cfg.server.port == 8001 and cfg.storage.sqlite.enable_wal is True
    assert cfg.execution_tracking.cleanup_interval == 86400
    assert cfg.retention_days == 30
    both = from_dict(
        {
            "storage": {"sqlite": {"retention_days": 30}},
            "execution_tracking": {"retention_days": 90},
        }
    )
    assert both.retention_days == 90


def test_storage_type_selects_its_section_and_an_unknown_type_stops_start_up():
    cfg = from_dict({"storage": {"type": "sqlite", "sqlite": {"retention_days": 7}}})
    assert cfg.storage.backend is cfg.storage.sqlite and cfg.retention_days == 7
    with pytest.raises(ConfigError) as err:
        from_dict({"storage": {"type": "mongodb"}})
    assert str(err.value) == (
        "storage.type: unsupported storage type (available: sqlite, postgresql, mysql) 'mongodb'"
    )


@pytest.mark.parametrize(
    "section, message",
    [
        ({"max_connections": 0}, "storage.postgresql.max_connections: must be >= 1 0"),
        ({"port": 70000}, "storage.postgresql.port: out of range 70000"),
        (
            {"connect_timeout": "soon"},
            "storage.postgresql.connect_timeout: invalid duration 'soon'",
        ),
        ({"connect_timeout": "0s"}, "storage.postgresql.connect_timeout: must be >= 1s 0.0"),
        (
            {"sslmode": "maybe"},
            "storage.postgresql.sslmode: expected one of disable, allow, prefer, require, "
            "verify-ca, verify-full 'maybe'",
        ),
        (
            {"synchronous_commit": "sometimes"},
            "storage.postgresql.synchronous_commit: expected one of on, off, local, "
            "remote_write, remote_apply 'sometimes'",
        ),
        (
            {"password": "hunter2-in-the-file"},
            "storage.postgresql.password: write env:NAME, never the password itself '<hidden>'",
        ),
        (
            {"password": "env:BRIDGE_TEST_UNSET_PASSWORD"},
            "storage.postgresql.password: unset or empty environment variable "
            "'BRIDGE_TEST_UNSET_PASSWORD'",
        ),
        (
            {"dsn": "mysql://root:hunter2@db/x"},
            "storage.postgresql.dsn: expected a postgresql:// URL 'mysql://root:***@db/x'",
        ),
    ],
)
def test_a_bad_postgresql_value_stops_start_up_in_one_line(section, message):
    with pytest.raises(ConfigError) as err:
        from_dict({"storage": {"type": "postgresql", "postgresql": section}})
    assert str(err.value) == message and "hunter2" not in message


def test_postgresql_section_defaults_and_its_variables_read_only_when_chosen():
    cfg = from_dict({"storage": {"postgresql": {"password": "env:BRIDGE_TEST_UNSET_PASSWORD"}}})
    pg = cfg.storage.postgresql
    assert cfg.storage.type == "sqlite" and (pg.host, pg.port, pg.user) == (
        "127.0.0.1",
        5432,
        "postgres",
    )
    assert (pg.max_connections, pg.connect_timeout, pg.sslmode) == (10, 5.0, "prefer")
    assert pg.synchronous_commit == "off"


def test_database_url_overrides_the_files_storage_settings(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "storage:\n  type: sqlite\n  postgresql:\n    max_connections: 3\n    host: elsewhere\n"
    )
    url = "postgresql://bridge:hunter2@db.internal:6543/history?sslmode=require"
    environ = {"BRIDGE_CONFIG": str(path), "BRIDGE_DATABASE_URL": url}
    cfg = load(None, environ)
    assert cfg.storage.type == "postgresql" and cfg.storage.postgresql.dsn == url
    assert cfg.storage.postgresql.max_connections == 3  # the section's other keys stay
    cfg = load(None, {**environ, "BRIDGE_DATABASE_URL": "sqlite:///elsewhere/x.db"})
    assert cfg.storage.type == "sqlite" and cfg.database_path == tmp_path / "elsewhere/x.db"
    cfg = load(None, {**environ, "BRIDGE_DATABASE_URL": "sqlite:////var/lib/x.db"})
    assert cfg.database_path == Path("/var/lib/x.db")
    for mysql in ("mysql://bridge:hunter2@db.internal:3307/history", "mariadb://root@db/x"):
        cfg = load(None, {**environ, "BRIDGE_DATABASE_URL": mysql})
        assert cfg.storage.type == "mysql" and cfg.storage.mysql.dsn == mysql
    with pytest.raises(ConfigError) as err:
        load(None, {**environ, "BRIDGE_DATABASE_URL": "mongodb://root:hunter2@db/x"})
    assert str(err.value) == (
        "BRIDGE_DATABASE_URL: expected postgresql://, mysql://user@host:port/database or "
        "sqlite:///path 'mongodb://root:***@db/x'"
    )


@pytest.mark.parametrize(
    "section, message",
    [
        ({"max_connections": 0}, "storage.mysql.max_connections: must be >= 1 0"),
        ({"port": 0}, "storage.mysql.port: out of range 0"),
        ({"connect_timeout": "0s"}, "storage.mysql.connect_timeout: must be >= 1s 0.0"),
        (
            {"password": "hunter2-in-the-file"},
            "storage.mysql.password: write env:NAME, never the password itself '<hidden>'",
        ),
        (
            {"password": "env:BRIDGE_TEST_UNSET_PASSWORD"},
            "storage.mysql.password: unset or empty environment variable "
            "'BRIDGE_TEST_UNSET_PASSWORD'",
        ),
        (
            {"dsn": "postgresql://root:hunter2@db/x"},
            "storage.mysql.dsn: expected mysql://user@host:port/database "
            "'postgresql://root:***@db/x'",
        ),
        (
            {"dsn": "mysql://root:hunter2@db"},
            "storage.mysql.dsn: expected mysql://user@host:port/database 'mysql://root:***@db'",
        ),
    ],
)
def test_a_bad_mysql_value_stops_start_up_in_one_line(section, message):
    with pytest.raises(ConfigError) as err:
        from_dict({"storage": {"type": "mysql", "mysql": section}})
    assert str(err.value) == message and "hunter2" not in message


def test_mysql_section_defaults_and_its_variables_read_only_when_chosen():
    cfg = from_dict({"storage": {"mysql": {"password": "env:BRIDGE_TEST_UNSET_PASSWORD"}}})
    my = cfg.storage.mysql
    assert cfg.storage.type == "sqlite" and (my.host, my.port, my.user) == (
        "127.0.0.1",
        3306,
        "root",
    )
    assert (my.max_connections, my.connect_timeout, my.database) == (10, 5.0, "webhook_bridge")


@pytest.mark.parametrize(
    "text, shown",
    [
        ("postgresql://u:hunter2@h:5/d", "postgresql://u:***@h:5/d"),
        ("postgresql://u:hun@ter2@h/d", "postgresql://u:***@h/d"),
        (
            "postgresql://h/d?sslmode=require&password=hunter2",
            "postgresql://h/d?sslmode=require&password=***",
        ),
        ("host=h password=hunter2 user=u", "host=h password=*** user=u"),
        ("host=h password='hun ter2' user=u", "host=h password=*** user=u"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
    ],
)
def test_a_database_url_is_shown_without_its_password(text, shown):
    assert redact_url(text) == shown


def test_config_override_beats_class_attribute(make_app):
    app = make_app(plugins={"settings": {"hanging": {"timeout": "50ms"}}})
    plugin = app.extensions["bridge.registry"].get("hanging")
    assert plugin.settings.timeout == pytest.approx(0.05)
