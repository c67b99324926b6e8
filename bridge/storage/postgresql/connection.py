"""PostgreSQL connections: the conninfo built from `storage.postgresql`, the pool every
store operation borrows from, the write transaction, and errors told in one line
without a password.

Every connection gets the same settings from its conninfo (TimeZone UTC, no JIT, the
application name, the connect timeout and sslmode), so the pool, the migration
connection and the leader's connection cannot differ.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.string import StrDumperUnknown
from psycopg_pool import ConnectionPool

from bridge.config import PostgreSQLConfig, redact_url, resolve_env

APPLICATION_NAME = "webhook-bridge"
# The bridge's queries read a page or an hour of runs: compiling one with LLVM takes
# 30-300 ms (EXPLAIN ANALYZE on a million runs whose estimate passed jit_above_cost),
# many times what running it takes. A `-c jit=on` in the DSN's own options still wins.
NO_JIT = "-c jit=off"
# The leader's session is ended by the server within about 25 s of its host vanishing
# (no FIN, as on a power loss), so that the lock is freed for a standby.
KEEPALIVE = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"


def conninfo(pg: PostgreSQLConfig, environ: Mapping[str, str] = os.environ) -> str:
    """The libpq connection string: `dsn` if set (its own sslmode, connect_timeout and
    options win), else host, port, user, password and database."""
    where = "storage.postgresql"
    if pg.dsn:
        dsn = resolve_env(pg.dsn, f"{where}.dsn", environ)
        params: dict[str, Any] = {}
    else:
        dsn = ""
        params = {"host": pg.host, "port": pg.port, "user": pg.user, "dbname": pg.database}
        if pg.password:
            params["password"] = resolve_env(pg.password, f"{where}.password", environ)
    given = {**conninfo_to_dict(dsn), **params}
    options = " ".join(o for o in (NO_JIT, given.get("options"), "-c TimeZone=UTC") if o)
    params["options"] = options
    for key, value in (
        ("sslmode", pg.sslmode),
        ("connect_timeout", max(1, round(float(pg.connect_timeout)))),
        ("application_name", APPLICATION_NAME),
    ):
        if key not in given:
            params[key] = value
    return make_conninfo(dsn, **params)


def password_of(info: str) -> str:
    """The password in a conninfo, to keep out of every message ("" if none)."""
    try:
        return str(conninfo_to_dict(info).get("password") or "")
    except psycopg.Error:
        return ""


def describe(exc: BaseException, password: str = "") -> str:
    """An error as one line that shows no password: libpq's messages span lines, and
    one about a malformed connection string may quote it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if password:
        text = text.replace(password, "***")
    return redact_url(text)


def connect(
    info: str, *, keepalive: bool = False, synchronous_commit: str = ""
) -> psycopg.Connection[Any]:
    """A connection outside the pool (migrations, the leader's lock, the run records'
    writer), autocommit. A `synchronous_commit` in the DSN's own options still wins."""
    if keepalive or synchronous_commit:
        options = conninfo_to_dict(info).get("options") or ""
        if synchronous_commit:
            options = f"-c synchronous_commit={synchronous_commit} {options}"
        if keepalive:
            options = f"{options} {KEEPALIVE}"
        info = make_conninfo(info, options=options.strip())
    return psycopg.connect(info, autocommit=True)


class _NulFreeText(StrDumperUnknown):
    """PostgreSQL's text cannot hold NUL, and a parameter holding one failed its query
    (503 for `?plugin=%00`, an id with %00). Sent with U+FFFD in its place, as stored
    text has it (records.text), a lookup matches what was stored, or nothing."""

    def dump(self, obj: str) -> Buffer:
        return super().dump(obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.adapters.register_dumper(str, _NulFreeText)


def open_pool(info: str, size: int, timeout: float) -> ConnectionPool:
    """At most `size` connections in this process, autocommit (a transaction is begun
    where one is needed); opened at once so that a server that does not answer, or
    refuses the login, stops start-up with libpq's reason."""
    pool = ConnectionPool(
        info,
        min_size=1,
        max_size=max(1, size),
        kwargs={"autocommit": True},
        configure=_configure,
        open=False,
        name="bridge-storage",
        timeout=timeout,
    )
    try:
        pool.open(wait=True, timeout=timeout)
    except BaseException:
        pool.close()
        raise
    return pool


@contextlib.contextmanager
def transaction(conn: psycopg.Connection[Any], durable: bool = True) -> Iterator[None]:
    """One write transaction. Not `durable`: committed and visible at once, but without
    waiting for the WAL flush (the caller does not wait for it: PostgreSQL's own group
    commit makes it durable a moment later)."""
    with conn.transaction():
        if not durable:
            conn.execute("SET LOCAL synchronous_commit TO OFF")
        yield
