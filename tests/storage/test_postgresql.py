"""What only the PostgreSQL backend promises: migrations applied once however many
bridges start at once, a leader lock the server frees when its session dies, column
types people can query, indexes that serve the list, no password anywhere, and the
app serving webhooks and the history on it."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict

import psycopg
import pytest

from bridge.config import from_dict
from bridge.errors import StorageError
from bridge.model import ExecutionFilter, Status
from bridge.storage import open_store
from bridge.storage.postgresql import PostgreSQLStore
from bridge.storage.postgresql.maintenance import PostgreSQLInfo
from bridge.storage.postgresql.migrations import MIGRATIONS
from bridge.storage.postgresql.writer import Runs, write_runs
from bridge.storage.server import RunWrite
from bridge.storage.tickets import Ticket

from .databases import POSTGRESQL_URL, postgresql_schema
from .runs import NOW, finished, running

PASSWORD = "Pw-4f9c1e-not-shown"  # trust auth: the test server takes any password


@pytest.fixture
def database(tmp_path):
    """The storage.postgresql section of a fresh schema."""
    with postgresql_schema(tmp_path) as settings:
        yield settings


@pytest.fixture
def pg_store(make_store) -> PostgreSQLStore:
    return make_store("postgresql")


def _open(settings, **extra):
    section = {**settings, **extra}
    return open_store(
        from_dict({"storage": {"type": "postgresql", "postgresql": section}}), lambda *a: None
    )


def test_bridges_starting_at_once_migrate_exactly_once(database, caplog):
    start = threading.Barrier(3)
    stores, errors = [], []

    def open_one():
        start.wait()
        try:
            stores.append(_open(database))
        except Exception as exc:
            errors.append(exc)

    caplog.set_level(logging.INFO, "bridge.storage.postgresql")
    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert errors == [] and len(stores) == 3
        assert {s.schema_version for s in stores} == {len(MIGRATIONS)}
        with stores[0]._connection() as conn:
            rows = conn.execute("SELECT version, name FROM schema_version ORDER BY 1").fetchall()
        assert rows == [(i, name) for i, (name, _) in enumerate(MIGRATIONS, start=1)]
        applied = [r.getMessage() for r in caplog.records if "Applied migration" in r.getMessage()]
        assert len(applied) == len(MIGRATIONS)
    finally:
        for s in stores:
            s.close()


@pytest.mark.parametrize(
    ("new_row", "row_again", "tagged"),
    [(n, a, t) for n in (False, True) for a in (False, True) for t in (False, True) if n or a],
)
def test_a_batch_is_one_statement_of_the_parts_it_has(pg_store, new_row, row_again, tagged):
    """The writer's statement has only the parts a batch needs (new rows, rows written
    again with their attempts, tags): each shape writes all it is given."""
    tags = '{"env": "prod"}' if tagged else "{}"
    batch = []
    if new_row:
        batch.append(RunWrite(pg_store, running("new", NOW, tags=tags), upsert=False))
    if row_again:
        pg_store.insert(running("again", NOW), wait=True)
        again = finished("again", NOW, status=Status.FAILED, error_type="timeout", tags=tags)
        batch.append(RunWrite(pg_store, again, upsert=True))
    pg_store._write(lambda conn: write_runs(conn, batch))
    for write in batch:
        stored = pg_store.get(write.record.id)
        assert stored is not None and stored.status is write.record.status
        assert [a.status for a in stored.attempt_records] == [
            a.status for a in write.record.attempt_records
        ]
    with pg_store.snapshot() as reader:
        found = reader.page(ExecutionFilter(tags=(("env", "prod"),)), 10, 0, None)[0]
    assert sorted(r.id for r in found) == (sorted(w.record.id for w in batch) if tagged else [])


METADATA = ('{"ratio": NaN, "big": 1e999, "who": "\\ud800"}', "not json", "", "[]", "0")


def _odd(run_id: str, *, done: bool, metadata: str = METADATA[0]):
    """A run without tags, with what text, jsonb and times make hard."""
    run = finished(run_id, NOW) if done else running(run_id, NOW)
    run.input = r'{"s": "\u00e9 \ud83d\ude00 \\ \""}' + " é 😀 漢 nul\x00 lone\ud800"
    run.output = "é\x01\t\\ 漢 \U0001f600 'quoted' $1"
    run.metadata = metadata
    run.user_agent, run.worker, run.trace_id = "curl/8", "host:1", "trace-1"
    return run


def test_the_usual_batch_stores_what_the_json_statement_stores(pg_store):
    """Runs of one kind without tags or attempt rows go as a multi-row INSERT through
    libpq: the same rows come back as through WRITE_RUNS, for new rows and rows written
    again, whatever their text holds."""
    assert Runs.usual([RunWrite(pg_store, _odd("x", done=True), upsert=True)])
    for way, write in (("multirow", Runs().write), ("json", write_runs)):
        for upsert in (False, True):
            ids = [f"{way}-{upsert}-{i}" for i in range(len(METADATA))]
            if upsert:
                for run_id in ids:
                    pg_store.insert(running(run_id, NOW), wait=True)
            batch = [
                RunWrite(pg_store, _odd(i, done=upsert, metadata=m), upsert=upsert)
                for i, m in zip(ids, METADATA, strict=True)
            ]
            pg_store._write(lambda conn, batch=batch, write=write: write(conn, batch))
    for upsert in (False, True):
        for i in range(len(METADATA)):
            via_libpq = asdict(pg_store.get(f"multirow-{upsert}-{i}"))
            via_json = asdict(pg_store.get(f"json-{upsert}-{i}"))
            assert via_libpq.pop("id") != via_json.pop("id")
            assert via_libpq == via_json
    new, again = pg_store.get("multirow-False-0"), pg_store.get("multirow-True-0")
    assert "nul\ufffd lone\ufffd" in new.input
    assert new.metadata == '{"big": "1e999", "who": "\ufffd", "ratio": "NaN"}'
    assert pg_store.get("multirow-False-1").metadata == '"not json"'
    assert [pg_store.get(f"multirow-False-{i}").metadata for i in (3, 4)] == ["[]", "0"]
    assert again.status is Status.COMPLETED and again.end_time is not None
    assert again.output == _odd("y", done=True).output and again.worker == "host:1"


def test_the_usual_batch_survives_its_statements_being_deallocated(pg_store):
    """A pooler or a DISCARD ALL drops the prepared statements: the next batch prepares
    its statement again instead of failing."""
    runs = Runs()
    with pg_store._connection() as conn:
        runs.write(conn, [RunWrite(pg_store, finished("one", NOW), upsert=True)])
        conn.execute("DEALLOCATE ALL")
        runs.write(conn, [RunWrite(pg_store, finished("two", NOW), upsert=True)])
    assert pg_store.get("one") is not None and pg_store.get("two") is not None


def test_a_refused_run_of_the_usual_batch_loses_only_its_own_write(pg_store):
    """A row the server refuses (here an id already taken) fails that run's write;
    the others of its batch are stored."""
    pg_store.insert(running("taken", NOW), wait=True)
    duplicate = RunWrite(pg_store, running("taken", NOW), upsert=False)
    fine = [RunWrite(pg_store, running(f"fine-{i}", NOW), upsert=False) for i in range(2)]
    writer = pg_store._writer()
    tickets = [Ticket(w, wait=True) for w in (fine[0], duplicate, fine[1])]
    writer._commit(writer._conn or writer._connect(), tickets)
    assert [t.refused for t in tickets] == [False, True, False]
    assert pg_store.get("fine-0") is not None and pg_store.get("fine-1") is not None


def test_the_leader_lock_is_freed_when_its_session_dies(pg_store, make_store):
    leader, standby = pg_store.leader_lock("scheduler"), make_store("postgresql")
    other = standby.leader_lock("scheduler")
    assert leader.try_acquire() is True and other.try_acquire() is False
    with psycopg.connect(POSTGRESQL_URL, autocommit=True) as admin:  # the session dies
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (leader.backend_pid,))
    assert other.try_acquire() is True
    assert leader.try_acquire() is False  # it finds its session gone, and the lock taken
    other.release()
    assert leader.try_acquire() is True
    leader.release()


def test_columns_have_types_other_tools_can_query(pg_store):
    with pg_store._connection() as conn:
        types = dict(
            conn.execute(
                "SELECT table_name || '.' || column_name, data_type FROM "
                "information_schema.columns WHERE table_schema = current_schema()"
            ).fetchall()
        )
    for column in ("executions.start_time", "executions.end_time", "deliveries.created_at"):
        assert types[column] == "timestamp with time zone"
    for column in ("executions.tags", "executions.metadata", "execution_metrics.histogram"):
        assert types[column] == "jsonb"
    assert types["bridge_state.value"] == "jsonb" and types["executions.duration"] == "bigint"


def test_what_jsonb_and_text_cannot_hold_is_stored_changed_not_refused(pg_store):
    run = finished(
        "odd",
        NOW,
        tags='{"env": "pr\\u0000od", "who": "\\ud800"}',
        metadata='{"ratio": NaN, "big": 1e999}',
    )
    run.error = "nul\x00byte"
    pg_store.update(run)
    got = pg_store.get("odd")
    assert got.tags == '{"env": "pr\ufffdod", "who": "\ufffd"}'
    assert got.metadata == '{"big": "1e999", "ratio": "NaN"}'  # jsonb orders keys
    assert got.error == "nul\ufffdbyte"
    with pg_store.snapshot() as reader:
        assert reader.count(ExecutionFilter(tags=(("env", "pr\x00od"),))) == 1
    pg_store.update(finished("plain", NOW, tags="", metadata="not json"))
    assert (pg_store.get("plain").tags, pg_store.get("plain").metadata) == ("", '"not json"')
    # What JSON escapes on the way (a batch's rows travel as a JSON array) comes back as is
    wide = finished("wide", NOW, tags=r'{"who": "\u6f22\ud83d\ude00"}')
    wide.input = r'{"s": "\u00e9 \ud83d\ude00 \u0001 \\ \""}' + " é 😀 漢"
    wide.output = "é\x01\t\\ 漢 \U0001f600"
    pg_store.update(wide)
    got = pg_store.get("wide")
    assert (got.input, got.output) == (wide.input, wide.output)
    assert got.tags == '{"who": "漢😀"}'


@pytest.mark.parametrize(
    "where",
    [
        "plugin_name = 'a'",
        "status = 'failed'",
        "error_type = 'timeout'",
        "plugin_name = 'a' AND status = 'failed'",
        "start_time >= now()",
        "(start_time, seq) < (now(), 5)",
        "plugin_name = 'a' AND (start_time, seq) < (now(), 5)",
    ],
)
def test_indexes_serve_list_filters_in_order(pg_store, where):
    def plan(conn):
        with conn.transaction():
            conn.execute("SET LOCAL enable_seqscan = off")
            conn.execute("SET LOCAL enable_sort = off")  # costed out, yet used if needed
            sql = f"SELECT id FROM executions WHERE {where} ORDER BY start_time DESC, seq DESC"
            return " ".join(row[0] for row in conn.execute(f"EXPLAIN {sql} LIMIT 50"))

    text = pg_store._read(plan)
    assert "Index" in text and "Sort" not in text, (where, text)


def test_queries_are_not_jit_compiled_unless_the_dsn_asks(database):
    """Compiling a query with LLVM costs 30-300 ms, many times what the list runs for."""
    store = _open(database)
    try:
        assert store._read(lambda c: c.execute("SHOW jit").fetchone()) == ("off",)
        assert store._read(lambda c: c.execute("SHOW TimeZone").fetchone()) == ("UTC",)
    finally:
        store.close()
    dsn = database["dsn"].replace("options=", "options=-c%20jit%3Don%20")
    store = _open(database, dsn=dsn)
    try:
        assert store._read(lambda c: c.execute("SHOW jit").fetchone()) == ("on",)
    finally:
        store.close()


def _writer_setting(store, name):
    return store._writer().submit(lambda c: c.execute(f"SHOW {name}").fetchone()[0], wait=True)


def test_run_records_wait_for_the_wal_flush_only_when_asked(database):
    """By default a run's record is committed without waiting for the WAL's fsync (what
    SQLite's synchronous NORMAL does); `synchronous_commit: on` waits for it, and the
    setting applies to the run records' writer only."""
    store = _open(database)
    try:
        assert _writer_setting(store, "synchronous_commit") == "off"
        assert store._read(lambda c: c.execute("SHOW synchronous_commit").fetchone()) == ("on",)
    finally:
        store.close()
    store = _open(database, synchronous_commit="on")
    try:
        assert _writer_setting(store, "synchronous_commit") == "on"
    finally:
        store.close()
    dsn = database["dsn"].replace("options=", "options=-c%20synchronous_commit%3Dlocal%20")
    store = _open(database, dsn=dsn)  # the DSN's own options win
    try:
        assert _writer_setting(store, "synchronous_commit") == "local"
    finally:
        store.close()


def test_info_tells_the_server_and_sizes(pg_store):
    pg_store.insert(running("r", NOW), wait=True)
    info = pg_store.info()
    assert isinstance(info.backend, PostgreSQLInfo) and info.backend.server_version[:2] == "15"
    assert info.backend.schema.startswith("bridge_test_") and info.backend.database
    assert 0 < info.size_bytes <= info.backend.database_size
    assert info.location.startswith("postgresql://") and info.total_records == 1


def test_a_password_is_never_shown(database, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    with_password = database["dsn"].replace(
        "postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@"
    )
    store = _open(database, dsn=with_password)
    try:
        info = store.info()
        assert PASSWORD not in repr(asdict(info)) and PASSWORD not in str(store.health())
        assert info.location == "postgresql://postgres@127.0.0.1:5432/test"
    finally:
        store.close()
    monkeypatch.setenv("BRIDGE_TEST_PG_PASSWORD", PASSWORD)
    failures = [
        with_password.replace("/test?", "/no_such_database?"),  # the server says no
        with_password.replace(":5432/", ":1/"),  # nobody answers
        with_password + "&bogus=1",  # libpq cannot read it
    ]
    for dsn in failures:
        with pytest.raises(StorageError) as err:
            _open(database, dsn=dsn)
        message = str(err.value)
        assert PASSWORD not in message and "\n" not in message, message
        assert message.startswith("failed to open database")
    fields = {"dsn": "", "host": "127.0.0.1", "database": "no_such_database"}
    with pytest.raises(StorageError) as err:
        _open(database, **fields, password="env:BRIDGE_TEST_PG_PASSWORD")
    assert PASSWORD not in str(err.value) and "no_such_database" in str(err.value)
    assert PASSWORD not in caplog.text


def test_a_server_that_does_not_answer_stops_opening_in_one_line():
    with pytest.raises(StorageError) as err:
        _open({"dsn": "postgresql://postgres@127.0.0.1:1/test", "connect_timeout": "2s"})
    assert str(err.value).startswith(
        "failed to open database postgresql://postgres@127.0.0.1:1/test: connection failed"
    )


def test_the_app_serves_a_webhook_and_lists_it_from_postgresql(database, make_app):
    app = make_app(
        storage={"type": "postgresql", "postgresql": database},
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
    assert info["type"] == "postgresql" and info["healthy"] is True
    assert info["backend"]["server_version"].startswith("15")
    health = client.get("/health").get_json()["checks"]["storage"]
    assert (health["status"], health["type"]) == ("healthy", "postgresql")
