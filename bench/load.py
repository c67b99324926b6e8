"""Bounded HTTP load: wrk (`--latency`, a lua script for the POST body) and its parser,
plus a small Python fallback so the smoke test needs no wrk."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().parent / "post.lua"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_DURATION = r"([\d.]+)(us|ms|s|m)"


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    non_2xx: int
    errors: int

    @property
    def acknowledged(self) -> int:
        """Requests answered with a 2xx: the ones whose records must be committed."""
        return self.requests - self.non_2xx


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk(text: str) -> LoadResult:
    """Read req/s, p50, p99, the longest request and error counts from wrk's output."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text)
        if match is None:
            raise ValueError(f"wrk output has no {pattern!r}:\n{text}")
        return match

    latency = find(rf"Latency\s+{_DURATION}\s+{_DURATION}\s+{_DURATION}")
    p50 = find(rf"50%\s+{_DURATION}")
    p99 = find(rf"99%\s+{_DURATION}")
    requests = int(find(r"(\d+) requests in")[1])
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    return LoadResult(
        rps=float(find(r"Requests/sec:\s+([\d.]+)")[1]),
        p50_ms=_ms(p50[1], p50[2]),
        p99_ms=_ms(p99[1], p99[2]),
        max_ms=_ms(latency[5], latency[6]),
        requests=requests,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        errors=sum(int(g) for g in sockets.groups()) if sockets else 0,
    )


def _wrk_args(url: str, connections: int, seconds: int, threads: int = 2) -> list[str]:
    return [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA),
        url,
    ]


def _wrk_env(body_file: Path) -> dict[str, str]:
    return {**os.environ, "BENCH_BODY": str(body_file)}


def run_wrk(
    url: str, body_file: Path, seconds: float, connections: int = 16, threads: int = 2
) -> LoadResult:
    out = subprocess.run(
        _wrk_args(url, connections, max(1, round(seconds)), threads),
        env=_wrk_env(body_file),
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_wrk(out.stdout)


def run_python(
    url: str,
    body_file: Path,
    seconds: float,
    connections: int = 16,
    stop: threading.Event | None = None,
) -> LoadResult:
    """The same measurement with keep-alive http.client threads (slower, needs nothing);
    ends after `seconds` or when `stop` is set."""
    match = re.fullmatch(r"http://([^:/]+):(\d+)(/.*)", url)
    assert match is not None, url
    host, port, path = match[1], int(match[2]), match[3]
    body = body_file.read_bytes()
    latencies: list[float] = []
    counts = {"non_2xx": 0, "errors": 0}
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds
    stop = stop or threading.Event()

    def worker() -> None:
        mine: list[float] = []
        non_2xx = errors = 0
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while time.perf_counter() < deadline and not stop.is_set():
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
            except OSError:
                errors += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=10)
                continue
            mine.append((time.perf_counter() - t0) * 1000)
            non_2xx += not 200 <= response.status < 300
        conn.close()
        with lock:
            latencies.extend(mine)
            counts["non_2xx"] += non_2xx
            counts["errors"] += errors

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(connections)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    if not latencies:
        return LoadResult(0.0, 0.0, 0.0, 0.0, 0, counts["non_2xx"], counts["errors"])
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return LoadResult(
        len(latencies) / elapsed,
        cuts[49],
        cuts[98],
        max(latencies),
        len(latencies),
        counts["non_2xx"],
        counts["errors"],
    )


def run_load(url: str, body_file: Path, seconds: float, connections: int = 16) -> LoadResult:
    """wrk when it is installed, else the Python fallback."""
    if have_wrk():
        return run_wrk(url, body_file, seconds, connections)
    return run_python(url, body_file, seconds, connections)


class BackgroundLoad:
    """The same load, running until `stop()`: for figures taken while something else runs."""

    def __init__(
        self, url: str, body_file: Path, connections: int = 16, limit_s: float = 1800
    ) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._result: LoadResult | None = None
        if have_wrk():
            self._proc = subprocess.Popen(
                _wrk_args(url, connections, int(limit_s)),
                env=_wrk_env(body_file),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        else:

            def target() -> None:
                self._result = run_python(url, body_file, limit_s, connections, self._stop)

            self._thread = threading.Thread(target=target)
            self._thread.start()

    def stop(self) -> LoadResult:
        """wrk prints its figures when interrupted (SIGINT), as after its duration."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)
            out, _err = self._proc.communicate(timeout=60)
            return parse_wrk(out)
        assert self._thread is not None
        self._stop.set()
        self._thread.join()
        assert self._result is not None
        return self._result
