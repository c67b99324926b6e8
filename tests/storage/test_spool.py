"""The spool on its own: what goes in comes out in order, whole, once; a full spool says
so once a minute and counts; a dead process's spool is adopted by another."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.model import AttemptRecord, ExecutionRecord, Status
from bridge.storage.spool import Spool, decode, encode

T0 = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


def record(n: int, status: Status = Status.COMPLETED) -> ExecutionRecord:
    end = T0 + timedelta(seconds=n, milliseconds=5)
    return ExecutionRecord(
        id=f"run-{n:04d}",
        plugin_name="ok",
        http_method="POST",
        start_time=T0 + timedelta(seconds=n),
        status=status,
        end_time=end if status.is_final else None,
        input=json.dumps({"n": n, "text": "caf\u00e9 \U0001f600"}, ensure_ascii=False),
        output='{"ok": true}',
        duration=5_000_000,
        attempts=1,
        tags='{"env": "prod"}',
        worker="host:1",
        idempotency_key=f"key-{n}",
        attempt_records=[
            AttemptRecord(1, T0 + timedelta(seconds=n), end, Status.COMPLETED, duration=5_000_000)
        ]
        if status.is_final
        else [],
        delivery_answer='{"output": "x"}',
    )


@pytest.fixture
def make_spool():
    made: list[Spool] = []

    def make(folder: Path, max_bytes: int = 10**7) -> Spool:
        made.append(Spool(folder, max_bytes))
        return made[-1]

    yield make
    for spool in made:
        spool.close()


def test_a_record_comes_back_field_for_field():
    original = record(7)
    assert decode(encode(original)) == original
    running = record(8, Status.RUNNING)
    assert decode(encode(running)) == running


def test_replay_writes_in_order_once_and_empties_the_file(tmp_path, make_spool):
    spool = make_spool(tmp_path / "spool", 10**7)
    for n in range(5):
        assert spool.put(record(n, Status.RUNNING))
        assert spool.put(record(n))
    assert spool.depth == 10
    status = spool.status()
    assert status["depth"] == 10 and status["oldest_age_seconds"] is not None
    written: list[tuple[str, Status]] = []
    assert spool.replay(lambda r: written.append((r.id, r.status)), lambda: True) == 10
    assert written == [
        (f"run-{n:04d}", s) for n in range(5) for s in (Status.RUNNING, Status.COMPLETED)
    ]
    assert spool.depth == 0 and spool.status()["oldest_age_seconds"] is None
    assert spool.replay(lambda r: written.append((r.id, r.status)), lambda: True) == 0
    assert len(written) == 10


def test_a_failed_replay_keeps_what_was_not_written(tmp_path, make_spool):
    spool = make_spool(tmp_path / "spool", 10**7)
    for n in range(4):
        spool.put(record(n))
    written: list[str] = []

    def write(r: ExecutionRecord) -> None:
        if r.id == "run-0002":
            raise ConnectionError("server gone")
        written.append(r.id)

    with pytest.raises(ConnectionError):
        spool.replay(write, lambda: False)
    assert written == ["run-0000", "run-0001"] and spool.depth == 2
    spool.replay(lambda r: written.append(r.id), lambda: True)
    assert written == ["run-0000", "run-0001", "run-0002", "run-0003"]
    assert spool.depth == 0


def test_a_record_the_answering_server_refuses_is_dropped_not_stuck(tmp_path, make_spool):
    spool = make_spool(tmp_path / "spool", 10**7)
    for n in range(3):
        spool.put(record(n))

    def write(r: ExecutionRecord) -> None:
        if r.id == "run-0001":
            raise ValueError("data too long")

    assert spool.replay(write, lambda: True) == 2
    assert spool.status()["rejected"] == 1 and spool.depth == 0


def test_past_its_bound_the_spool_counts_and_logs_once_a_minute(tmp_path, make_spool, caplog):
    one = len(encode(record(0)).encode())
    spool = make_spool(tmp_path / "spool", one * 3 + 10)
    with caplog.at_level(logging.ERROR, logger="bridge.tracking"):
        kept = [spool.put(record(n)) for n in range(10)]
    assert kept == [True] * 3 + [False] * 7
    assert spool.status()["dropped"] == 7 and spool.depth == 3
    lines = [r.getMessage() for r in caplog.records if "spool" in r.getMessage()]
    assert len(lines) == 1 and "storage.spool_max_size" in lines[0]


def test_the_spool_of_a_process_that_died_is_replayed_by_another(tmp_path, make_spool):
    folder = tmp_path / "spool"
    script = textwrap.dedent(
        f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_spool import record
        from bridge.storage.spool import Spool
        spool = Spool(__import__("pathlib").Path({str(folder)!r}), 10**7)
        for n in range(3):
            spool.put(record(n))
        os._exit(0)  # no close: as a kill -9 leaves it
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    assert len(list(folder.glob("*.db"))) == 1
    spool = make_spool(folder, 10**7)
    spool.put(record(7))
    # What /metrics shows: the host's backlog, the dead process's file included.
    depth, oldest = spool.host_backlog()
    assert depth == 4 and oldest is not None and oldest <= time.time()
    written: list[str] = []
    assert spool.replay(lambda r: written.append(r.id), lambda: True) == 4
    assert written == ["run-0007", "run-0000", "run-0001", "run-0002"]
    assert [p.name for p in folder.glob("*.db")] == [spool.path.name]
    assert spool.host_backlog() == (0, None)
    assert spool.replay(lambda r: written.append(r.id), lambda: True) == 0


def test_a_live_process_spool_is_left_alone(tmp_path, make_spool):
    folder = tmp_path / "spool"
    first, second = make_spool(folder, 10**7), make_spool(folder, 10**7)
    first.put(record(1))
    # Same process: the file is its own, so the other Spool does not see it as dead.
    assert second.replay(lambda r: None, lambda: True) == 0
    assert first.depth == 1
    first.close()
    assert list(folder.glob("*.db")) != []  # kept: it still holds a record
