"""The README's curl examples, pasted in order into bash against a real server: each
must answer 2xx, and none may fail to run (a shell syntax error, an id not found)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _curl_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Use it with curl") :]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_every_curl_example_works_pasted_in_order(gunicorn, tmp_path):
    block = _curl_block()
    assert block.startswith("BRIDGE=http://127.0.0.1:8001\n")
    calls = len(re.findall(r"(?m)(?:^|\$\()curl ", block))
    with gunicorn(plugins={"dirs": [str(ROOT / "plugins")]}) as server:
        script = "set -euo pipefail\n"
        # Every HTTP status goes to stderr, one a line; the answers stay on stdout.
        script += "curl() { command curl -w '%{stderr}%{http_code}\\n' \"$@\"; }\n"
        script += block.replace("http://127.0.0.1:8001", server.base, 1)
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
        )
    codes = done.stderr.split()
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert len(codes) == calls, done.stderr
    assert all(code.startswith("2") for code in codes), list(
        zip(codes, block.splitlines(), strict=False)
    )
    assert '"total_executions"' in done.stdout and '"next_cursor"' in done.stdout
