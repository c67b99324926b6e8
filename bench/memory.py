"""Figure 4: peak RSS per worker with 16 concurrent 1 MB POSTs, against the same worker
idle (a fresh tracked server, so VmHWM holds only this figure's peak)."""

from __future__ import annotations

import http.client
import threading
import time

from bench.report import Report
from bench.servers import Server, bridge_config, rss_kb
from bench.throughput import PATH, body_file

LIMIT_MB = 100


def measure(report: Report, rounds: int) -> None:
    body = body_file(1_000_000, "body-1m.json").read_bytes()
    server = Server("memory", bridge_config("memory", tracking=True))
    server.db.unlink(missing_ok=True)
    server.start()
    statuses: list[int] = []
    try:
        for _ in range(4):  # touch every code path once before calling it idle
            server.request("POST", PATH, b'{"warm": true}')
        time.sleep(0.5)
        pids = server.workers()
        idle = {pid: rss_kb(pid) for pid in pids}
        peak = dict(idle)
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.01):
                for pid in pids:
                    peak[pid] = max(peak[pid], rss_kb(pid))

        def post() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            try:
                conn.request("POST", PATH, body=body,
                             headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                statuses.append(response.status)
            finally:
                conn.close()

        sampler = threading.Thread(target=sample)
        sampler.start()
        for _ in range(rounds):
            clients = [threading.Thread(target=post) for _ in range(16)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
        done.set()
        sampler.join()
        for pid in pids:
            peak[pid] = max(peak[pid], rss_kb(pid, "VmHWM"))
    finally:
        server.stop()

    sec = "4 memory 16x1MB"
    growth = max((peak[p] - idle[p]) / 1024 for p in pids)
    report.add(sec, "idle RSS per worker", " / ".join(f"{idle[p] / 1024:.0f} MB" for p in pids))
    report.add(sec, "peak RSS per worker", " / ".join(f"{peak[p] / 1024:.0f} MB" for p in pids))
    report.add(sec, "largest growth over idle", f"{growth:.0f} MB", f"<= {LIMIT_MB} MB",
               growth <= LIMIT_MB)
    ok = sum(200 <= s < 300 for s in statuses)
    report.add(sec, "1 MB POSTs answered 2xx", f"{ok} / {16 * rounds}", "all",
               ok == 16 * rounds)
