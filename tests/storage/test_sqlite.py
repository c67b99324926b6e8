"""What only the SQLite backend promises: its connection settings, indexes that serve
the list's filters, and its locks as files beside the database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bridge.storage.sqlite import SQLiteStore
from bridge.storage.sqlite.maintenance import SQLiteInfo

from .runs import NOW, finished


@pytest.fixture
def sqlite_store(make_store) -> SQLiteStore:
    return make_store("sqlite")


def test_every_connection_is_in_wal_with_foreign_keys(sqlite_store):
    def settings(conn):
        return [
            conn.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout")
        ]

    assert sqlite_store._read(settings) == ["wal", 1, 1, 5000]  # synchronous 1: NORMAL


@pytest.mark.parametrize(
    "where",
    [
        "plugin_name = 'a'",
        "status = 'failed'",
        "error_type = 'timeout'",
        "plugin_name = 'a' AND status = 'failed'",
        "start_time >= 0",
    ],
)
def test_indexes_serve_list_filters(sqlite_store, where):
    plan = " ".join(
        sqlite_store.explain(
            f"SELECT id FROM executions WHERE {where} ORDER BY start_time DESC LIMIT 50"
        )
    )
    assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (where, plan)


def test_hourly_counts_read_the_covering_index(sqlite_store):
    plan = " ".join(
        sqlite_store.explain(
            "SELECT coalesce(sum(failed), 0) FROM execution_metrics "
            "INDEXED BY ix_execution_metrics_counts WHERE hour_start >= 0 AND hour_start < 9"
        )
    )
    assert "USING COVERING INDEX ix_execution_metrics_counts" in plan


def test_info_reports_the_file(sqlite_store):
    sqlite_store.insert_many([finished("r", NOW)])
    info = sqlite_store.info()
    assert isinstance(info.backend, SQLiteInfo) and info.backend.journal_mode == "wal"
    assert info.backend.page_count * info.backend.page_size <= info.size_bytes
    assert info.location == str(Path(info.location).resolve()) and info.location.endswith(
        "store.db"
    )


def test_the_leader_lock_is_a_file_beside_the_database_with_the_leaders_pid(sqlite_store, tmp_path):
    lock = sqlite_store.leader_lock("scheduler")
    assert lock.try_acquire()
    assert Path(f"{sqlite_store.path}.scheduler.lock").read_text() == str(os.getpid())
    lock.release()
    elsewhere = tmp_path / "elsewhere.lock"  # scheduler.lock_path
    lock = sqlite_store.leader_lock("scheduler", str(elsewhere))
    assert lock.try_acquire() and elsewhere.read_text() == str(os.getpid())
    lock.release()


def test_writers_take_turns_through_a_file_beside_the_database(sqlite_store):
    sqlite_store.update(finished("r", NOW))
    assert Path(f"{sqlite_store.path}.write.lock").exists()


def test_a_deleted_file_is_written_again_by_a_process_that_never_wrote(make_store):
    """`rm executions.db` while two processes serve, and the first to write afterwards is
    one that had written nothing yet: it writes the deleted database again (it holds it
    open from the start) instead of starting an empty one over the other's runs."""
    first = make_store("sqlite")
    second = make_store("sqlite")  # as a second gunicorn worker would, idle so far
    for i in range(5):
        first.update(finished(f"before-{i}", NOW))
    first.path.unlink()
    second.update(finished("after-second", NOW))
    first.update(finished("after-first", NOW))
    ids = [*(f"before-{i}" for i in range(5)), "after-second", "after-first"]
    for store in (first, second):
        assert [i for i in ids if store.get(i) is None] == []
    assert "written again from the open connection" in second.file_event
