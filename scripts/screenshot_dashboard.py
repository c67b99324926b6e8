"""Take docs/dashboard.png: a real gunicorn server over a generated history of sample runs
(bench/generate.py: 20 plugins, 90 days, about 10% failures) plus a few live webhook
calls, drawn by Debian's Chromium through Playwright.

    .venv/bin/python scripts/screenshot_dashboard.py [--rows 40000] [--output docs/dashboard.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.generate import generate  # noqa: E402
from bench.servers import Server, bridge_config  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--window", default="7d", choices=("1h", "24h", "7d", "30d"))
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "history.db"
        generate(db, args.rows, datetime.now(UTC).replace(microsecond=0))
        config = bridge_config(
            "screenshot",
            tracking=True,
            db=db,
            extra={"storage": {"sqlite": {"retention_days": 3650}}},
        )
        server = Server("screenshot", config).start()
        try:
            for i in range(20):
                server.request("POST", "/api/v1/webhook/noop", body=b'{"n": %d}' % i)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.goto(f"{server.base}/dashboard?window={args.window}")
                page.wait_for_selector("body[data-loaded='1']")
                args.output.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.output), full_page=True)
                browser.close()
        finally:
            server.stop()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
