"""A fresh, empty database of each backend for one test, and gone after it.

Server backends run when their server answers. When it does not, their tests are
skipped with a one-line reason, except where CI=true: there a server that does not
answer fails the run, so that CI never passes by skipping them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

POSTGRESQL_URL = os.environ.get(
    "BRIDGE_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
POSTGRESQL_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
MYSQL_URL = os.environ.get("BRIDGE_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
MYSQL_START = "start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"

# Marks an app-level test (one using make_app, app or client) to run on each backend,
# each time on a fresh database (see make_app in tests/conftest.py).
ON_EVERY_BACKEND = pytest.mark.parametrize(
    "make_app", ["sqlite", "postgresql", "mysql"], indirect=True
)


def server_missing(reason: str) -> None:
    """Skip the test, or fail it under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: server backends must be tested)", pytrace=False)
    pytest.skip(reason)


@functools.cache
def postgresql_down() -> str:
    """Why the test server cannot be used ("" when it answers); asked once per run."""
    import psycopg

    try:
        with psycopg.connect(POSTGRESQL_URL, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        why = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        return f"PostgreSQL at {POSTGRESQL_URL} does not answer ({why}); start: {POSTGRESQL_START}"
    return ""


@contextlib.contextmanager
def postgresql_schema(tmp_path: Path | None = None) -> Iterator[dict[str, Any]]:
    """The storage.postgresql section of a store on a new schema of the test database
    (the schema is the first of the search_path); the schema is dropped afterwards."""
    reason = postgresql_down()
    if reason:
        server_missing(reason)
    import psycopg

    schema = f"bridge_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRESQL_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in POSTGRESQL_URL else "?"
    try:
        yield {
            "dsn": f"{POSTGRESQL_URL}{sep}options={quote(f'-c search_path={schema}')}",
            "max_connections": 4,
            "connect_timeout": "3s",
        }
    finally:
        with psycopg.connect(POSTGRESQL_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def mysql_admin(database: str | None = None) -> Any:
    import pymysql

    url = urlsplit(MYSQL_URL)
    return pymysql.connect(
        host=url.hostname or "127.0.0.1",
        port=url.port or 3306,
        user=unquote(url.username or "root"),
        password=unquote(url.password or ""),
        database=database,
        connect_timeout=3,
        autocommit=True,
    )


@functools.cache
def mysql_down() -> str:
    """Why the test server cannot be used ("" when it answers); asked once per run."""
    import pymysql

    try:
        mysql_admin().close()
    except pymysql.Error as exc:
        why = " ".join(str(exc).split())[:160]
        return f"MySQL at {MYSQL_URL} does not answer ({why}); start: {MYSQL_START}"
    return ""


@contextlib.contextmanager
def mysql_database(tmp_path: Path | None = None) -> Iterator[dict[str, Any]]:
    """The storage.mysql section of a store on a new database of the test server; the
    database is dropped afterwards."""
    reason = mysql_down()
    if reason:
        server_missing(reason)
    database = f"bridge_test_{uuid.uuid4().hex[:12]}"
    admin = mysql_admin()
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {database} CHARACTER SET utf8mb4")
        url = urlsplit(MYSQL_URL)
        yield {
            "dsn": url._replace(path=f"/{database}").geturl(),
            "max_connections": 4,
            "connect_timeout": "3s",
        }
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {database}")
        admin.close()


@contextlib.contextmanager
def sqlite_file(tmp_path: Path) -> Iterator[dict[str, Any]]:
    yield {"database_path": str(tmp_path / "store.db")}
