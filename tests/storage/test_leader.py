"""The scheduler's leadership through the database's lock, as two bridges on one
server database meet it: when the database ends the leader's lock session (killed,
or a network cut), one process leads afterwards, never two: the old leader checks its
lock every takeover_interval and stops its jobs when it lost it."""

from __future__ import annotations

import time

import pytest

from bridge import start_services

from .databases import mysql_admin


def _kill_session(app) -> None:
    lock = app.extensions["bridge.scheduler"]._leader
    if hasattr(lock, "backend_pid"):
        import psycopg

        from .databases import POSTGRESQL_URL

        with psycopg.connect(POSTGRESQL_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (lock.backend_pid,))
    else:
        admin = mysql_admin()
        try:
            admin.cursor().execute(f"KILL CONNECTION {int(lock.connection_id)}")
        finally:
            admin.close()


def _leaders(apps) -> list[bool]:
    return [a.extensions["bridge.scheduler"].is_leader for a in apps]


def _two_bridges(make_app):
    """Two bridges on one database, the first leading."""
    apps = []
    for _ in range(2):
        app = make_app(scheduler={"enabled": True, "takeover_interval": "0.2s"})
        start_services(app)
        apps.append(app)
    assert _leaders(apps) == [True, False]
    return tuple(apps)


def _settles_on_one_leader(apps) -> None:
    """Asked over a few takeover intervals: one leader, steadily, within 10 s."""
    deadline = time.monotonic() + 10
    steady = 0
    while steady < 10:
        assert time.monotonic() < deadline, _leaders(apps)
        time.sleep(0.1)
        steady = steady + 1 if sum(_leaders(apps)) == 1 else 0
    assert sum(_leaders(apps)) == 1


@pytest.mark.parametrize("make_app", ["postgresql", "mysql"], indirect=True)
def test_one_leader_after_the_database_ends_the_leaders_session(make_app):
    apps = _two_bridges(make_app)
    first = apps[0]

    _kill_session(first)
    # The lock is free: someone takes it (the second, or the first again), and the
    # first, if it did not, stops leading. Asked over a few intervals: one leader.
    _settles_on_one_leader(apps)


def test_one_leader_after_the_sqlite_lock_file_is_deleted(make_app):
    """The scheduler's lock on SQLite is a file: deleted while held (a clean-up script,
    a mistaken rm), a standby locks the new file its open() makes, and the old leader
    must notice its lock is on a file nobody else sees."""
    apps = _two_bridges(make_app)
    first = apps[0]

    first.extensions["bridge.scheduler"]._leader.path.unlink()
    _settles_on_one_leader(apps)
