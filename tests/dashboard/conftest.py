"""The dashboard in a real browser: Debian's Chromium driven by Playwright, against real
gunicorn servers with real runs. A failing test leaves a screenshot in
.artifacts/dashboard/<test>.png."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import PLUGINS, ROOT, Server, start_gunicorn

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / ".artifacts" / "dashboard"
READER = "dashboard-reader-key-0123"
OPERATOR = "dashboard-operator-key-01"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if report.when == "call":
        item.stash[FAILED] = report.failed
    return report


FAILED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser profile (no storage) per test; a screenshot if the test fails."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    ctx.set_default_timeout(10_000)
    yield ctx
    if request.node.stash.get(FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        for i, page in enumerate(ctx.pages):
            path = ARTIFACTS / f"{name}{f'-{i}' if i else ''}.png"
            page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of the failed page: {path}")
    ctx.close()


@pytest.fixture
def page(context: Any) -> Any:
    return context.new_page()


def post(server: Server, plugin: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
    response = requests.post(
        f"{server.base}/api/v1/webhook/{plugin}", json=body, params=params, timeout=30
    )
    return response.json()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A bridge with no key configured (loopback only) that ran 6 ok runs, 3 raising
    ones and a flaky one that succeeded on its third attempt."""
    tmp = tmp_path_factory.mktemp("dashboard")
    plugin_dir = tmp / "plugins"
    shutil.copytree(PLUGINS, plugin_dir)
    with start_gunicorn(tmp, plugin_dir) as server:
        for i in range(6):
            post(server, "ok", {"order": 1000 + i, "items": [{"sku": "A-1", "qty": i + 1}]})
        for i in range(3):
            post(server, "raising", {"amount": -i})
        post(server, "flaky", {"retry": True})
        yield server


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A bridge with a read-only key and a write key, and one run."""
    tmp = tmp_path_factory.mktemp("dashboard-keyed")
    plugin_dir = tmp / "plugins"
    shutil.copytree(PLUGINS, plugin_dir)
    keys = [
        {"name": "viewer", "key": READER, "scopes": ["read"]},
        {"name": "operator", "key": OPERATOR, "scopes": ["write"]},
    ]
    with start_gunicorn(tmp, plugin_dir, auth={"api_keys": keys}) as server:
        post(server, "ok", {"hello": "world"})
        yield server
