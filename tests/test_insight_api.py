"""The insight endpoints against a real app and SQLite store (the store contract tests
run the algorithms on every backend): error groups, export, replay, analysis."""

from __future__ import annotations

import csv
import io
import json

import pytest


def _post(client, plugin, **data):
    return client.post(f"/api/v1/webhook/{plugin}", json=data)


def _error_shape(r, code):
    body = r.get_json()
    assert r.status_code == code, body
    assert body["code"] == code and body["message"]
    return body


# -- error groups -------------------------------------------------------------
def test_failures_that_differ_only_in_ids_are_one_group(client):
    for order in (17, 4242, 99):
        assert _post(client, "lookup", order=order).status_code == 500
    _post(client, "raising")
    _post(client, "lookup")  # succeeds
    body = client.get("/api/v1/executions/errors?days=7").get_json()
    assert body["total_groups"] == 2 and body["total_failures"] == 4
    top = body["groups"][0]
    assert (top["plugin"], top["count"], top["error_type"]) == ("lookup", 3, "validation_error")
    assert top["message"] == "KeyError: 'order <n> not found in <path>'"
    assert top["new"] is True and top["rising"] is False
    assert len(top["daily"]) == 7 and top["daily"][-1]["count"] == 3

    runs = client.get(f"/api/v1/executions?error_group={top['fingerprint']}").get_json()
    assert runs["total"] == 3
    assert {e["error_group"] for e in runs["executions"]} == {top["fingerprint"]}
    assert top["example_execution_id"] == runs["executions"][0]["id"]
    only = client.get("/api/v1/executions/errors?plugin=raising").get_json()
    assert [g["plugin"] for g in only["groups"]] == ["raising"]


@pytest.mark.parametrize(
    "url,code,field",
    [
        ("/api/v1/executions/errors?days=0", 422, "days"),
        ("/api/v1/executions/errors?days=x", 422, "days"),
        ("/api/v1/executions/errors?limit=501", 422, "limit"),
        ("/api/v1/executions?error_group=nothex", 422, "error_group"),
        ("/api/v1/executions?error_group=" + "0" * 16, 404, None),
        ("/api/v1/executions/analysis?days=-1", 422, "days"),
        ("/api/v1/executions/analysis?bogus=1", 422, "bogus"),
        ("/api/v1/executions/export?format=xml", 422, "format"),
        ("/api/v1/executions/export?fields=id,password", 422, "fields"),
        ("/api/v1/executions/export?include=error", 422, "include"),
        ("/api/v1/executions/export?error_group=" + "a" * 16, 404, None),
    ],
)
def test_bad_input_is_4xx_in_the_error_shape(client, url, code, field):
    body = _error_shape(client.get(url), code)
    if field:
        assert field in body["errors"]


# -- export ---------------------------------------------------------------------
def test_csv_export_matches_the_list_and_neutralises_formulas(client):
    _post(client, "ok", n=1)
    _post(client, "ok", cmd='=HYPERLINK("http://evil")', name="Zoë")
    _post(client, "raising")
    r = client.get("/api/v1/executions/export?format=csv&plugin=ok&include=input")
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="executions-plugin-ok-')
    assert disposition.endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(r.get_data().decode("utf-8-sig"), newline="")))
    listed = client.get("/api/v1/executions?plugin=ok").get_json()["executions"]
    assert [row["id"] for row in rows] == [e["id"] for e in listed]
    assert [row["status"] for row in rows] == [e["status"] for e in listed]
    assert [row["start_time"] for row in rows] == [e["start_time"] for e in listed]
    assert "output" not in rows[0] and "input" in rows[0]
    assert json.loads(rows[1]["input"]) == {"n": 1}
    assert json.loads(rows[0]["input"])["name"] == "Zoë"
    # A cell that would start a formula starts with an apostrophe instead.
    cell = io.StringIO('a\r\n"=1+1"\r\n')
    assert next(csv.reader(cell)) == ["a"]
    r = client.get("/api/v1/executions/export?fields=id,error&status=failed").get_data()
    assert r.startswith(b"\xef\xbb\xbfid,error\r\n")
    text = r.decode("utf-8-sig")
    assert "\r\n" in text and text.count("\r\n") == 2


def test_formula_cells_are_neutralised(app, client):
    from bridge.insight.export import safe_cell

    for value in ("=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx"):
        assert safe_cell(value) == "'" + value
    assert safe_cell("ok") == "ok" and safe_cell(-5) == -5
    _post(client, "ok")
    record_id = client.get("/api/v1/executions").get_json()["executions"][0]["id"]
    store = app.extensions["bridge.storage"].store
    record = store.get(record_id)
    record.error = "=cmd|' /C calc'!A0"
    store.update(record)
    data = client.get("/api/v1/executions/export?fields=id,error").get_data().decode("utf-8-sig")
    (row,) = list(csv.DictReader(io.StringIO(data, newline="")))
    assert row["error"] == "'=cmd|' /C calc'!A0"


def test_json_and_ndjson_exports_hold_the_list(client):
    for i in range(3):
        _post(client, "ok", i=i)
    listed = client.get("/api/v1/executions?parse_json=true").get_json()["executions"]
    r = client.get("/api/v1/executions/export?format=json&include=input,output")
    assert r.mimetype == "application/json"
    items = json.loads(r.get_data())
    assert [i["id"] for i in items] == [e["id"] for e in listed]
    assert [i["input"] for i in items] == [e["input"] for e in listed]
    assert items[0]["output"] == listed[0]["output"]
    r = client.get("/api/v1/executions/export?format=ndjson&fields=id,status")
    lines = [json.loads(line) for line in r.get_data().decode().splitlines()]
    assert lines == [{"id": e["id"], "status": "completed"} for e in listed]
    empty = client.get("/api/v1/executions/export?format=json&plugin=none")
    assert json.loads(empty.get_data()) == []


def test_export_streams_page_by_page(app, monkeypatch):
    """The body is a generator of a chunk per page, each page its own read: the answer
    starts after the first page (the test client asks for the first chunk to start the
    response), the other pages are read as the body is."""
    from bridge.insight import export

    client = app.test_client()
    for i in range(7):
        _post(client, "ok", i=i)
    monkeypatch.setattr(export, "PAGE", 3)
    reads = []
    store = app.extensions["bridge.storage"].store
    real = store.snapshot

    def counted():
        reads.append(1)
        return real()

    monkeypatch.setattr(store, "snapshot", counted)
    r = client.get("/api/v1/executions/export?format=ndjson&fields=id", buffered=False)
    assert reads == [1]
    body = b"".join(r.response)
    assert len(body.splitlines()) == 7 and len(reads) == 3
    r.close()


# -- replay ---------------------------------------------------------------------
def _last(client, **query):
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return client.get(f"/api/v1/executions?{params}").get_json()["executions"][0]


def test_replay_runs_the_stored_input_and_links_both_runs(client):
    first = _post(client, "ok", order=7).get_json()
    r = client.post(f"/api/v1/executions/{first['execution_id']}/replay")
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["data"] == {"echo": {"order": 7}, "method": "POST"}
    assert body["execution_id"] != first["execution_id"]
    replay = client.get(f"/api/v1/executions/{body['execution_id']}").get_json()
    assert replay["execution"]["replay_of"] == first["execution_id"]
    original = client.get(f"/api/v1/executions/{first['execution_id']}").get_json()
    assert [x["id"] for x in original["replayed_by"]] == [body["execution_id"]]
    assert client.get("/api/v1/executions").get_json()["total"] == 2
    replays = client.get(f"/api/v1/executions?replay_of={first['execution_id']}").get_json()
    assert (replays["total"], replays["executions"][0]["id"]) == (1, body["execution_id"])
    assert (
        client.get(f"/api/v1/executions?replay_of={body['execution_id']}").get_json()["total"] == 0
    )

    edited = client.post(f"/api/v1/executions/{first['execution_id']}/replay", json={"x": 1})
    assert edited.get_json()["data"]["echo"] == {"x": 1}


def test_replay_of_a_failed_run_fails_again_like_a_webhook(client):
    first = _post(client, "raising")
    r = client.post(f"/api/v1/executions/{first.get_json()['execution_id']}/replay")
    body = _error_shape(r, 500)
    assert body["error_type"] == "validation_error" and body["execution_id"]


def test_truncated_or_redacted_input_is_409_unless_edited(make_app):
    client = make_app(
        execution_tracking={"max_input_size": 64, "redact_fields": ["password"]}
    ).test_client()
    big = _post(client, "ok", blob="x" * 200).get_json()["execution_id"]
    secret = _post(client, "ok", user="a", password="hunter2").get_json()["execution_id"]
    body = _error_shape(client.post(f"/api/v1/executions/{big}/replay"), 409)
    assert "truncated" in body["message"]
    body = _error_shape(client.post(f"/api/v1/executions/{secret}/replay"), 409)
    assert "redacted" in body["message"] and "password" in body["message"]
    r = client.post(f"/api/v1/executions/{secret}/replay", json={"user": "a", "password": "p"})
    assert r.status_code == 200 and r.get_json()["data"]["echo"]["password"] == "p"


def test_replay_bad_requests(client):
    _error_shape(client.post("/api/v1/executions/nope/replay"), 404)
    first = _post(client, "ok").get_json()["execution_id"]
    _error_shape(client.post(f"/api/v1/executions/{first}/replay", data="[1]"), 400)
    _error_shape(client.post(f"/api/v1/executions/{first}/replay", data="{"), 400)
    # It takes no query parameters: `?async=true`, as a webhook takes, is not ignored.
    body = _error_shape(client.post(f"/api/v1/executions/{first}/replay?async=true"), 422)
    assert "async" in body["errors"]
    assert client.get("/api/v1/executions").get_json()["total"] == 1  # nothing ran


def test_replay_needs_the_write_scope(make_app):
    keys = [
        {"name": "reader", "key": "r" * 32, "scopes": ["read"]},
        {"name": "writer", "key": "w" * 32, "scopes": ["write"]},
    ]
    client = make_app(auth={"api_keys": keys}).test_client()
    first = _post(client, "ok").get_json()["execution_id"]
    url = f"/api/v1/executions/{first}/replay"
    _error_shape(client.post(url), 401)
    _error_shape(client.post(url, headers={"X-API-Key": "r" * 32}), 403)
    assert client.post(url, headers={"X-API-Key": "w" * 32}).status_code == 200
    assert (
        client.get("/api/v1/executions/errors", headers={"X-API-Key": "r" * 32}).status_code == 200
    )


def test_replay_skips_the_signature_and_idempotency(client):
    headers = {"Idempotency-Key": "delivery-1"}
    first = client.post("/api/v1/webhook/ok", json={"a": 1}, headers=headers).get_json()
    url = f"/api/v1/executions/{first['execution_id']}/replay"
    second = client.post(url).get_json()
    third = client.post(url).get_json()
    assert len({first["execution_id"], second["execution_id"], third["execution_id"]}) == 3
    assert not second.get("replayed")


# -- analysis -------------------------------------------------------------------
def test_analysis_names_plugins_that_retry_and_fail(make_app):
    # Any time in retries is a finding: how much depends on the machine's speed.
    client = make_app(analysis={"min_calls": 2, "retry_share": 0.01}).test_client()
    for _ in range(3):
        _post(client, "flaky")
        _post(client, "ok")
    body = client.get("/api/v1/executions/analysis?days=1").get_json()
    by_name = {p["plugin"]: p for p in body["plugins"]}
    assert by_name["flaky"]["retry_share"] == 100.0 and by_name["ok"]["retry_share"] == 0.0
    assert by_name["ok"]["calls"] == 3 and by_name["ok"]["success_rate"] == 100.0
    assert by_name["ok"]["p95_duration"] > 0
    kinds = [(f["plugin"], f["kind"]) for f in body["findings"]]
    assert ("flaky", "retries") in kinds and all(p != "ok" for p, _ in kinds)
    finding = next(f for f in body["findings"] if f["kind"] == "retries")
    # Two failed attempts and the waits before their retries.
    assert by_name["flaky"]["retry_time_share"] > 0 and by_name["ok"]["retry_time_share"] == 0
    assert finding["message"].startswith("`flaky` spends ")
    assert finding["message"].endswith(
        "% of its time in retries (100% of runs retried) over the last 1 day"
    )


def test_the_error_group_and_replay_filters_read_their_indexes(app):
    from bridge.model import ExecutionFilter
    from bridge.storage.sqlite import records

    store = app.extensions["bridge.storage"].store
    for flt, index in (
        (ExecutionFilter(error_group="0" * 16), "ix_executions_error_group_start"),
        (ExecutionFilter(replay_of="some-id"), "ix_executions_replay_of"),
    ):
        clauses, params = records.where(flt)
        plan = store.explain(f"SELECT id FROM executions WHERE {' AND '.join(clauses)}", params)
        assert any(index in step for step in plan), plan


def test_an_export_in_progress_holds_no_database_connection(make_app, monkeypatch, tmp_path):
    """With one read connection in the pool, the list still answers while an export is
    half read: no cursor is held between pages (a client that leaves holds nothing)."""
    from bridge.insight import export

    sqlite = {"database_path": str(tmp_path / "one.db"), "max_connections": 2}
    client = make_app(storage={"sqlite": sqlite}).test_client()
    for i in range(5):
        _post(client, "ok", i=i)
    monkeypatch.setattr(export, "PAGE", 2)
    r = client.get("/api/v1/executions/export?format=ndjson&fields=id", buffered=False)
    chunks = iter(r.response)
    first = next(chunks)
    assert first.count(b"\n") == 2
    assert client.get("/api/v1/executions").get_json()["total"] == 5
    r.close()  # the client goes away mid-export
    assert client.get("/api/v1/executions/export?format=ndjson").get_data().count(b"\n") == 5
