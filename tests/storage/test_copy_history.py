"""`flask --app app bridge copy-history` as a user runs it (a subprocess), between
each pair of backend kinds: every table's rows arrive, a run arrives whole with its
attempts, and a second run duplicates nothing."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from bridge.config import from_dict
from bridge.model import Status
from bridge.storage import open_store
from bridge.storage.rollup import rollup

from .conftest import BACKENDS
from .runs import NOW, finished, sixty_runs

ROOT = Path(__file__).resolve().parents[2]


def _url(backend: str, section: dict[str, Any]) -> str:
    if backend == "sqlite":
        return f"sqlite:///{section['database_path']}"
    return section["dsn"]


def _copy(tmp_path: Path, source: str, target: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "app-config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"sqlite": {"database_path": str(tmp_path / "app.db")}},
                "scheduler": {"enabled": False},
                "plugins": {"dirs": [str(tmp_path)]},
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DATABASE_URL"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "app",
            "bridge",
            "copy-history",
            "--from",
            source,
            "--to",
            target,
            "--batch-size",
            "25",
        ],
        cwd=ROOT,
        env={**env, "BRIDGE_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [("sqlite", "postgresql"), ("mysql", "sqlite")],
)
def test_copy_history_between_backends(tmp_path, source_kind, target_kind):
    with contextlib.ExitStack() as stack:
        (tmp_path / "src").mkdir()
        (tmp_path / "dst").mkdir()
        src_section = stack.enter_context(BACKENDS[source_kind](tmp_path / "src"))
        dst_section = stack.enter_context(BACKENDS[target_kind](tmp_path / "dst"))
        source = open_store(
            from_dict({"storage": {"type": source_kind, source_kind: src_section}}),
            lambda *a: None,
        )
        stack.callback(source.close)
        runs = sixty_runs()
        for run in runs:  # failures of one error group, rolled up into its hours
            if run.status is not Status.COMPLETED:
                run.error_group = "0123456789abcdef"
        assert source.insert_many(runs) == 60
        # As tracking writes a run that succeeded at once: no attempt row of its own.
        tracked = finished("tracked", NOW)
        tracked.attempt_records[0].start_time += timedelta(microseconds=40)
        source.update(tracked)
        runs.append(tracked)
        assert rollup(source, NOW + timedelta(days=2)) > 0
        expected = source.table_counts()
        assert all(expected.values()), expected

        source_url, target_url = _url(source_kind, src_section), _url(target_kind, dst_section)
        first = _copy(tmp_path, source_url, target_url)
        assert first.returncode == 0, first.stderr
        assert "Copied 61 executions" in first.stdout
        for table, count in expected.items():
            assert f"{table:<26}{count:>12}{count:>12}" in first.stdout

        target = open_store(
            from_dict({"storage": {"type": target_kind, target_kind: dst_section}}),
            lambda *a: None,
        )
        stack.callback(target.close)
        assert target.table_counts() == expected
        if target_kind == "postgresql":  # the planner has statistics from the start
            with psycopg.connect(dst_section["dsn"], autocommit=True) as conn:
                analyzed = conn.execute(
                    "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'executions' "
                    "AND schemaname = current_schema()"
                ).fetchone()
            assert analyzed is not None and analyzed[0] is not None
        for run in (runs[0], runs[-2], tracked):
            copied, original = target.get(run.id), source.get(run.id)
            assert copied == original
            assert len(copied.attempt_records) == len(original.attempt_records) >= 1

        again = _copy(tmp_path, source_url, target_url)
        assert again.returncode == 0, again.stderr
        assert target.table_counts() == expected
        with target.snapshot() as reader:  # the error group is known on the target
            assert {h.fingerprint for h in reader.error_hours(NOW - timedelta(days=10), NOW)} == {
                "0123456789abcdef"
            }


def test_copy_history_fills_only_an_empty_target_and_reads_only_an_existing_file(tmp_path):
    """Rollups are copied whole: into a database with runs of its own they would replace
    its rollups of the same hours. And a --from file that is not there is a mistake, not
    an empty history to copy."""
    mine, theirs = tmp_path / "mine.db", tmp_path / "theirs.db"
    for path, prefix in ((mine, "m"), (theirs, "t")):
        store = open_store(
            from_dict({"storage": {"sqlite": {"database_path": str(path)}}}), lambda *a: None
        )
        store.insert_many([finished(f"{prefix}{i}", NOW - timedelta(hours=i)) for i in range(3)])
        rollup(store, NOW + timedelta(days=1))
        store.close()
    refused = _copy(tmp_path, f"sqlite:///{theirs}", f"sqlite:///{mine}")
    assert refused.returncode == 1 and "already holds runs of its own" in refused.stderr
    missing = tmp_path / "typo.db"
    result = _copy(tmp_path, f"sqlite:///{missing}", f"sqlite:///{tmp_path / 'new.db'}")
    assert result.returncode == 2 and "no database file" in result.stderr
    assert not missing.exists()


def test_copy_history_refuses_a_bad_url(tmp_path):
    result = _copy(tmp_path, "ftp://nowhere/x", f"sqlite:///{tmp_path / 'x.db'}")
    assert result.returncode == 2
    assert "--from" in result.stderr and "expected postgresql://" in result.stderr
