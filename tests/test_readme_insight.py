"""README, Insight: its curl block pasted in order into bash against a real server (each
call answers as its comment says), then its command-line block run line by line against
the same database while the server still serves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _blocks() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Insight") : text.index("## Benchmark")]
    curl = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    cli = section[section.index("### Command line") :]
    return curl, re.search(r"```bash\n(.*?)```", cli, re.S).group(1)


def test_the_insight_examples_work_pasted_in_order(gunicorn, tmp_path):
    curl, cli = _blocks()
    assert curl.startswith("BRIDGE=http://127.0.0.1:8001\n")
    with gunicorn(plugins={"dirs": [str(ROOT / "plugins")]}) as server:
        script = "set -euo pipefail\n"
        script += "curl() { command curl -w '%{stderr}%{http_code}\\n' \"$@\"; }\n"
        script += curl.replace("http://127.0.0.1:8001", server.base, 1)
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
        codes = done.stderr.split()
        # The deliberate failure, then its replay with the stored (bad) input: 500;
        # every other call 200.
        assert codes.count("500") == 2 and set(codes) == {"200", "500"}, codes
        assert "# HELP bridge_runs_total" in done.stdout
        (exported,) = tmp_path.glob("executions-status-failed-*.csv")
        assert exported.read_text("utf-8-sig").startswith("id,plugin_name,")

        # The CLI block, run from a folder of its own with the app importable, on the
        # config the server uses: 0 or 1 (a problem found) for each line, never a crash.
        flask = f"{sys.executable} -m flask"
        script = "set -uo pipefail\nfail=0\n"
        for line in cli.strip().splitlines():
            command = line.replace(".venv/bin/flask", flask)
            script += f'{command}\nrc=$?; echo "rc=$rc" >&2; [ $rc -le 1 ] || fail=1\n'
        script += "exit $fail\n"
        done = subprocess.run(
            ["bash", "-c", script],
            cwd=tmp_path,
            env={
                "PATH": "/usr/bin:/bin",
                "PYTHONPATH": str(ROOT),
                "BRIDGE_CONFIG": str(tmp_path / "config.yaml"),
            },
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.count("rc=") == len(cli.strip().splitlines())
    assert (tmp_path / "executions.csv").read_text("utf-8-sig").startswith("id,")
    assert "Would delete 0 executions older than 30 days" in done.stdout
