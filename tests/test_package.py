"""The project installs as a package (`pip install .`) and its `webhook-bridge` command
serves a folder's config.yaml and plugins/ with the shipped gunicorn settings."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def test_pip_install_then_webhook_bridge_serves(tmp_path):
    source = tmp_path / "source"  # a copy: building in place would leave build/ behind
    source.mkdir()
    for name in ("pyproject.toml", "requirements.txt", "README.md", "bridge", "webhook_bridge"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, source / name)
    target = tmp_path / "installed"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        timeout=240,
    )
    assert (target / "bridge" / "gunicorn_conf.py").exists()
    assert (target / "webhook_bridge" / "plugin.py").exists()

    site = tmp_path / "site"
    (site / "plugins").mkdir(parents=True)
    (site / "plugins" / "hello.py").write_text(
        "from webhook_bridge.plugin import BasePlugin\n\n\n"
        "class Plugin(BasePlugin):\n"
        "    def handle(self):\n"
        "        return {'hello': self.data.get('name')}\n"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (site / "config.yaml").write_text(
        f"server:\n  host: 127.0.0.1\n  port: {port}\n  workers: 1\n"
        "storage:\n  sqlite:\n    database_path: data/runs.db\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HOME": str(tmp_path)}
    with open(tmp_path / "serve.log", "w") as log:
        proc = subprocess.Popen(
            [str(target / "bin" / "webhook-bridge")], cwd=site, env=env, stdout=log, stderr=log
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, (
                tmp_path / "serve.log"
            ).read_text()
            time.sleep(0.1)
        r = requests.post(f"{base}/api/v1/webhook/hello", json={"name": "ada"}, timeout=10)
        assert r.status_code == 200 and r.json()["data"] == {"hello": "ada"}
        assert (site / "data" / "runs.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
