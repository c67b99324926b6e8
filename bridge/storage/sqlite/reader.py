"""The Reader and Writer of the store protocol over one SQLite connection: a snapshot's
read transaction, or a write transaction of the group-commit writer."""

from __future__ import annotations

from bridge.storage.session import Session, WriteSession
from bridge.storage.sqlite import records, rollups


class SQLiteReader(Session):
    records_sql = records
    rollups_sql = rollups


class SQLiteWriter(WriteSession, SQLiteReader):
    pass
