"""Hostile and malformed input: a 4xx in the API's one error shape, never a 500, and
the database exactly as it was.

One app (real plugins in a folder, a real SQLite file) with a few records serves the
whole matrix; each case hashes every stored row before and after its request.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from bridge import create_app, shutdown_app
from bridge.api.schemas import MAX_DAYS, MAX_LIMIT, MAX_OFFSET

PLUGINS = Path(__file__).parent / "plugins"
MAX_BODY = 256 * 1024
SQL = [
    "' OR 1=1 --",
    '"; DROP TABLE executions; --',
    "%",
    "_",
    "o_",
    "%k%",
    "ok' --",
    "\\",
    "ok\x00",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    shutil.copytree(PLUGINS, root / "plugins")
    # A plugin beside the plugin folder: a path escaping the folder must never reach it.
    (root / "outside.py").write_text(
        "from pathlib import Path\n"
        "from webhook_bridge.plugin import BasePlugin\n\n\n"
        "class Plugin(BasePlugin):\n"
        "    def handle(self):\n"
        f"        Path({str(root / 'escaped')!r}).write_text('ran')\n"
        "        return {}\n"
    )
    (root / "plugins" / "echo_error.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n\n\n"
        "class Plugin(BasePlugin):\n"
        "    def handle(self):\n"
        "        raise ValueError(f\"bad value {self.data.get('v')}\")\n"
    )
    db = root / "data" / "ex.db"
    app = create_app(
        {
            "plugins": {"dirs": [str(root / "plugins")]},
            "storage": {"sqlite": {"database_path": str(db)}},
            "server": {"max_body_size": MAX_BODY},
            "scheduler": {"enabled": False},
            "logging": {"level": "WARNING"},
        }
    )
    client = app.test_client()
    for i in range(3):
        assert client.post("/api/v1/webhook/ok", json={"i": i}).status_code == 200
    assert client.post("/api/v1/webhook/raising", json={}).status_code == 500
    yield client, db, root
    shutdown_app(app, timeout=1)


def snapshot(db: Path) -> tuple[int, str]:
    """Row count and a hash of every row of executions and its attempts."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT * FROM executions ORDER BY seq").fetchall()
        attempts = conn.execute(
            "SELECT * FROM execution_attempts ORDER BY execution_id, number"
        ).fetchall()
    finally:
        conn.close()
    digest = hashlib.sha256(repr((rows, attempts)).encode()).hexdigest()
    return len(rows), digest


def assert_error_shape(response, status: int | None = None) -> dict:
    text = response.get_data(as_text=True)
    assert response.status_code < 500, text[:500]
    assert 400 <= response.status_code < 500, text[:500]
    if status is not None:
        assert response.status_code == status, text[:500]
    assert response.mimetype == "application/json", text[:200]
    assert "<html" not in text.lower()
    body = response.get_json()
    assert {"code", "status", "message"} <= body.keys(), body
    assert body["code"] == response.status_code
    assert isinstance(body["status"], str) and body["status"]
    assert isinstance(body["message"], str) and body["message"]
    return body


def request_unchanged(env, method: str, url: str, **kwargs):
    client, db, _root = env
    before = snapshot(db)
    response = client.open(url, method=method, **kwargs)
    assert snapshot(db) == before, f"{method} {url} changed the database"
    return response


def b64(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# -- webhook bodies ------------------------------------------------------------------
JSON = "application/json"
BODIES = [
    ("malformed", b'{"a": ', JSON, 400),
    ("trailing garbage", b'{"a": 1} x', JSON, 400),
    ("open brackets", b"[" * 100_000, JSON, 400),
    ("closed brackets", b"[" * 100_000 + b"]" * 100_000, JSON, 400),
    ("open objects", b'{"a":' * 50_000, JSON, 400),
    ("nested in object", b'{"a":' + b"[" * 50_000 + b"]" * 50_000 + b"}", JSON, 400),
    ("array", b"[1, 2]", JSON, 400),
    ("string", b'"text"', JSON, 400),
    ("digits past the int limit", b'{"a": ' + b"9" * 5000 + b"}", JSON, 400),
    ("non-UTF-8 JSON", b'{"a": "\xff\xfe"}', JSON, 400),
    ("non-UTF-8 text", b"\xff\xfe\x00", "text/plain", 400),
    ("latin-1 JSON", '{"a": "café"}'.encode("latin-1"), JSON, 400),
    ("over max_body_size JSON", b'{"a": "' + b"x" * MAX_BODY + b'"}', JSON, 413),
    ("over max_body_size form", b"a=" + b"x" * MAX_BODY, "application/x-www-form-urlencoded", 413),
    ("over max_body_size text", b"x" * (MAX_BODY + 1), "text/plain", 413),
    ("non-UTF-8 form", b"a=1&b=\xff", "application/x-www-form-urlencoded", 400),
    ("multipart without its boundary", b"a=1", "multipart/form-data", 400),
    (
        "multipart cut short",
        b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1',
        "multipart/form-data; boundary=x",
        400,
    ),
    ("xml", b"<a>1</a>", "application/xml", 415),
    ("csv", b"a,b\n1,2", "text/csv", 415),
    ("octet-stream", b"\x00\x01\x02", "application/octet-stream", 415),
    ("png", b"\x89PNG\r\n", "image/png", 415),
]


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("label,body,content_type,status", BODIES, ids=[b[0] for b in BODIES])
def test_bad_webhook_body_is_4xx_and_records_nothing(
    env, method, label, body, content_type, status
):
    response = request_unchanged(
        env, method, "/api/v1/webhook/ok", data=body, content_type=content_type
    )
    message = assert_error_shape(response, status)["message"]
    if status == 400 and "UTF-8" in label:
        assert "UTF-8" in message
    if "brackets" in label or "nested" in label or "objects" in label:
        assert "nested too deeply" in message


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
def test_a_compressed_body_is_415_naming_the_encoding(env, encoding):
    body = gzip.compress(b'{"a": 1}') if encoding == "gzip" else b'{"a": 1}'
    response = request_unchanged(
        env,
        "POST",
        "/api/v1/webhook/ok",
        data=body,
        content_type=JSON,
        headers={"Content-Encoding": encoding},
    )
    assert encoding in assert_error_shape(response, 415)["message"]


# -- names in paths -----------------------------------------------------------------
NAMES = [
    "..",
    "%2e%2e",
    "%2E%2E",
    ".",
    "..%2foutside",
    "%2e%2e%2foutside",
    "..%5coutside",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "ok%2f..%2f..%2foutside",
    "a%2fb",
    "ok%00",
    "%00",
    "%00ok",
    "ok.py",
    "ok%20",
    "~",
    "x" * 10_240,
    "%ff%fe",
    "__init__",
    "broken%0d%0aX-Injected:%201",
    "/ok",  # a doubled slash: no HTML redirect to the merged path
    "ok//replay",
]


@pytest.mark.parametrize("name", NAMES, ids=[n[:24] for n in NAMES])
@pytest.mark.parametrize(
    "method,prefix",
    [
        ("GET", "/api/v1/webhook/"),
        ("POST", "/api/v1/webhook/"),
        ("GET", "/api/v1/plugins/"),
        ("GET", "/api/v1/executions/"),
    ],
)
def test_hostile_names_are_404_in_the_error_shape(env, method, prefix, name):
    response = request_unchanged(env, method, prefix + name, json={})
    assert_error_shape(response, 404)
    assert "X-Injected" not in response.headers
    assert not (env[2] / "escaped").exists(), "a plugin outside the plugin folder ran"


@pytest.mark.parametrize("path", ["/api//v1/plugins", "/api/v1//executions", "//health"])
def test_doubled_slashes_elsewhere_are_404_in_the_error_shape(env, path):
    assert_error_shape(request_unchanged(env, "GET", path), 404)


# -- query parameters of the executions API -----------------------------------------
@pytest.mark.parametrize("value", SQL)
@pytest.mark.parametrize("field", ["plugin", "trace_id"])
def test_sql_metacharacters_in_free_text_filters_match_nothing(env, field, value):
    """A free-text filter is compared as a value: no injection, no LIKE wildcards."""
    response = request_unchanged(env, "GET", "/api/v1/executions", query_string={field: value})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["total"] == 0 and body["executions"] == []
    assert body["filter"] == {field: value}


@pytest.mark.parametrize("value", SQL)
@pytest.mark.parametrize("field", ["status", "error_type", "since", "until", "cursor"])
def test_sql_metacharacters_in_typed_filters_are_422(env, field, value):
    response = request_unchanged(env, "GET", "/api/v1/executions", query_string={field: value})
    if field == "error_type" and value == "o_":  # a word: a type a plugin may name
        assert response.status_code == 200 and response.get_json()["total"] == 0
        return
    assert field in assert_error_shape(response, 422)["errors"]


@pytest.mark.parametrize("value", SQL)
def test_sql_metacharacters_in_stats_and_ids(env, value):
    for url, kwargs in [
        ("/api/v1/executions/stats", {"query_string": {"plugin": value}}),
        (
            "/api/v1/executions/stats/"
            + value.replace("\x00", "%00").replace("%", "%25").replace("/", "%2F"),
            {},
        ),
    ]:
        response = request_unchanged(env, "GET", url, **kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.get_json()["stats"]["total_executions"] == 0
    response = request_unchanged(env, "GET", "/api/v1/executions/x", query_string={"plugin": value})
    assert_error_shape(response, 404)
    response = request_unchanged(
        env, "DELETE", "/api/v1/executions/cleanup", query_string={"older_than_days": value}
    )
    assert "older_than_days" in assert_error_shape(response, 422)["errors"]


HUGE = str(10**30)
NUMBERS = [
    (
        "/api/v1/executions",
        "limit",
        ["-1", "0", str(MAX_LIMIT + 1), HUGE, "1e3", "1.5", "NaN", "", "0x10", "abc"],
    ),
    ("/api/v1/executions", "offset", ["-1", str(MAX_OFFSET + 1), HUGE, "-" + HUGE, "1e3"]),
    ("/api/v1/executions/stats", "days", ["-1", "0", str(MAX_DAYS + 1), HUGE, "7d"]),
    ("/api/v1/executions/stats/ok", "days", ["-1", "0", str(MAX_DAYS + 1), HUGE]),
]
NUMBER_CASES = [(url, field, v) for url, field, values in NUMBERS for v in values]


@pytest.mark.parametrize(
    "url,field,value", NUMBER_CASES, ids=[f"{f}={v[:12]}" for _u, f, v in NUMBER_CASES]
)
def test_out_of_range_numbers_are_422_naming_the_field(env, url, field, value):
    response = request_unchanged(env, "GET", url, query_string={field: value})
    assert field in assert_error_shape(response, 422)["errors"]


@pytest.mark.parametrize("value", ["-1", str(MAX_DAYS + 1), HUGE, "-" + HUGE, "x"])
def test_cleanup_with_bad_days_is_422_and_deletes_nothing(env, value):
    response = request_unchanged(
        env, "DELETE", "/api/v1/executions/cleanup", query_string={"older_than_days": value}
    )
    assert "older_than_days" in assert_error_shape(response, 422)["errors"]


def test_bounds_themselves_are_accepted(env):
    for url, query in [
        ("/api/v1/executions", {"limit": MAX_LIMIT, "offset": MAX_OFFSET}),
        ("/api/v1/executions", {"limit": 1, "offset": 0}),
        ("/api/v1/executions/stats", {"days": MAX_DAYS}),
        ("/api/v1/executions/stats/ok", {"days": 1}),
    ]:
        response = request_unchanged(env, "GET", url, query_string=query)
        assert response.status_code == 200, (url, query, response.get_json())


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-23:00",
        "0000-01-01T00:00:00Z",
        "10000-01-01T00:00:00Z",
        "2026-13-45T00:00:00Z",
        "yesterday",
        "1e100",
        "99999999999",
        "2026-01-01T25:00:00Z",
    ],
)
@pytest.mark.parametrize("field", ["since", "until"])
def test_impossible_dates_are_422(env, field, value):
    response = request_unchanged(env, "GET", "/api/v1/executions", query_string={field: value})
    assert field in assert_error_shape(response, 422)["errors"]


def test_extreme_but_real_dates_are_accepted(env):
    response = request_unchanged(
        env,
        "GET",
        "/api/v1/executions",
        query_string={"since": "0001-01-01T00:00:00Z", "until": "9999-12-31T23:59:59.999999Z"},
    )
    assert response.status_code == 200
    assert response.get_json()["total"] == snapshot(env[1])[0]
    for since in ("9999-12-31T23:00:00.000001Z", "9999-12-31T23:59:59.999999Z"):
        for status in (None, "failed"):
            query = {"since": since, **({"status": status} if status else {})}
            response = request_unchanged(env, "GET", "/api/v1/executions", query_string=query)
            assert (response.status_code, response.get_json()["total"]) == (200, 0), since


def test_unknown_and_repeated_parameters(env):
    response = request_unchanged(env, "GET", "/api/v1/executions?bogus=1&limit=2")
    assert "bogus" in assert_error_shape(response, 422)["errors"]
    response = request_unchanged(env, "GET", "/api/v1/executions/stats?days=1&nope=")
    assert "nope" in assert_error_shape(response, 422)["errors"]


CURSORS = [
    "%%%",
    "!!!!",
    "not a cursor",
    "=",
    "a" * 201,
    b64("hello"),
    b64("a:b"),
    b64("1:2:3"),
    b64(b"\xff\xfe:1"),
    b64("99999999999999999999999:1"),
    b64("1:99999999999999999999999"),
    b64("-62135596800000001:5"),  # a microsecond before year 1: no run starts there
    b64("253402300800000000:1"),  # one after year 9999
    b64("9223372036854775807:1"),
    b64("1.5:2"),
    b64("1:-2"),
    b64("1_0:2"),
    b64(" 1:2 "),
    b64("١:٢"),
    b64("1:"),
    b64(":1"),
    b64("0x10:1"),
    b64("\x00:\x00"),
]


@pytest.mark.parametrize("cursor", CURSORS, ids=[c[:20] for c in CURSORS])
def test_invalid_cursors_are_422(env, cursor):
    response = request_unchanged(
        env, "GET", "/api/v1/executions", query_string={"cursor": cursor, "limit": 1}
    )
    assert "cursor" in assert_error_shape(response, 422)["errors"]


def test_a_real_cursor_still_pages(env):
    client = env[0]
    first = client.get("/api/v1/executions?limit=3").get_json()
    second = client.get(f"/api/v1/executions?limit=3&cursor={first['next_cursor']}")
    assert second.status_code == 200
    assert len(second.get_json()["executions"]) == 1


def test_the_openapi_document_states_every_bound(env):
    doc = env[0].get("/openapi.json").get_json()

    def param(path: str, method: str, name: str) -> dict:
        params = doc["paths"][path][method]["parameters"]
        return next(p["schema"] for p in params if p["name"] == name)

    for path, method, name, low, high in [
        ("/api/v1/executions", "get", "limit", 1, MAX_LIMIT),
        ("/api/v1/executions", "get", "offset", 0, MAX_OFFSET),
        ("/api/v1/executions/stats", "get", "days", 1, MAX_DAYS),
        ("/api/v1/executions/stats/{plugin}", "get", "days", 1, MAX_DAYS),
        ("/api/v1/executions/cleanup", "delete", "older_than_days", 0, MAX_DAYS),
    ]:
        schema = param(path, method, name)
        assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", low, high), (
            path,
            name,
            schema,
        )
    for name, longest in [("plugin", 100), ("trace_id", 200), ("cursor", 200)]:
        assert param("/api/v1/executions", "get", name)["maxLength"] == longest


# -- payloads that are valid but awkward: recorded, never a 500 ----------------------
def test_lone_surrogate_in_json_is_run_and_recorded(env):
    client = env[0]
    response = client.post(
        "/api/v1/webhook/ok",
        data=b'{"a": "\\ud800", "b": "\\u0000"}',
        content_type=JSON,
        headers={"X-Bridge-Tags": '{"k": "\\udfff"}'},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["data"]["echo"] == {"a": "\ud800", "b": "\x00"}
    record = client.get(f"/api/v1/executions/{response.get_json()['execution_id']}")
    stored = record.get_json()["execution"]
    assert stored["status"] == "completed"
    assert json.loads(stored["input"]) == {"a": "\ud800", "b": "\x00"}
    assert json.loads(stored["tags"]) == {"k": "\udfff"}


def test_lone_surrogate_in_a_plugin_error_is_recorded(env):
    client = env[0]
    response = client.post(
        "/api/v1/webhook/echo_error", data=b'{"v": "\\ud800"}', content_type=JSON
    )
    assert response.status_code == 500 and response.get_json()["error_type"]
    detail = client.get(f"/api/v1/executions/{response.get_json()['execution_id']}")
    stored = detail.get_json()
    assert stored["execution"]["status"] == "failed"
    assert "bad value \\ud800" in stored["execution"]["error"]
    assert "bad value \\ud800" in stored["attempts"][0]["error"]
    storage = client.get("/health").get_json()["checks"]["storage"]
    assert storage["status"] == "healthy" and storage["write_failures"]["count"] == 0


def test_hostile_trace_id_header_is_replaced(env):
    client = env[0]
    response = client.post("/api/v1/webhook/ok", json={}, headers={"X-Request-ID": "' OR 1=1 --"})
    assert response.status_code == 200
    trace_id = response.headers["X-Request-ID"]
    assert trace_id != "' OR 1=1 --" and trace_id == response.get_json()["trace_id"]
    listed = client.get("/api/v1/executions", query_string={"trace_id": trace_id}).get_json()
    assert listed["total"] == 1


@pytest.mark.parametrize(
    "url,allowed",
    [
        ("/api/v1/executions", {"GET", "HEAD", "OPTIONS"}),
        ("/api/v1/webhook/ok", {"GET", "POST", "PUT", "OPTIONS"}),
        ("/health", {"GET", "HEAD", "OPTIONS"}),
    ],
)
def test_options_is_204_with_allow_and_no_page(env, url, allowed):
    response = request_unchanged(env, "OPTIONS", url)
    assert response.status_code == 204
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}
    assert "Content-Type" not in response.headers and response.get_data() == b""
