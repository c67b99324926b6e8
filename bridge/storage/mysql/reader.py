"""The Reader and Writer of the store protocol over one MySQL cursor: a snapshot's
REPEATABLE READ transaction, or a write transaction."""

from __future__ import annotations

from bridge.storage.mysql import records, rollups
from bridge.storage.session import Session, WriteSession


class MySQLReader(Session):
    records_sql = records
    rollups_sql = rollups


class MySQLWriter(WriteSession, MySQLReader):
    pass
