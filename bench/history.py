"""Figure 2: the executions API over the generated history, p50/p95 of repeated calls
through a real gunicorn server with one keep-alive connection."""

from __future__ import annotations

import http.client
import json
import sqlite3
import time
from datetime import timedelta
from urllib.parse import urlencode

from bench.generate import PLUGINS, History
from bench.report import Report, percentile
from bench.servers import Server
from bridge.clock import rfc3339
from bridge.storage.cursors import encode_cursor

TARGET_MS = 20.0


def _deep(history: History, depth: int) -> tuple[str, str]:
    """A cursor `depth` rows deep (newest first) and an execution id from the middle."""
    conn = sqlite3.connect(f"file:{history.path}?mode=ro", uri=True)
    try:
        start, seq, execution_id = conn.execute(
            "SELECT start_time, seq, id FROM executions ORDER BY start_time DESC, seq DESC "
            "LIMIT 1 OFFSET ?",
            (max(0, depth - 1),),
        ).fetchone()
    finally:
        conn.close()
    return encode_cursor(start, seq), execution_id


def _probes(history: History) -> list[tuple[str, str, bool]]:
    """(label, path, has a 20 ms target) for every call the figure times."""
    depth = min(500_000, history.rows // 2)
    cursor, execution_id = _deep(history, depth)
    since = rfc3339(history.now - timedelta(days=37))
    until = rfc3339(history.now - timedelta(days=30))
    plugin = PLUGINS[5]

    def q(**params: str) -> str:
        return "/api/v1/executions" + ("?" + urlencode(params) if params else "")

    return [
        ("list, no filter", q(), True),
        ("list, plugin", q(plugin=plugin), True),
        ("list, status", q(status="failed"), True),
        ("list, plugin+status", q(plugin=plugin, status="completed"), True),
        ("list, error_type", q(error_type="timeout"), True),
        ("list, since+until (7 days)", q(since=since, until=until), True),
        (f"list, cursor {depth:,} rows deep", q(cursor=cursor), True),
        ("record detail", f"/api/v1/executions/{execution_id}", False),
        ("stats days=7", "/api/v1/executions/stats?days=7", True),
        ("stats days=90", "/api/v1/executions/stats?days=90", True),
        ("storage info", "/api/v1/executions/storage/info", False),
    ]


def measure(report: Report, server: Server, history: History, calls: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    sec = f"2 history {history.rows:,} rows"
    try:
        for label, path, targeted in _probes(history):
            timings: list[float] = []
            body: dict = {}
            for i in range(calls + 2):  # two warm-up calls
                t0 = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                raw = response.read()
                elapsed = (time.perf_counter() - t0) * 1000
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status} {raw[:300]!r}")
                if i >= 2:
                    timings.append(elapsed)
                body = json.loads(raw)
            p50, p95 = percentile(timings, 50), percentile(timings, 95)
            value = f"p50 {p50:.1f} / p95 {p95:.1f} ms"
            if "total" in body:
                mark = " (estimate)" if body.get("total_is_estimate") else ""
                value += f", total {body['total']:,}{mark}"
            if targeted:
                report.add(sec, label, value, f"p95 <= {TARGET_MS:g} ms", p95 <= TARGET_MS)
            else:
                report.add(sec, label, value)
    finally:
        conn.close()
