from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from bridge import clock, create_app, shutdown_app

PLUGINS = Path(__file__).parent / "plugins"
ROOT = Path(__file__).resolve().parent.parent
FROZEN_AT = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    shutil.copytree(PLUGINS, folder)
    return folder


@pytest.fixture
def make_app(request: pytest.FixtureRequest, tmp_path: Path, plugin_dir: Path):
    """`make_app(**sections)` builds an app on a fresh SQLite database; a test marked
    with storage.databases.ON_EVERY_BACKEND gets one on each backend in turn."""
    backend = getattr(request, "param", "sqlite")
    apps = []
    with contextlib.ExitStack() as databases:
        storage: dict = {"sqlite": {"database_path": str(tmp_path / "data" / "ex.db")}}
        if backend != "sqlite":
            from storage.conftest import BACKENDS

            section = databases.enter_context(BACKENDS[backend](tmp_path))
            storage = {"type": backend, backend: section, "spool_path": str(tmp_path / "spool")}

        def build(**overrides):
            config = {
                "plugins": {"dirs": [str(plugin_dir)]},
                "storage": dict(storage),
                "scheduler": {"enabled": False},
                "logging": {"level": "WARNING"},
            }
            for section, values in overrides.items():
                config.setdefault(section, {}).update(values)
            app = create_app(config)
            apps.append(app)
            return app

        yield build
        for app in apps:
            shutdown_app(app, timeout=1)


class FrozenClock:
    """What `clock.utcnow()` returns while `frozen_clock` is on; moves only when told."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def set(self, now: datetime) -> datetime:
        if now.tzinfo is None:
            raise ValueError("frozen_clock.set() takes an aware datetime, as utcnow() returns")
        self.now = now.astimezone(UTC)
        return self.now


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """The bridge's wall clock stopped at FROZEN_AT (UTC) for one test, so a window can
    expire or a day change without sleeping: `frozen_clock.advance(seconds)` moves it on,
    `frozen_clock.set(datetime)` puts it anywhere, `frozen_clock.now` reads it.

    Only `bridge.clock.utcnow` is frozen (plus modules that imported it by name, such as
    `bridge.signatures`); durations, deadlines and ids keep real time, so runs still
    finish and waits still time out."""
    real, frozen = clock.utcnow, FrozenClock(FROZEN_AT)
    monkeypatch.setattr(clock, "utcnow", frozen)
    for name, module in list(sys.modules.items()):
        if name.startswith("bridge.") and getattr(module, "utcnow", None) is real:
            monkeypatch.setattr(module, "utcnow", frozen)
    return frozen


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@dataclass
class Server:
    """A real gunicorn master (the shipped gunicorn.conf.py) on a loopback port."""

    base: str
    proc: subprocess.Popen
    db: Path
    log: Path

    def workers(self) -> list[int]:
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.proc.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def start_gunicorn(
    tmp_path: Path, plugin_dir: Path, host: str = "", **sections: dict
) -> Iterator[Server]:
    """Run gunicorn with 2 workers on a free 127.0.0.1 port, the plugins of `plugin_dir`
    and a database in `tmp_path`, until the block ends; `sections` override the config,
    `host` names the config and log files of a second server beside the first."""
    port = _free_port()
    config = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "workers": 2,
            "threads": 4,
            "graceful_timeout": "3s",
        },
        "plugins": {"dirs": [str(plugin_dir)]},
        "storage": {"sqlite": {"database_path": str(tmp_path / "ex.db")}},
        "execution_tracking": {"stale_check_interval": "1s"},
        "scheduler": {"takeover_interval": "0.5s"},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = tmp_path / f"config{host}.yaml"
    path.write_text(yaml.safe_dump(config))
    log_path = tmp_path / f"gunicorn{host}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env={**os.environ, "BRIDGE_CONFIG": str(path)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = Server(f"http://127.0.0.1:{port}", proc, tmp_path / "ex.db", log_path)
        try:
            deadline = time.monotonic() + 40
            while True:
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"{server.base}/health", timeout=5).status_code == 200:
                        break
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.1)
            yield server
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def gunicorn(tmp_path: Path, plugin_dir: Path):
    """`with gunicorn(section={...}) as server:` runs gunicorn (start_gunicorn) with the
    test plugins and a database in tmp_path, until the block ends. `host="b"` names a
    second one running beside it (its own config and log files), as a second host on a
    server database."""

    def start(host: str = "", **sections: dict) -> contextlib.AbstractContextManager[Server]:
        return start_gunicorn(tmp_path, plugin_dir, host, **sections)

    return start
