"""SQLite migrations are found by name in the `migrations` table, as databases made by
earlier versions recorded them (ids 1..n with their names)."""

from __future__ import annotations

import sqlite3

import pytest

from bridge.storage.sqlite.migrations import MIGRATIONS, migrate


def _connect(path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _recorded(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    return conn.execute("SELECT id, name FROM migrations ORDER BY id").fetchall()


def test_a_new_database_gets_every_migration_once(tmp_path):
    conn = _connect(tmp_path / "m.db")
    assert migrate(conn) == len(MIGRATIONS)
    expected = [(i, name) for i, (name, _) in enumerate(MIGRATIONS, start=1)]
    assert _recorded(conn) == expected
    assert migrate(conn) == len(MIGRATIONS)  # a second start applies nothing
    assert _recorded(conn) == expected


def test_a_database_of_an_earlier_version_gets_only_the_later_migrations(tmp_path):
    conn = _connect(tmp_path / "m.db")
    conn.execute(
        "CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TEXT NOT NULL)"
    )
    for number, (name, sql) in enumerate(MIGRATIONS[:5], start=1):
        conn.executescript(sql)
        conn.execute("INSERT INTO migrations VALUES (?, ?, '2025-01-01')", (number, name))
    assert migrate(conn) == len(MIGRATIONS)
    assert _recorded(conn) == [(i, name) for i, (name, _) in enumerate(MIGRATIONS, start=1)]
    assert conn.execute("SELECT count(*) FROM execution_metrics_daily").fetchone() == (0,)


def test_a_migration_recorded_under_another_id_is_not_applied_again(tmp_path):
    conn = _connect(tmp_path / "m.db")
    migrate(conn)
    conn.execute("UPDATE migrations SET id = id + 100")  # ids no longer match positions
    assert migrate(conn) == 100 + len(MIGRATIONS)
    assert len(_recorded(conn)) == len(MIGRATIONS)


def test_a_migration_that_fails_leaves_no_trace(tmp_path, monkeypatch):
    import bridge.storage.sqlite.migrations as migrations

    monkeypatch.setattr(
        migrations, "MIGRATIONS", [*MIGRATIONS, ("broken", "CREATE TABLE executions (x)")]
    )
    conn = _connect(tmp_path / "m.db")
    with pytest.raises(sqlite3.OperationalError):
        migrations.migrate(conn)
    assert conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'migrations'"
    ).fetchone() == (0,)


def test_runs_and_claims_stored_before_an_upgrade_are_filled_in(tmp_path):
    """Tags of runs stored before the tag table existed are indexed by the migration,
    and claims made before claims kept their outcome get the state of their run."""
    conn = _connect(tmp_path / "m.db")
    conn.execute(
        "CREATE TABLE migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "applied_at TEXT NOT NULL)"
    )
    older = [m for m in MIGRATIONS if m[0] not in ("add_delivery_outcome", "create_execution_tags")]
    for number, (name, sql) in enumerate(older, start=1):
        conn.executescript(sql)
        conn.execute("INSERT INTO migrations VALUES (?, ?, '2025-01-01')", (number, name))
    conn.execute(
        "INSERT INTO executions (id, plugin_name, http_method, start_time, status, tags, "
        "created_at, updated_at) VALUES ('old', 'a', 'POST', 5, 'completed', "
        """'{"env": "prod", "n": 3}', 5, 5)"""
    )
    conn.execute("INSERT INTO deliveries VALUES ('a', 'k', 'old', 5)")
    migrate(conn)
    assert sorted(conn.execute("SELECT key, value, execution_id FROM execution_tags")) == [
        ("env", "prod", "old"),
        ("n", "3", "old"),
    ]
    assert conn.execute("SELECT state FROM deliveries").fetchone() == ("completed",)
