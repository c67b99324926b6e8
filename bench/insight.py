"""Figure 6: insight over the generated history. Analysis and error groups, p50/p95 of
repeated calls (analysis: p95 <= 50 ms, it reads rollups); a full CSV export streamed
through the server (first bytes, rate, and how much the workers' memory grows: it must
stay flat); and the cost of a Prometheus scrape every second on tracked throughput."""

from __future__ import annotations

import http.client
import statistics
import threading
import time

from bench.load import run_load
from bench.report import Report, percentile
from bench.servers import Server, rss_kb
from bench.throughput import PATH, body_file

ANALYSIS_TARGET_MS = 50.0
FLAT_MB = 50.0  # a worker's growth while it streams every row: far below the export's size
NOISE = 0.05  # tracked throughput with scrapes within 5% of without


def _timed(conn: http.client.HTTPConnection, path: str, calls: int) -> list[float]:
    timings = []
    for i in range(calls + 2):  # two warm-up calls
        t0 = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        raw = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {raw[:300]!r}")
        if i >= 2:
            timings.append((time.perf_counter() - t0) * 1000)
    return timings


def _export(server: Server) -> tuple[int, int, float, float, float]:
    """Rows, bytes, seconds to the first bytes and to the end, and the largest growth of
    a worker's memory (MB) while the whole history streams as CSV."""
    workers = server.workers()
    base = {pid: rss_kb(pid) for pid in workers}
    peak = dict(base)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            for pid in workers:
                peak[pid] = max(peak[pid], rss_kb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
    t0 = time.perf_counter()
    try:
        conn.request("GET", "/api/v1/executions/export?format=csv")
        response = conn.getresponse()
        first = response.read(65536)
        first_s = time.perf_counter() - t0
        size, lines = len(first), first.count(b"\r\n")
        while chunk := response.read(1 << 20):
            size += len(chunk)
            lines += chunk.count(b"\r\n")
        total_s = time.perf_counter() - t0
    finally:
        conn.close()
        done.set()
        sampler.join()
    growth = max((peak[pid] - base[pid]) / 1024 for pid in workers)
    return lines - 1, size, first_s, total_s, growth


def measure(report: Report, server: Server, rows: int, calls: int) -> None:
    sec = f"6 insight {rows:,} rows"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        for label, path, target in (
            ("analysis days=7", "/api/v1/executions/analysis?days=7", ANALYSIS_TARGET_MS),
            ("analysis days=30", "/api/v1/executions/analysis?days=30", ANALYSIS_TARGET_MS),
            ("error groups days=7", "/api/v1/executions/errors?days=7", None),
        ):
            timings = _timed(conn, path, calls)
            p50, p95 = percentile(timings, 50), percentile(timings, 95)
            value = f"p50 {p50:.1f} / p95 {p95:.1f} ms"
            if target is None:
                report.add(sec, label, value)
            else:
                report.add(sec, label, value, f"p95 <= {target:g} ms", p95 <= target)
    finally:
        conn.close()
    exported, size, first_s, total_s, growth = _export(server)
    report.add(
        sec,
        "export csv, every row",
        f"{exported:,} rows, {size / 1e6:.0f} MB in {total_s:.1f} s "
        f"({exported / total_s:,.0f} rows/s), first bytes after {first_s * 1000:.0f} ms",
    )
    report.add(
        sec,
        "export: a worker's memory growth",
        f"{growth:.1f} MB",
        f"flat (<= {FLAT_MB:g} MB)",
        growth <= FLAT_MB,
    )


def scrape_cost(report: Report, server: Server, seconds: float, runs: int) -> None:
    """Tracked webhook throughput without and with a GET /metrics every second,
    alternated; the medians compared."""
    body = body_file(1024, "body-1k.json")
    url = server.base + PATH
    plain: list[float] = []
    scraped: list[float] = []
    for _ in range(max(1, runs)):
        plain.append(run_load(url, body, seconds).rps)
        stop = threading.Event()

        def scraper(stop: threading.Event = stop) -> None:
            while not stop.wait(1.0):
                c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                try:
                    c.request("GET", "/metrics")
                    c.getresponse().read()
                finally:
                    c.close()

        thread = threading.Thread(target=scraper, daemon=True)
        thread.start()
        try:
            scraped.append(run_load(url, body, seconds).rps)
        finally:
            stop.set()
            thread.join()
    without, with_ = statistics.median(plain), statistics.median(scraped)
    change = with_ / without - 1 if without else 0.0
    # The runs without a scrape differ among themselves (gunicorn's workers split the
    # connections unevenly, run by run): that spread, or 5% if it is less, is the noise.
    spread = (max(plain) - min(plain)) / without if without else 0.0
    noise = max(NOISE, spread)
    sec = f"6 insight {len(plain)} x {seconds:g}s"
    report.add(
        sec,
        "tracked req/s with a /metrics scrape every 1 s",
        f"{with_:,.0f} vs {without:,.0f} without ({change:+.1%}; the runs without "
        f"differ by up to {spread:.0%})",
        f"within run noise (the larger of {NOISE:.0%} and that spread)",
        change >= -noise,
    )
    report.add(sec, "CPU per /metrics scrape (the server's, 30 scrapes)", _scrape_cpu(server))


def _scrape_cpu(server: Server, scrapes: int = 30) -> str:
    """The server's CPU time per scrape, measured directly: steadier than throughput."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        user0, system0 = server.cpu_seconds()
        for _ in range(scrapes):
            conn.request("GET", "/metrics")
            conn.getresponse().read()
        user1, system1 = server.cpu_seconds()
    finally:
        conn.close()
    ms = (user1 - user0 + system1 - system0) * 1000 / scrapes
    return f"{ms:.1f} ms ({ms / 10:.2f}% of one core at a scrape a second)"
