"""`python -m bench [--smoke]`: run every figure, print the table, write RESULTS.md.

Overrides: BENCH_ROWS (history size), BENCH_DURATION (seconds per load run), BENCH_RUNS
(alternated runs per server), BENCH_CALLS (timed calls per API probe), BENCH_BACKEND
(postgresql or mysql: that backend's figures instead, see bench/backends.py).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from bench import cleanup, dashboard, history, insight, memory, throughput
from bench.generate import cached_history
from bench.load import have_wrk
from bench.report import Report, command_line, markdown
from bench.servers import OUT, Server, bridge_config

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def _settings(smoke: bool) -> dict[str, int]:
    defaults = (
        {"rows": 2_000, "duration": 1, "runs": 1, "calls": 5, "mem_rounds": 1}
        if smoke
        else {"rows": 1_000_000, "duration": 8, "runs": 5, "calls": 50, "mem_rounds": 3}
    )
    for key in ("rows", "duration", "runs", "calls"):
        value = os.environ.get(f"BENCH_{key.upper()}")
        if value:
            defaults[key] = int(value)
    return defaults


def _history_server(db: Path) -> Server:
    """Tracking on; no background jobs, so only the timed calls touch the database."""
    return Server(
        "history",
        bridge_config(
            "history",
            tracking=True,
            db=db,
            extra={
                "scheduler": {"enabled": False},
                "storage": {"sqlite": {"retention_days": 3650}},
            },
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, one short run each: checks the benchmark works",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="where to write the Markdown results (default: bench/RESULTS.md, "
        "or bench/out/RESULTS-smoke.md with --smoke)",
    )
    args = parser.parse_args(argv)
    s = _settings(args.smoke)
    if os.environ.get("BENCH_BACKEND", "sqlite") != "sqlite":
        from bench.backends import main as backend_main

        return backend_main(os.environ["BENCH_BACKEND"], s, args.output)
    output = args.output or (OUT / "RESULTS-smoke.md" if args.smoke else RESULTS)
    started = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    report = Report()

    def step(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {text}", flush=True)

    if not have_wrk():
        report.note(
            "wrk is not installed: load came from the slower Python fallback, so "
            "throughput figures are the fallback's, not the server's."
        )
    step(f"1/5 webhook throughput: 5 servers x {s['runs']} runs x {s['duration']}s")
    throughput.measure(report, s["duration"], s["runs"], warmup=min(2, s["duration"]))

    step(f"2/5 history: {s['rows']:,} rows")
    hist = cached_history(s["rows"], step)
    db = OUT / "history.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(hist.path, db)  # cleanup changes it; the cache stays as generated
    server = _history_server(db).start()
    try:
        history.measure(report, server, hist, s["calls"])
        dashboard.measure(report, server, hist, s["calls"])
        step("2b insight: analysis, error groups, export, a scrape every second")
        insight.measure(report, server, hist.rows, s["calls"])
        insight.scrape_cost(report, server, s["duration"], s["runs"])
        step("3/5 cleanup under load")
        cleanup.measure(report, server, hist, s["duration"])
    finally:
        server.stop()
    db.unlink(missing_ok=True)

    step("4/5 memory; 5/5 disk came with 1/5")
    memory.measure(report, s["mem_rounds"])

    elapsed = time.perf_counter() - started
    settings = (
        f"rows={s['rows']:,}, duration={s['duration']}s, runs={s['runs']}, "
        f"calls={s['calls']}, load={'wrk' if have_wrk() else 'python'}"
        f"{', smoke' if args.smoke else ''}; gunicorn as `make run` ships it "
        "(gunicorn.conf.py + config.yaml: 2 gthread workers x 8 threads)"
    )
    text = markdown(report, command_line(), settings, elapsed)
    output.write_text(text)
    print()
    print(report.table())
    print()
    print(f"{len(report.missed)} target(s) missed; written to {output} in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
