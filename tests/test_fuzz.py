"""Property-based fuzzing of every route in the OpenAPI document (schemathesis).

Requests, valid and invalid, are generated from `/openapi.json` and sent to the app
in process, with a real SQLite file and real plugins. Every answer must agree with the
document: no 5xx, a documented status code, the documented content type and a body
matching the documented schema. Generation is derandomized, so a run in CI is the run
on a laptop; `EXAMPLES` bounds it.

`schemathesis.pytest.from_fixture` does not run on pytest 9 (it sets the removed
`Node._nodeid`), so each route is one test drawing cases from the operation's
strategies, and `test_every_route_is_fuzzed` keeps that list equal to the document.

The webhook routes run only plugins that succeed at once (`ok`, `legacy`,
`post_only`): a plugin that raises answers 500 on purpose; the tests below check
that those answers, the request body and the tag format match the document too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from bridge import create_app, shutdown_app

PLUGINS = Path(__file__).parent / "plugins"
ALL = ["ok", "legacy", "post_only", "raising", "reports_error", "broken"]
SUCCEEDING = ["ok", "legacy", "post_only"]
EXAMPLES = 40
WEBHOOK = "/api/v1/webhook/{plugin}"

ROUTES = [
    ("GET", WEBHOOK),
    ("POST", WEBHOOK),
    ("PUT", WEBHOOK),
    ("PATCH", WEBHOOK),
    ("DELETE", WEBHOOK),
    ("GET", "/api/v1/plugins"),
    ("GET", "/api/v1/plugins/{name}"),
    ("GET", "/api/v1/executions"),
    ("GET", "/api/v1/executions/stats"),
    ("GET", "/api/v1/executions/stats/{plugin}"),
    ("GET", "/api/v1/executions/storage/info"),
    ("DELETE", "/api/v1/executions/cleanup"),
    ("GET", "/api/v1/executions/{execution_id}"),
    ("GET", "/api/v1/executions/timeseries"),
    ("GET", "/api/v1/alerts"),
    ("GET", "/api/v1/alerts/events"),
    ("POST", "/api/v1/alerts/{rule}/test"),
    ("POST", "/api/v1/alerts/{rule}/silence"),
    ("GET", "/api/v1/access"),
    ("GET", "/api/v1/executions/export"),
    ("GET", "/api/v1/executions/analysis"),
    ("GET", "/api/v1/executions/errors"),
    ("POST", "/api/v1/executions/{execution_id}/replay"),
    ("GET", "/metrics"),
    ("GET", "/health"),
]
# An alert rule for the alert routes to find (its channel only logs).
ALERTS = {
    "channels": {"ops": {"type": "log"}},
    "rules": [
        {
            "name": "fuzz-rule",
            "metric": "failure_rate",
            "window": "5m",
            "threshold": 0.5,
            "channels": ["ops"],
        },
    ],
}
# Valid requests a webhook route may still refuse: the plugin decides its methods.
CONFIG = {
    "operations": [
        {
            "include-path-regex": "^/api/v1/webhook/",
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", "404", "405", "5xx"]
                }
            },
        }
    ]
}


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "plugins").mkdir()
    for name in ALL:
        shutil.copy(PLUGINS / f"{name}.py", root / "plugins")
    app = create_app(
        {
            "plugins": {"dirs": [str(root / "plugins")]},
            "storage": {"sqlite": {"database_path": str(root / "data" / "ex.db")}},
            "scheduler": {"enabled": False},
            "logging": {"level": "CRITICAL"},
            "alerts": ALERTS,
        }
    )
    client = app.test_client()
    for name in ("ok", "raising", "reports_error", "legacy"):
        client.post(f"/api/v1/webhook/{name}", json={"seed": True})
    yield app
    shutdown_app(app, timeout=1)


@pytest.fixture(scope="module")
def api_schema(fuzzed_app):
    loaded = schemathesis.openapi.from_wsgi(
        "/openapi.json", fuzzed_app, config=SchemathesisConfig.from_dict(CONFIG)
    )

    @loaded.hook
    def flatmap_path_parameters(context, path_parameters):
        """Half of the plugin (and rule) names are real ones, so that plugins actually run."""
        keys = [key for key in ("plugin", "name", "rule") if key in (path_parameters or {})]
        if not keys:
            return st.just(path_parameters)
        real = SUCCEEDING if context.operation.path == WEBHOOK else ALL
        if "rule" in keys:
            real = ["fuzz-rule"]
        named = st.sampled_from(real).map(
            lambda name: {**path_parameters, **dict.fromkeys(keys, name)}
        )
        return st.one_of(st.just(path_parameters), named)

    return loaded


def test_every_route_is_fuzzed(api_schema):
    documented = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert documented == set(ROUTES)


@pytest.mark.slow  # ~7 s for all routes, a third of `make test-fast`
@pytest.mark.parametrize("method,path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_route_answers_as_documented(api_schema, method, path):
    operation = api_schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case):
        case.call_and_validate()

    answers_as_documented()


# -- the webhook routes' document, beyond what the fuzzer checks -------------------------
def _responses(api_schema, method: str) -> dict:
    return api_schema.raw_schema["paths"][WEBHOOK][method.lower()]["responses"]


@pytest.mark.parametrize("plugin", ["raising", "reports_error"])
def test_failed_run_answers_match_the_document(api_schema, plugin):
    case = api_schema[WEBHOOK]["POST"].Case(path_parameters={"plugin": plugin}, query={})
    response = case.call_and_validate(excluded_checks=[not_a_server_error])
    assert response.status_code == 500


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
def test_every_webhook_status_is_documented(api_schema, method):
    answers = {"400", "401", "404", "405", "409", "422", "429", "500", "503", "504"}
    if method in ("POST", "PUT", "PATCH"):
        answers |= {"413", "415"}
    assert answers - set(_responses(api_schema, method)) == set()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_webhook_request_body_is_documented(api_schema, method):
    operation = api_schema.raw_schema["paths"][WEBHOOK][method.lower()]
    content = operation.get("requestBody", {}).get("content", {})
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(content)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_webhook_tag_format_is_documented(api_schema, method):
    operation = api_schema.raw_schema["paths"][WEBHOOK][method.lower()]
    tag = next(p for p in operation["parameters"] if p["name"] == "tag")
    assert "pattern" in tag["schema"]["items"]
