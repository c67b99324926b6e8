from __future__ import annotations

import importlib
import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from storage.databases import ON_EVERY_BACKEND

from bridge import clock
from bridge.model import ExecutionRecord, Status


def _run(client, plugin="ok", **kw):
    return client.post(f"/api/v1/webhook/{plugin}", json=kw)


@ON_EVERY_BACKEND
def test_list_filters_total_and_cursor(client):
    for i in range(5):
        _run(client, i=i)
    _run(client, "raising")
    body = client.get("/api/v1/executions?limit=2").get_json()
    assert body["total"] == 6 and len(body["executions"]) == 2
    seen = [e["id"] for e in body["executions"]]
    cursor = body["next_cursor"]
    while cursor:
        page = client.get(f"/api/v1/executions?limit=2&cursor={cursor}").get_json()
        seen += [e["id"] for e in page["executions"]]
        cursor = page["next_cursor"]
    assert len(seen) == len(set(seen)) == 6
    failed = client.get("/api/v1/executions?status=failed").get_json()
    assert failed["total"] == 1 and failed["executions"][0]["plugin_name"] == "raising"
    assert failed["filter"] == {"status": "failed"}
    assert client.get("/api/v1/executions?plugin=ok").get_json()["total"] == 5
    assert client.get("/api/v1/executions?error_type=validation_error").get_json()["total"] == 1


@pytest.mark.parametrize(
    "query,field",
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
        ("status=done", "status"),
        ("since=yesterday", "since"),
        ("cursor=%%%", "cursor"),
        ("plugin=' OR 1=1 --&status=failed", None),
        ("bogus=1", "bogus"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(client, query, field):
    r = client.get(f"/api/v1/executions?{query}")
    if field is None:
        assert r.status_code == 200 and r.get_json()["total"] == 0
        return
    body = r.get_json()
    assert r.status_code == 422, body
    assert body["code"] == 422 and field in body["errors"]


def test_detail_and_unknown_id(client):
    r = _run(client, "ok", city="x")
    detail = client.get(f"/api/v1/executions/{r.get_json()['execution_id']}").get_json()
    ex = detail["execution"]
    assert json.loads(ex["input"]) == {"city": "x"}
    assert json.loads(ex["output"])["echo"] == {"city": "x"}
    assert ex["duration"] > 0 and ex["start_time"].endswith("Z")
    assert len(detail["attempts"]) == 1
    assert client.get("/api/v1/executions/nope").status_code == 404


def test_truncation_keeps_valid_json(make_app):
    client = make_app(execution_tracking={"max_input_size": 100}).test_client()
    r = _run(client, "ok", blob="z" * 500)
    ex = client.get(f"/api/v1/executions/{r.get_json()['execution_id']}").get_json()
    stored = json.loads(ex["execution"]["input"])
    assert stored["truncated"] is True and stored["original_size"] > 500
    assert stored["preview"].startswith('{"blob": "zzz')


def test_tags_from_header_and_query(client):
    r = client.post(
        "/api/v1/webhook/ok?tag=env:prod", json={}, headers={"X-Bridge-Tags": "job_id=job-123"}
    )
    ex = client.get(f"/api/v1/executions/{r.get_json()['execution_id']}").get_json()
    assert json.loads(ex["execution"]["tags"]) == {"job_id": "job-123", "env": "prod"}


@ON_EVERY_BACKEND
def test_stats_lists_every_day_of_window(client, frozen_clock):
    frozen_clock.set(datetime(2025, 3, 9, 23, 59, tzinfo=UTC))
    _run(client)
    _run(client, "raising")
    _run(client, "hanging")
    stats = client.get("/api/v1/executions/stats?days=7").get_json()["stats"]
    assert stats["total_executions"] == 3
    assert stats["successful_executions"] == 1
    assert stats["failed_executions"] == 2 and stats["timeout_executions"] == 1
    assert stats["unique_plugins"] == 3
    assert len(stats["daily_stats"]) == 7
    assert [d["total_executions"] for d in stats["daily_stats"]] == [0] * 6 + [3]
    assert stats["daily_stats"][-1]["date"] == "2025-03-09"
    assert stats["error_types"] == {"timeout": 1, "validation_error": 1}
    assert stats["p99_duration"] >= stats["p50_duration"] > 0
    frozen_clock.advance(120)  # past midnight: the runs are yesterday's now
    stats = client.get("/api/v1/executions/stats?days=7").get_json()["stats"]
    assert stats["daily_stats"][-1]["date"] == "2025-03-10"
    assert [d["total_executions"] for d in stats["daily_stats"]] == [0] * 5 + [3, 0]


@ON_EVERY_BACKEND
def test_rollups_keep_stats_after_cleanup(app, client):
    store = app.extensions["bridge.storage"].store
    now = clock.utcnow()
    old = now - timedelta(days=40)
    for i in range(4):
        store.insert(
            ExecutionRecord(
                id=f"old-{i}",
                plugin_name="ok",
                http_method="POST",
                start_time=old,
                end_time=old,
                status=Status.COMPLETED if i else Status.FAILED,
                error_type="" if i else "timeout",
                duration=1_000_000,
                attempts=1,
            ),
            wait=True,
        )
    result = client.delete("/api/v1/executions/cleanup").get_json()
    assert result["deleted"] == 4 and result["older_than_days"] == 30
    assert client.get("/api/v1/executions/old-1").status_code == 404
    stats = client.get("/api/v1/executions/stats?days=90").get_json()["stats"]
    assert stats["total_executions"] == 4 and stats["successful_executions"] == 3
    info = client.get("/api/v1/executions/storage/info").get_json()
    assert info["last_cleanup"]["deleted"] == 4
    migrations = importlib.import_module(f"bridge.storage.{info['type']}.migrations")
    assert info["schema_version"] == len(migrations.MIGRATIONS)
    assert info["type"] != "sqlite" or info["journal_mode"] == "wal"


def test_storage_info_keeps_every_key_and_shows_the_backend_part(client):
    info = client.get("/api/v1/executions/storage/info").get_json()
    assert list(info) == [
        "type",
        "location",
        "size_bytes",
        "total_records",
        "oldest_record",
        "newest_record",
        "healthy",
        "health_message",
        "journal_mode",
        "schema_version",
        "retention_days",
        "last_cleanup",
        "rollup_watermark",
        "page_size",
        "page_count",
        "freelist_count",
        "open_connections",
        "max_connections",
        "write_failures",
        "backend",
    ]
    sqlite_part = ("journal_mode", "page_size", "page_count", "freelist_count")
    assert info["backend"] == {key: info[key] for key in sqlite_part}
    assert info["type"] == "sqlite" and info["journal_mode"] == "wal"


@ON_EVERY_BACKEND
def test_cleanup_never_deletes_running(app, client):
    store = app.extensions["bridge.storage"].store
    old = clock.utcnow() - timedelta(days=100)
    store.insert(
        ExecutionRecord(
            id="live",
            plugin_name="ok",
            http_method="POST",
            start_time=old,
            status=Status.RUNNING,
            worker=f"{os.uname().nodename}:{os.getpid()}",
        ),
        wait=True,
    )
    assert client.delete("/api/v1/executions/cleanup?older_than_days=1").get_json()["deleted"] == 0


def test_dead_process_rows_closed_as_interrupted(app):
    store = app.extensions["bridge.storage"].store
    store.insert(
        ExecutionRecord(
            id="orphan",
            plugin_name="ok",
            http_method="POST",
            start_time=datetime.now(UTC),
            status=Status.RUNNING,
            worker=f"{os.uname().nodename}:999999",
        ),
        wait=True,
    )
    assert app.extensions["bridge.tracker"].recover_stale() == 1
    record = store.get("orphan")
    assert record.status is Status.FAILED and record.error_type == "interrupted"


def test_unwritable_database_keeps_webhooks_working(make_app, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.access(locked, os.W_OK):  # root ignores permissions: use a path under a file
        (tmp_path / "afile").write_text("x")
        db = tmp_path / "afile" / "ex.db"
    else:
        db = locked / "ex.db"
    client = make_app(storage={"sqlite": {"database_path": str(db)}}).test_client()
    assert _run(client).status_code == 200
    r = client.get("/api/v1/executions")
    assert r.status_code == 503 and "disabled" in r.get_json()["message"]
    assert client.get("/health").get_json()["checks"]["storage"]["status"] == "degraded"


def test_shutdown_cancels_runs_in_flight(app):
    import sqlite3
    import time

    from bridge import shutdown_app
    from bridge.model import Run

    store = app.extensions["bridge.storage"].store
    plugin = app.extensions["bridge.registry"].get("sleepy")
    app.extensions["bridge.runner"].run_async(
        Run(
            plugin=plugin,
            method="POST",
            data={"seconds": 2},
            execution_id="cut",
            trace_id="t",
            start_time=clock.utcnow(),
        )
    )
    deadline = time.monotonic() + 3
    while store.get("cut") is None or store.get("cut").status is not Status.RUNNING:
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.01)
    shutdown_app(app, timeout=0.2)
    with sqlite3.connect(store.path) as conn:
        status, error_type = conn.execute(
            "SELECT status, error_type FROM executions WHERE id = 'cut'"
        ).fetchone()
    assert (status, error_type) == ("canceled", "interrupted")


def test_forwarded_for_believed_only_from_trusted_proxies(make_app):
    untrusted = make_app().test_client()
    r = untrusted.post("/api/v1/webhook/ok", json={}, headers={"X-Forwarded-For": "9.9.9.9"})
    ex = untrusted.get(f"/api/v1/executions/{r.get_json()['execution_id']}").get_json()
    assert ex["execution"]["remote_ip"] == "127.0.0.1"
    trusted = make_app(server={"trusted_proxies": ["127.0.0.0/8"]}).test_client()
    r = trusted.post(
        "/api/v1/webhook/ok", json={}, headers={"X-Forwarded-For": "9.9.9.9, 127.0.0.5"}
    )
    ex = trusted.get(f"/api/v1/executions/{r.get_json()['execution_id']}").get_json()
    assert ex["execution"]["remote_ip"] == "9.9.9.9"


def test_plugin_stats_include_realtime_metrics(client):
    _run(client)
    _run(client)
    body = client.get("/api/v1/executions/stats/ok").get_json()
    assert body["plugin"] == "ok" and body["stats"]["total_executions"] == 2
    realtime = body["realtime"]
    assert realtime["total_executions"] == 2 and realtime["success_rate"] == 100.0
    assert realtime["min_duration"] <= realtime["avg_duration"] <= realtime["max_duration"]
    assert realtime["last_status"] == "completed"


def test_cleanup_gives_space_back(app, client):
    store = app.extensions["bridge.storage"].store
    old = clock.utcnow() - timedelta(days=60)
    for i in range(300):
        store.insert(
            ExecutionRecord(
                id=f"big-{i}",
                plugin_name="ok",
                http_method="POST",
                start_time=old,
                end_time=old,
                status=Status.COMPLETED,
                input="x" * 4000,
            ),
            wait=(i == 299),
        )
    before = client.get("/api/v1/executions/storage/info").get_json()
    assert client.delete("/api/v1/executions/cleanup").get_json()["deleted"] == 300
    after = client.get("/api/v1/executions/storage/info").get_json()
    assert after["page_count"] < before["page_count"]
    assert after["size_bytes"] < before["size_bytes"]


def test_failing_writes_are_counted_and_webhooks_still_answer(app, client):
    import sqlite3

    store = app.extensions["bridge.storage"].store
    with sqlite3.connect(store.path) as conn:  # every write of a record now fails
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON executions "
            "BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END"
        )
    r = _run(client)
    assert r.status_code == 200 and r.get_json()["data"]["echo"] == {}
    storage = client.get("/health").get_json()["checks"]["storage"]
    assert storage["status"] == "degraded"
    assert storage["write_failures"]["count"] >= 1
    assert "simulated write failure" in storage["write_failures"]["last_error"]
    info = client.get("/api/v1/executions/storage/info").get_json()
    assert info["write_failures"]["count"] >= 1


@ON_EVERY_BACKEND
def test_filter_by_tags_in_the_list_and_in_stats(client):
    def run(tags: str) -> str:
        r = client.post("/api/v1/webhook/ok", json={}, headers={"X-Bridge-Tags": tags})
        return r.get_json()["execution_id"]

    prod_a = run("env=prod, team=a")
    prod_b = run('{"env": "prod", "team": "b", "canary": true, "n": 2, "x": null}')
    run("env=dev, team=a")
    client.post("/api/v1/webhook/ok", json={})
    listed = client.get("/api/v1/executions?tag=env:prod").get_json()
    assert {e["id"] for e in listed["executions"]} == {prod_a, prod_b}
    assert listed["total"] == 2 and listed["filter"]["tag"] == ["env:prod"]
    typed = client.get("/api/v1/executions?tag=canary:true&tag=n:2&tag=x:null").get_json()
    assert [e["id"] for e in typed["executions"]] == [prod_b]
    nested = client.post("/api/v1/webhook/ok", json={}, headers={"X-Bridge-Tags": '{"a": [1]}'})
    assert nested.status_code == 400
    both = client.get("/api/v1/executions?tag=env:prod&tag=team=a").get_json()
    assert [e["id"] for e in both["executions"]] == [prod_a] and both["total"] == 1
    stats = client.get("/api/v1/executions/stats?tag=team:a").get_json()["stats"]
    assert stats["total_executions"] == 2
    assert client.get("/api/v1/executions/stats").get_json()["stats"]["total_executions"] == 4
    bad = client.get("/api/v1/executions?tag=no-separator")
    assert bad.status_code == 422 and "tag" in bad.get_json()["errors"]


def test_the_tag_filter_reads_the_tag_index(app):
    store = app.extensions["bridge.storage"].store
    plan = " ".join(
        store.explain(
            "SELECT execution_id FROM execution_tags WHERE key = 'env' AND value = 'prod'"
        )
    )
    assert "USING PRIMARY KEY" in plan or "USING COVERING INDEX" in plan, plan


def test_json_fields_as_text_by_default_or_as_values_when_asked(client):
    r = client.post(
        "/api/v1/webhook/ok", json={"order": {"id": 7}}, headers={"X-Bridge-Tags": "env=prod"}
    )
    execution_id = r.get_json()["execution_id"]
    as_text = client.get(f"/api/v1/executions/{execution_id}").get_json()["execution"]
    assert isinstance(as_text["input"], str) and json.loads(as_text["input"]) == {
        "order": {"id": 7}
    }
    as_values = client.get(f"/api/v1/executions/{execution_id}?parse_json=true").get_json()
    record = as_values["execution"]
    assert record["input"] == {"order": {"id": 7}} and record["tags"] == {"env": "prod"}
    assert record["output"] == {"echo": {"order": {"id": 7}}, "method": "POST"}
    assert record["metadata"]["content_type"] == "application/json"
    listed = client.get("/api/v1/executions?parse_json=true").get_json()["executions"]
    assert listed[0]["input"] == {"order": {"id": 7}}
    assert client.get(f"/api/v1/executions/{execution_id}?parse_json=maybe").status_code == 422


@pytest.mark.parametrize("parse_json", ["false", "true"])
def test_a_listed_run_is_field_for_field_its_detail(client, parse_json):
    """The list builds its JSON without marshmallow; the detail dumps ExecutionSchema.
    Completed, failed, still running, and a replay: the two agree on every field."""
    _run(client, order={"id": 7})
    _run(client, "raising")
    client.post("/api/v1/webhook/sleepy?async=true", json={"seconds": 0.5})
    first = client.get("/api/v1/executions?plugin=ok").get_json()["executions"][0]["id"]
    client.post(f"/api/v1/executions/{first}/replay")
    listed = client.get(f"/api/v1/executions?parse_json={parse_json}").get_json()["executions"]
    assert len(listed) == 4 and {e["status"] for e in listed} >= {"completed", "failed"}
    for entry in listed:
        detail = client.get(f"/api/v1/executions/{entry['id']}?parse_json={parse_json}")
        assert entry == detail.get_json()["execution"]


@ON_EVERY_BACKEND
def test_a_huge_error_and_a_zoned_forwarded_address_are_stored_on_every_backend(
    make_app, plugin_dir
):
    """What a caller controls fits every backend's columns: a plugin error quoting a
    large input is kept by its start and its end (MySQL's MEDIUMTEXT and packet size
    refused 17 MB, and the record was lost), and an IPv6 client address loses its zone
    (MySQL's remote_ip holds 64 characters)."""
    (plugin_dir / "quoting.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n"
        "class Plugin(BasePlugin):\n"
        "    def handle(self):\n"
        "        raise ValueError('got ' + 'x' * self.data['n'] + ' END')\n"
    )
    client = make_app(server={"trusted_proxies": ["127.0.0.1/32"]}).test_client()
    failed = client.post("/api/v1/webhook/quoting", json={"n": 300_000}).get_json()
    zoned = client.post(
        "/api/v1/webhook/ok", json={}, headers={"X-Forwarded-For": "fe80::1%" + "z" * 80}
    ).get_json()
    run = client.get(f"/api/v1/executions/{failed['execution_id']}").get_json()
    error = run["execution"]["error"]
    assert len(error) < 70_000 and "characters cut" in error
    assert error.startswith("Traceback") and error.rstrip().endswith("x END")
    assert (
        run["attempts"][0]["error"].endswith("x END") and len(run["attempts"][0]["error"]) < 70_000
    )
    stored = client.get(f"/api/v1/executions/{zoned['execution_id']}").get_json()
    assert stored["execution"]["remote_ip"] == "fe80::1"
    storage = client.get("/health").get_json()["checks"]["storage"]
    assert storage["status"] == "healthy", storage


@pytest.mark.parametrize("make_app", ["postgresql", "mysql"], indirect=True)
def test_a_record_the_database_refuses_is_not_an_outage(make_app):
    """A value the server cannot store (here attempts past INT) fails that record alone:
    it is counted, the next records are written, and the history still answers."""
    app = make_app()
    storage, client = app.extensions["bridge.storage"], app.test_client()
    now = clock.utcnow()
    refused = ExecutionRecord(
        id="refused-1",
        plugin_name="ok",
        http_method="POST",
        start_time=now,
        end_time=now,
        status=Status.COMPLETED,
        attempts=2**40,
    )
    assert storage.save(refused, insert=False, wait=True, action="record a run") is False
    assert not storage.outage
    answered = client.post("/api/v1/webhook/ok", json={"a": 1})
    assert answered.status_code == 200
    listed = client.get("/api/v1/executions").get_json()
    assert [e["id"] for e in listed["executions"]] == [answered.get_json()["execution_id"]]
    info = client.get("/api/v1/executions/storage/info").get_json()
    assert (
        info["write_failures"]["count"] == 1 and "refused" in info["write_failures"]["last_error"]
    )


@ON_EVERY_BACKEND
def test_a_nul_in_a_lookup_value_matches_nothing_on_every_backend(client):
    """PostgreSQL's text cannot hold NUL: a query with one failed (503) there, while the
    other backends answered 404 or an empty result."""
    client.post("/api/v1/webhook/ok", json={})
    assert client.get("/api/v1/executions/%00").status_code == 404
    for path in (
        "/api/v1/executions?plugin=%00",
        "/api/v1/executions?plugin=ok%00&status=completed",
        "/api/v1/executions/stats?days=7&plugin=%00",
        "/api/v1/executions/analysis?days=7&plugin=%00",
        "/api/v1/executions/timeseries?plugin=%00",
        "/api/v1/executions/errors?plugin=%00",
        "/api/v1/executions/stats/%00",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.get_json())
    listed = client.get("/api/v1/executions?plugin=%00").get_json()
    assert listed["total"] == 0 and listed["executions"] == []


@ON_EVERY_BACKEND
def test_a_tag_with_a_lone_surrogate_is_filtered_as_u_fffd_on_every_backend(client):
    """JSON can escape a lone surrogate, UTF-8 cannot hold one: every backend indexes
    it as U+FFFD, which is what a URL's %EF%BF%BD names (SQLite made it '?')."""
    tagged = client.post(
        "/api/v1/webhook/ok", json={}, headers={"X-Bridge-Tags": '{"sur": "a\\udc80"}'}
    ).get_json()["execution_id"]
    listed = client.get("/api/v1/executions?tag=sur:a%EF%BF%BD").get_json()
    assert [e["id"] for e in listed["executions"]] == [tagged]
    assert client.get("/api/v1/executions?tag=sur:a%3F").get_json()["total"] == 0
