"""`python -m bench --smoke`: the benchmark runs end to end and produces its table.

The figures of a smoke run mean nothing (2,000 rows, one 1 s run); only that every
section ran and the table was written is checked here. `make bench` is the real run.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _smoke(tmp_path: Path, output: Path, timeout: float, **env: str) -> tuple[str, str]:
    """`python -m bench --smoke` into `output`: what it printed, and what it wrote."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "BENCH_OUT": str(tmp_path / "out"), **env},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout, output.read_text()


@pytest.mark.slow
def test_bench_smoke_prints_and_writes_the_table(tmp_path: Path) -> None:
    printed, text = _smoke(tmp_path, tmp_path / "RESULTS.md", 120)
    for section in ("1 webhook", "1 durability", "2 history", "3 cleanup", "4 memory", "5 disk"):
        assert f"| {section}" in text, section
        assert f"| {section}" in printed, section
    assert "| bridge, tracking on: req/s" in text
    # CPU per request of each server, and the two ratios checked against their targets
    for label in ("bare Flask", "bridge, tracking off", "bridge, tracking on"):
        row = next(line for line in text.splitlines() if f"| {label}: CPU ms per request" in line)
        total, user, system = (float(x) for x in re.findall(r"\d+\.\d+", row.split("|")[3]))
        assert total > 0 and abs(total - user - system) < 0.02, row
    # The durability floor and the hand-off alone ran; the floor's rows are committed
    for label in ("bare Flask + hand-off", "durability floor"):
        assert f"| {label}: req/s" in text, label
    assert "| CPU per request, durability floor / bare Flask" in text
    with sqlite3.connect(tmp_path / "out" / "floor.db") as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] > 100
    for ratio, target in (
        ("tracked / bare Flask", "<= 1.6x"),
        ("tracked / tracking off", "<= 1.15x"),
    ):
        row = next(line for line in text.splitlines() if f"CPU per request, {ratio}" in line)
        assert target in row and ("met" in row or "MISSED" in row), row
    assert "answered 2xx vs committed after SIGKILL" in text
    # What a scrape of /metrics costs: measured directly, in ms of the server's CPU
    row = next(line for line in text.splitlines() if "| CPU per /metrics scrape" in line)
    assert float(re.search(r"(\d+\.\d+) ms \(", row).group(1)) > 0, row
    assert "Machine:" in text and "Command: `python -m bench --smoke" in text
    # Every server of the run, the floor and bare Flask included, stopped without a
    # traceback (a worker's exit hook once failed on the floor's app)
    for log in (tmp_path / "out").glob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.name


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_bench_smoke_of_a_server_backend(tmp_path: Path, backend: str) -> None:
    """`BENCH_BACKEND=... make bench`, tiny: each of its three sections reaches the table."""
    from storage.databases import mysql_down, postgresql_down, server_missing

    down = postgresql_down() if backend == "postgresql" else mysql_down()
    if down:
        server_missing(down)
    _, text = _smoke(tmp_path, tmp_path / f"RESULTS-{backend}.md", 180, BENCH_BACKEND=backend)
    for section in ("1 webhook", "2 history", "3 cleanup under load"):
        assert f"| {backend} {section}" in text, section
    assert re.search(rf"\| {backend} 3 cleanup under load \| deleted .*\| [\d,]+ in ", text)
    # CPU per tracked request: the bridge's, and the database server's (on this machine)
    row = next(line for line in text.splitlines() if f"{backend} tracked: CPU ms per" in line)
    bridge, database = map(float, re.search(r"(\d+\.\d+) \+ (\d+\.\d+)", row).groups())
    assert bridge > 0 and database > 0, row
