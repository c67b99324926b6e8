"""The Reader and Writer of the store protocol over one PostgreSQL connection: a
snapshot's REPEATABLE READ transaction, or a write transaction."""

from __future__ import annotations

from bridge.storage.postgresql import records, rollups
from bridge.storage.session import Session, WriteSession


class PostgreSQLReader(Session):
    records_sql = records
    rollups_sql = rollups


class PostgreSQLWriter(WriteSession, PostgreSQLReader):
    pass
