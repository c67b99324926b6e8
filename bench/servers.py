"""Real gunicorn servers on free loopback ports, started with the shipped gunicorn.conf.py.

Each server gets its own config file (the shipped defaults plus a port, a plugin folder
and a database path) and its own process group, so it can be stopped, or killed with
SIGKILL to check durability, without touching anything else.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "plugins"
# Logs, configs, bodies and database copies; the smoke test points it at a temporary folder.
OUT = Path(os.environ.get("BENCH_OUT") or Path(__file__).resolve().parent / "out")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bridge_config(
    name: str, *, tracking: bool, db: Path | None = None, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The shipped config.yaml with only what the benchmark must change."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["server"]["port"] = free_port()
    config["plugins"]["dirs"] = [str(PLUGINS)]
    config["storage"]["sqlite"]["database_path"] = str(db or OUT / f"{name}.db")
    config["execution_tracking"]["enabled"] = tracking
    config["logging"] = {"level": "WARNING"}
    _merge(config, extra or {})
    return config


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


class Server:
    """One gunicorn master and its workers, in a process group of their own."""

    def __init__(self, name: str, config: dict[str, Any], app: str = "wsgi:app") -> None:
        self.name = name
        self.config = config
        self.app = app
        self.port: int = config["server"]["port"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.db = Path(config["storage"]["sqlite"]["database_path"])

    def start(self, timeout: float = 30.0) -> Server:
        OUT.mkdir(parents=True, exist_ok=True)
        config_path = OUT / f"{self.name}.yaml"
        config_path.write_text(yaml.safe_dump(self.config))
        log = open(OUT / f"{self.name}.log", "wb")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", self.app],
            cwd=ROOT,
            env={**os.environ, "BRIDGE_CONFIG": str(config_path)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, _ = self.request("GET", "/health", timeout=2)
                if status == 200 and len(self.workers()) >= self.config["server"]["workers"]:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (OUT / f"{self.name}.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"server {self.name} did not start:\n{tail}")
            time.sleep(0.1)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, timeout: float = 30.0
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def workers(self) -> list[int]:
        """Pids of the master's children (gunicorn workers)."""
        if self.proc is None:
            return []
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def cpu_seconds(self) -> tuple[float, float]:
        """User and system CPU seconds used so far by the master and its live workers."""
        if self.proc is None:
            return 0.0, 0.0
        return cpu_seconds([self.proc.pid, *self.workers()])

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the whole group at once: master and workers get no chance to flush."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """Summed utime and stime of the processes, from /proc/<pid>/stat (gone ones count 0)."""
    tick = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        user += int(fields[11])
        system += int(fields[12])
    return user / tick, system / tick


DATABASE_SERVERS = ("postgres", "mariadbd", "mysqld")


def database_pids() -> list[int]:
    """The PostgreSQL and MySQL/MariaDB server processes on this machine (when the
    database runs elsewhere: none, and its CPU is not counted)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in DATABASE_SERVERS:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A memory figure (VmRSS, VmHWM) of a process, in kB; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
