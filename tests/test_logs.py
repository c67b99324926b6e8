"""One log format for every line a real gunicorn server writes (its own, the access
log, the bridge's, the plugins'), and run fields on the lines a run writes."""

from __future__ import annotations

import json
import re

import pytest
import requests

pytestmark = pytest.mark.slow

CHATTY = """
from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    def handle(self):
        self.logger.warning("working on %s", self.data.get("job"))
        return {"ok": True}
"""

TEXT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[\d+\] [\w.]+: ")


def _run_and_read_log(gunicorn, plugin_dir, fmt: str) -> tuple[list[str], str]:
    (plugin_dir / "chatty.py").write_text(CHATTY)
    with gunicorn(logging={"format": fmt}, execution_tracking={"retention_day": 1}) as server:
        r = requests.post(
            f"{server.base}/api/v1/webhook/chatty?token=s3cret",
            json={"job": "j-42"},
            headers={"X-Request-ID": "trace-log-1"},
            timeout=10,
        )
        assert r.status_code == 200
        execution_id = r.json()["execution_id"]
    lines = [line for line in server.log.read_text().splitlines() if line.strip()]
    return lines, execution_id


def test_json_format_every_line_is_an_object_with_run_fields(gunicorn, plugin_dir):
    lines, execution_id = _run_and_read_log(gunicorn, plugin_dir, "json")
    parsed = [json.loads(line) for line in lines]  # every line, gunicorn's included
    assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
    loggers = {p["logger"] for p in parsed}
    assert {"gunicorn.error", "gunicorn.access", "plugins.chatty"} <= loggers
    (work,) = [p for p in parsed if p["logger"] == "plugins.chatty"]
    assert work["message"] == "working on j-42" and work["level"] == "WARNING"
    assert work["execution_id"] == execution_id and work["trace_id"] == "trace-log-1"
    assert work["plugin"] == "chatty"
    typo = [p for p in parsed if "retention_day " in p["message"]]
    assert len(typo) == 1, typo  # once for the master and its two workers
    assert "did you mean retention_days?" in typo[0]["message"]


def test_text_format_every_line_has_the_same_shape(gunicorn, plugin_dir):
    lines, execution_id = _run_and_read_log(gunicorn, plugin_dir, "text")
    odd = [line for line in lines if not TEXT_LINE.match(line)]
    assert odd == []
    (work,) = [line for line in lines if "plugins.chatty" in line]
    assert f"execution_id={execution_id}" in work and "trace_id=trace-log-1" in work
