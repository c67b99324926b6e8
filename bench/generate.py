"""A history database for the at-scale figures: N executions over 90 days, 20 plugins,
about 10% failures, realistic payload sizes, written through SQLiteStore's bulk path and
rolled up. Cached under bench/.cache/ so reruns skip it."""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bridge.config import from_dict
from bridge.model import AttemptRecord, ExecutionRecord, Status
from bridge.storage.rollup import rollup
from bridge.storage.sqlite import SQLiteStore
from bridge.storage.sqlite.migrations import MIGRATIONS
from bridge.tracking.fingerprint import error_group
from bridge.tracking.ids import uuid7_from

CACHE = Path(__file__).resolve().parent / ".cache"
VERSION = 3  # bump when the generated data changes; the schema version is in the name
DAYS = 90
PLUGINS = [f"plugin_{i:02d}" for i in range(20)]
CHUNK = 50_000
# (error_type, status, share of failures)
FAILURES = [
    ("timeout", Status.TIMEOUT, 0.25),
    ("connection_error", Status.FAILED, 0.30),
    ("validation_error", Status.FAILED, 0.25),
    ("unknown_error", Status.FAILED, 0.15),
    ("permission_denied", Status.FAILED, 0.05),
]
FAILURE_RATE = 0.10

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class History:
    path: Path
    rows: int
    now: datetime  # the generated runs end here


def _payload(rng: random.Random, size: int) -> str:
    """A webhook-like JSON object of about `size` bytes."""
    commits = [
        {
            "id": uuid.UUID(int=rng.getrandbits(128)).hex,
            "message": "fix: " + "x" * 40,
            "author": {"name": "dev", "email": "dev@example.com"},
        }
        for _ in range(max(0, (size - 200) // 160))
    ]
    return json.dumps(
        {
            "ref": "refs/heads/main",
            "repository": {"full_name": "acme/app"},
            "sender": {"login": "dev", "id": rng.randint(1, 10**6)},
            "commits": commits,
        },
        separators=(",", ":"),
    )


def _records(rows: int, now: datetime, seed: int = 5) -> Iterator[ExecutionRecord]:
    rng = random.Random(seed)
    # Sizes in bytes: most webhooks are small, a few carry a few KB.
    inputs = [
        _payload(rng, size)
        for size in [150] * 6 + [400] * 8 + [800] * 6 + [1500] * 4 + [3000] * 2 + [6000]
    ]
    outputs = [
        json.dumps({"status": "success", "processed": n, "note": "ok" * n}) for n in (1, 5, 20, 60)
    ]
    frames = "    frame\n" * 20
    errors = {
        et: f'Traceback (most recent call last):\n  File "plugins/x.py", line 12, in '
        f"handle\n{frames}{et}: the upstream said no\n"
        for et, _, _ in FAILURES
    }
    weights = [share for _, _, share in FAILURES]
    start = now - timedelta(days=DAYS)
    step_us = DAYS * 86_400_000_000 / rows
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    start_us = int((start - epoch).total_seconds() * 1_000_000)
    for i in range(rows):
        t_us = start_us + int((i + rng.random()) * step_us)
        began = epoch + timedelta(microseconds=t_us)
        failed = rng.random() < FAILURE_RATE
        if failed:
            error_type, status, _ = rng.choices(FAILURES, weights)[0]
            duration_ns = (
                30_000_000_000 if status is Status.TIMEOUT else int(rng.lognormvariate(17, 1))
            )
            output, error = "", errors[error_type]
        else:
            error_type, status, error = "", Status.COMPLETED, ""
            duration_ns = int(rng.lognormvariate(16.5, 1.2))
            output = rng.choice(outputs)
        ended = began + timedelta(microseconds=duration_ns // 1000)
        plugin = PLUGINS[int(rng.paretovariate(1.2)) % len(PLUGINS)]
        # Ids and trace ids as the bridge makes them: UUIDv7 of the run's start.
        execution_id = str(uuid7_from(t_us // 1000, rng.getrandbits(74)))
        yield ExecutionRecord(
            id=execution_id,
            plugin_name=plugin,
            http_method="POST",
            start_time=began,
            end_time=ended,
            status=status,
            input=rng.choice(inputs),
            output=output,
            error=error,
            error_type=error_type,
            error_group=error_group(plugin, error_type, error).fingerprint if failed else "",
            duration=duration_ns,
            attempts=1,
            trace_id=uuid7_from(t_us // 1000, rng.getrandbits(74)).hex,
            user_agent="GitHub-Hookshot/abc123",
            remote_ip="192.0.2.10",
            tags='{"env":"prod"}',
            metadata='{"content_type":"application/json","async":false}',
            created_at=began,
            updated_at=ended,
            worker="bench:1",
            attempt_records=[
                AttemptRecord(1, began, ended, status, error[:200], error_type, duration_ns)
            ],
        )


def generate(path: Path, rows: int, now: datetime) -> None:
    """Write `rows` runs through the store in big transactions, then roll them up."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    config = from_dict(
        {
            "storage": {"sqlite": {"database_path": str(path), "synchronous": "OFF"}},
            "scheduler": {"enabled": False},
        }
    )
    store = SQLiteStore(config, on_error=lambda action, exc: log.error("%s: %s", action, exc))
    try:
        batch: list[ExecutionRecord] = []
        for record in _records(rows, now):
            batch.append(record)
            if len(batch) >= CHUNK:
                store.insert_many(batch)
                batch = []
        if batch:
            store.insert_many(batch)
        rollup(store, now)
    finally:
        store.close()


def cached_history(rows: int, log_line: Callable[[str], None] = print) -> History:
    """The cached database for `rows`, generating it first if it is missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"history-{rows}-v{VERSION}-s{len(MIGRATIONS)}.db"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        info = json.loads(meta.read_text())
        return History(path, info["rows"], datetime.fromisoformat(info["now"]))
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = time.perf_counter()
    log_line(f"generating {rows:,} executions into {path} ...")
    generate(path, rows, now)
    elapsed = time.perf_counter() - t0
    log_line(f"generated {rows:,} executions in {elapsed:.1f}s")
    meta.write_text(
        json.dumps({"rows": rows, "now": now.isoformat(), "seconds": round(elapsed, 1)})
    )
    return History(path, rows, now)
