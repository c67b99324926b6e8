"""What only the MySQL backend promises: migrations applied once however many bridges
start at once, a leader lock the server frees when its connection dies, column types
people can query, 4-byte UTF-8 and long values kept, no password anywhere, and the app
serving webhooks and the history on it."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from bridge.config import from_dict
from bridge.errors import StorageError
from bridge.model import ExecutionFilter
from bridge.storage import open_store
from bridge.storage.base import HOUR
from bridge.storage.mysql import MySQLStore, migrations
from bridge.storage.mysql.maintenance import MySQLInfo
from bridge.storage.mysql.migrations import MIGRATIONS
from bridge.storage.rollup import rollup
from bridge.storage.stats import window_stats

from .databases import mysql_admin, mysql_database
from .runs import NOW, finished, running, sixty_runs

PASSWORD = "Pw-4f9c1e-not-shown"


@pytest.fixture
def database(tmp_path):
    """The storage.mysql section of a fresh database."""
    with mysql_database(tmp_path) as settings:
        yield settings


@pytest.fixture
def my_store(make_store) -> MySQLStore:
    return make_store("mysql")


def _open(settings, **extra):
    section = {**settings, **extra}
    return open_store(from_dict({"storage": {"type": "mysql", "mysql": section}}), lambda *a: None)


def _query(store: MySQLStore, sql: str, args=()):
    return store._read(lambda cur: (cur.execute(sql, args), cur.fetchall())[1])


def test_bridges_starting_at_once_migrate_exactly_once(database, caplog):
    start = threading.Barrier(3)
    stores, errors = [], []

    def open_one():
        start.wait()
        try:
            stores.append(_open(database))
        except Exception as exc:
            errors.append(exc)

    caplog.set_level(logging.INFO, "bridge.storage.mysql")
    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert errors == [] and len(stores) == 3
        assert {s.schema_version for s in stores} == {len(MIGRATIONS)}
        rows = _query(stores[0], "SELECT version, name FROM schema_version ORDER BY 1")
        assert list(rows) == [(i, name) for i, (name, _) in enumerate(MIGRATIONS, start=1)]
        applied = [r.getMessage() for r in caplog.records if "Applied migration" in r.getMessage()]
        assert len(applied) == len(MIGRATIONS)
    finally:
        for s in stores:
            s.close()


def _figures(store: MySQLStore) -> tuple[object, ...]:
    """The week's stats, plugin a's, and the hourly rollups, oldest first."""
    with store.snapshot() as reader:
        hours = sorted(
            reader.rollups(HOUR, NOW - timedelta(days=7), NOW), key=lambda r: (r.start, r.plugin)
        )
    return window_stats(store, 7, None, NOW), window_stats(store, 7, "a", NOW), hours


def test_rollups_made_before_the_hourly_table_was_reordered_are_kept(database, monkeypatch):
    """A database of the version before `cluster_hourly_rollups_by_hour`, with hourly
    and daily rollups, is upgraded at start-up: stats read the same figures after it,
    and its hours are stored in hour order."""
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS[:-1])
    store = _open(database)
    try:
        store.insert_many(sixty_runs())
        rollup(store, NOW)
        before = _figures(store)
    finally:
        store.close()
    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS)
    store = _open(database)
    try:
        assert store.schema_version == len(MIGRATIONS)
        assert before[0]["total_executions"] == 60 and len(before[2]) == 60
        assert _figures(store) == before
        keys = _query(
            store,
            "SELECT column_name FROM information_schema.statistics WHERE table_schema = "
            "DATABASE() AND table_name = 'execution_metrics' AND index_name = 'PRIMARY' "
            "ORDER BY seq_in_index",
        )
        assert [k for (k,) in keys] == ["hour_start", "plugin_name"]
    finally:
        store.close()


def test_writes_after_a_snapshot_are_read_committed(my_store):
    """A snapshot leaves REPEATABLE READ on its pooled connection for the next one; a
    write on that connection runs at READ COMMITTED again (no gap locks on the
    history's indexes while webhooks insert)."""
    level = "SELECT @@SESSION.tx_isolation"
    with my_store.snapshot() as reader:
        reader.conn.execute(level)
        assert reader.conn.fetchone() == ("REPEATABLE-READ",)
    seen = my_store.write(lambda w: (w.conn.execute(level), w.conn.fetchone())[1])
    assert seen == ("READ-COMMITTED",)
    assert my_store._write(lambda cur: (cur.execute(level), cur.fetchone())[1]) == seen


def test_the_leader_lock_is_freed_when_its_connection_dies(my_store, make_store):
    leader, standby = my_store.leader_lock("scheduler"), make_store("mysql")
    other = standby.leader_lock("scheduler")
    assert leader.try_acquire() is True and other.try_acquire() is False
    admin = mysql_admin()
    try:
        admin.cursor().execute(f"KILL CONNECTION {int(leader.connection_id)}")
    finally:
        admin.close()
    assert other.try_acquire() is True
    assert leader.try_acquire() is False  # it finds its connection gone, and the lock taken
    other.release()
    assert leader.try_acquire() is True
    leader.release()


def test_columns_have_types_other_tools_can_query(my_store):
    types = dict(
        _query(
            my_store,
            "SELECT CONCAT(table_name, '.', column_name), column_type FROM "
            "information_schema.columns WHERE table_schema = DATABASE()",
        )
    )
    for column in ("executions.start_time", "executions.end_time", "deliveries.created_at"):
        assert types[column] == "datetime(6)"
    # MariaDB's JSON is LONGTEXT checked by JSON_VALID; MySQL's its own type.
    for column in ("executions.tags", "execution_metrics.histogram", "bridge_state.value"):
        assert types[column] in ("json", "longtext")
    assert types["executions.duration"] == "bigint(20)" or types["executions.duration"] == "bigint"
    (charset,) = {
        row[0]
        for row in _query(
            my_store,
            "SELECT DISTINCT character_set_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND character_set_name IS NOT NULL "
            "AND table_name <> 'schema_version'",
        )
    }
    assert charset == "utf8mb4"


def test_4_byte_utf8_long_values_and_case_are_kept(my_store):
    emoji = "deploy 🚀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"
    big = "x" * 3_000_000 + "🚀"
    run = finished("utf", NOW, tags='{"env": "🚀", "who": "\\ud800"}', input=big)
    run.error, run.output = emoji, emoji * 10_000
    my_store.update(run)
    got = my_store.get("utf")
    assert (got.error, got.output, got.input) == (emoji, emoji * 10_000, big)
    assert got.tags == '{"env": "🚀", "who": "\ufffd"}'
    my_store.update(finished("UTF", NOW, plugin="A", tags='{"env": "🚀 "}'))  # not "utf", "a"
    with my_store.snapshot() as reader:
        assert reader.count(ExecutionFilter(tags=(("env", "🚀"),))) == 1
        assert reader.count(ExecutionFilter(plugin="a")) == 1
    assert my_store.get("UTF").plugin_name == "A"
    assert my_store.claim_delivery("a", "K", "r1", NOW, 60) is None
    assert my_store.claim_delivery("a", "k", "r2", NOW, 60) is None  # keys differ by case


def test_what_json_cannot_hold_is_stored_changed_not_refused(my_store):
    my_store.update(finished("odd", NOW, metadata='{"ratio": NaN, "big": 1e999}'))
    assert my_store.get("odd").metadata == '{"ratio": "NaN", "big": "1e999"}'
    my_store.update(finished("plain", NOW, tags="", metadata="not json"))
    assert (my_store.get("plain").tags, my_store.get("plain").metadata) == ("", '"not json"')


def test_info_tells_the_server_and_sizes(my_store):
    my_store.insert(running("r", NOW), wait=True)
    info = my_store.info()
    assert isinstance(info.backend, MySQLInfo) and "MariaDB" in info.backend.server_version
    assert info.backend.database.startswith("bridge_test_")
    assert 0 < info.size_bytes <= info.backend.database_size
    assert info.location.startswith("mysql://root@") and info.total_records == 1


def test_a_password_is_never_shown(database, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    url = urlsplit(database["dsn"])
    with_password = database["dsn"].replace("://root@", f"://root:{PASSWORD}@")
    failures = [
        with_password,  # the server refuses it (root has no password)
        with_password.replace(f":{url.port}/", ":1/"),  # nobody answers
        with_password.replace(f":{url.port}/", ":port/"),  # not a URL
    ]
    for dsn in failures:
        with pytest.raises(StorageError) as err:
            _open(database, dsn=dsn)
        message = str(err.value)
        assert PASSWORD not in message and "\n" not in message, message
        assert message.startswith("failed to open database")
    monkeypatch.setenv("BRIDGE_TEST_MY_PASSWORD", PASSWORD)
    fields = {"dsn": "", "host": url.hostname, "port": url.port, "database": "x"}
    with pytest.raises(StorageError) as err:
        _open(database, **fields, password="env:BRIDGE_TEST_MY_PASSWORD")
    assert PASSWORD not in str(err.value) and "mysql://root@" in str(err.value)
    store = _open(database)
    try:
        assert PASSWORD not in repr(asdict(store.info())) and store.health() == (True, "ok")
    finally:
        store.close()
    assert PASSWORD not in caplog.text


def test_a_server_that_does_not_answer_stops_opening_in_one_line():
    with pytest.raises(StorageError) as err:
        _open({"dsn": "mysql://root@127.0.0.1:1/test", "connect_timeout": "2s"})
    assert str(err.value).startswith(
        "failed to open database mysql://root@127.0.0.1:1/test: (2003, \"Can't connect"
    )


def test_the_app_serves_a_webhook_and_lists_it_from_mysql(database, make_app):
    app = make_app(
        storage={"type": "mysql", "mysql": database},
        execution_tracking={"enabled": True},
    )
    client = app.test_client()
    sent = client.post("/api/v1/webhook/ok", json={"n": 1}, headers={"X-Bridge-Tags": "env:e2e"})
    assert sent.status_code == 200, sent.get_json()
    run_id = sent.get_json()["execution_id"]
    listed = client.get("/api/v1/executions?plugin=ok&tag=env:e2e").get_json()
    assert listed["total"] == 1 and listed["executions"][0]["id"] == run_id
    one = client.get(f"/api/v1/executions/{run_id}").get_json()
    assert one["execution"]["status"] == "completed" and len(one["attempts"]) == 1
    assert one["execution"]["tags"] == '{"env": "e2e"}'
    stats = client.get("/api/v1/executions/stats").get_json()
    assert stats["stats"]["total_executions"] == 1
    info = client.get("/api/v1/executions/storage/info").get_json()
    assert info["type"] == "mysql" and info["healthy"] is True
    assert "MariaDB" in info["backend"]["server_version"]
    health = client.get("/health").get_json()["checks"]["storage"]
    assert (health["status"], health["type"]) == ("healthy", "mysql")
