"""Figure 2b: the dashboard over the generated history, loaded in headless Chromium
(Debian's, through Playwright) from the history server: first contentful paint, the
moment every panel but storage has drawn its figures (the target), and the storage
panel (asked last: its record count reads the whole index), per window, each in a fresh
browser profile (nothing cached). The windows end at the real now: a history cached weeks ago leaves
the shorter windows with fewer rows than a fresh one (RESULTS.md says its age)."""

from __future__ import annotations

from typing import Any

from bench.generate import History
from bench.report import Report, percentile
from bench.servers import Server

CHROMIUM = "/usr/bin/chromium"
TARGET_MS = 1000.0
WINDOWS = ("24h", "30d")


def _load(browser: Any, url: str) -> tuple[float, float, float]:
    """(first contentful paint, panels drawn, storage drawn) in ms since navigation."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-loaded='1']", timeout=60_000)
        return page.evaluate(
            """() => [
              (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
              performance.getEntriesByName('dashboard-drawn')[0].startTime,
              performance.getEntriesByName('storage-drawn')[0].startTime,
            ]"""
        )
    finally:
        context.close()


def measure(report: Report, server: Server, history: History, loads: int) -> None:
    sec = f"2 history {history.rows:,} rows"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        report.note("dashboard: Playwright is not installed (requirements-dev.txt); not measured")
        return
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for window in WINDOWS:
                url = f"{server.base}/dashboard?window={window}"
                _load(browser, url)  # warm-up: the server's first reads
                paints, drawn, storage = [], [], []
                for _ in range(max(1, loads // 10)):  # 5 in make bench, 1 in --smoke
                    fcp, done, last = _load(browser, url)
                    paints.append(fcp)
                    drawn.append(done)
                    storage.append(last)
                value = (
                    f"first paint p50 {percentile(paints, 50):.0f} ms; panels drawn "
                    f"p50 {percentile(drawn, 50):.0f} / p95 {percentile(drawn, 95):.0f} ms; "
                    f"storage p50 {percentile(storage, 50):.0f} ms"
                )
                p95 = percentile(drawn, 95)
                report.add(
                    sec,
                    f"dashboard, window {window}",
                    value,
                    f"p95 <= {TARGET_MS:g} ms",
                    p95 <= TARGET_MS,
                )
        finally:
            browser.close()
