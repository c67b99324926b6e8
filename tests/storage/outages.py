"""A server database that goes away for one bridge only, without stopping the shared
test servers that other tests (and other people) use at the same time.

PostgreSQL: a database of the test's own; "away" is `ALLOW_CONNECTIONS false` plus
pg_terminate_backend of its sessions, so every connection breaks and every new one is
refused, as when the server stops. MySQL: a user and database of the test's own; "away"
is `ACCOUNT LOCK` plus KILL of the user's connections (new logins are refused).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .databases import (
    MYSQL_URL,
    POSTGRESQL_URL,
    mysql_admin,
    mysql_down,
    postgresql_down,
    server_missing,
)


@dataclass
class Outage:
    """The `storage.<type>` section of a store on a fresh database, and the switch."""

    backend: str
    section: dict[str, Any]
    name: str

    def cut(self) -> None:
        if self.backend == "postgresql":
            _pg(
                f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS false",
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{self.name}'",
            )
        else:
            with contextlib.closing(mysql_admin()) as admin, admin.cursor() as cur:
                cur.execute(f"ALTER USER '{self.name}'@'%' ACCOUNT LOCK")
                cur.execute(
                    "SELECT id FROM information_schema.PROCESSLIST WHERE user = %s", (self.name,)
                )
                for (pid,) in cur.fetchall():
                    with contextlib.suppress(Exception):
                        cur.execute(f"KILL {int(pid)}")

    def restore(self) -> None:
        if self.backend == "postgresql":
            _pg(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS true")
        else:
            with contextlib.closing(mysql_admin()) as admin, admin.cursor() as cur:
                cur.execute(f"ALTER USER '{self.name}'@'%' ACCOUNT UNLOCK")

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """What an admin session reads in the test's database."""
        if self.backend == "postgresql":
            import psycopg

            url = urlsplit(POSTGRESQL_URL)._replace(path=f"/{self.name}").geturl()
            with psycopg.connect(url, autocommit=True) as conn:
                return conn.execute(sql).fetchall()
        with contextlib.closing(mysql_admin(self.name)) as admin, admin.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())


def _pg(*statements: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRESQL_URL, autocommit=True) as admin:
        for sql in statements:
            admin.execute(sql)


@contextlib.contextmanager
def outage(backend: str) -> Iterator[Outage]:
    """A fresh database (and, for MySQL, user) for one test, dropped afterwards."""
    name = f"bridge_cut_{uuid.uuid4().hex[:12]}"
    if backend == "postgresql":
        reason = postgresql_down()
        if reason:
            server_missing(reason)
        _pg(f"CREATE DATABASE {name}")
        url = urlsplit(POSTGRESQL_URL)._replace(path=f"/{name}").geturl()
        try:
            yield Outage(backend, {"dsn": url, "max_connections": 4, "connect_timeout": "2s"}, name)
        finally:
            _pg(
                f"ALTER DATABASE {name} ALLOW_CONNECTIONS true",
                f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
            )
        return
    reason = mysql_down()
    if reason:
        server_missing(reason)
    with contextlib.closing(mysql_admin()) as admin, admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY 'pw-{name}'")
        cur.execute(f"GRANT ALL ON {name}.* TO '{name}'@'%'")
        url = urlsplit(MYSQL_URL)
        where = f"{url.hostname or '127.0.0.1'}:{url.port or 3306}"
        section = {
            "dsn": f"mysql://{name}:pw-{name}@{where}/{name}",
            "max_connections": 4,
            "connect_timeout": "2s",
        }
        try:
            yield Outage(backend, section, name)
        finally:
            cur.execute(f"DROP USER IF EXISTS '{name}'@'%'")
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
