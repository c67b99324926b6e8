"""What the two server backends (PostgreSQL, MySQL/MariaDB) do alike, written once: run
records group-committed on a writer connection of each process's own, and the
idempotency claims' single statements.

A backend's store names its SQL modules (`records_sql`, `deliveries_sql`), makes its
group-commit writer (`_make_writer`) and runs one statement on a pooled connection
(`_write`); each call here goes to the function of the same name in those modules.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any, ClassVar

from bridge.errors import RecordRefused, StorageError
from bridge.model import ExecutionRecord
from bridge.storage.group_commit import GroupCommitWriter, WriteFailed, WriteRefused
from bridge.storage.tickets import Ticket


class ServerStore:
    records_sql: ClassVar[ModuleType]
    deliveries_sql: ClassVar[ModuleType]
    _on_error: Callable[[str, BaseException], None]  # a failed write nobody waited for

    _group: tuple[GroupCommitWriter | None, int] = (None, 0)
    _group_lock = threading.Lock()

    # -- what each backend provides ----------------------------------------
    def _make_writer(
        self, report: Callable[[str, BaseException], None]
    ) -> GroupCommitWriter:  # pragma: no cover - each backend's own
        raise NotImplementedError

    def _write(self, fn: Callable[[Any], Any]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _describe(self, exc: BaseException) -> str:  # pragma: no cover
        raise NotImplementedError

    # -- the group-commit writer -------------------------------------------
    def _writer(self) -> GroupCommitWriter:
        """This process's writer (a forked child makes its own)."""
        writer, pid = self._group
        if writer is None or pid != os.getpid():
            with self._group_lock:
                writer, pid = self._group
                if writer is None or pid != os.getpid():
                    writer = self._make_writer(self._report)
                    self._group = (writer, os.getpid())
        return writer

    def _report(self, action: str, exc: BaseException) -> None:
        self._on_error(action, StorageError(self._describe(exc)))

    def _submit(self, op: Callable[[Any], Any], wait: bool, key: str, linger: bool = False) -> None:
        """A run's write, group-committed with the other requests' (wait: until it is
        committed and flushed; linger: see GroupCommitWriter)."""
        try:
            self._writer().submit(op, wait=wait, key=key, linger=linger)
        except WriteRefused as exc:
            raise RecordRefused(
                f"the database refused the record: {self._describe(exc.__cause__ or exc)}"
            ) from None
        except WriteFailed as exc:
            raise StorageError(
                f"database write failed: {self._describe(exc.__cause__ or exc)}"
            ) from None

    def _close_writer(self) -> None:
        """Commit what is queued and close the writer, if this process made it (a
        forked child never closes its parent's connection)."""
        writer, pid = self._group
        if writer is not None and pid == os.getpid():
            writer.close()

    # -- runs --------------------------------------------------------------
    def expect(self, execution_id: str) -> None:
        self._writer().expect(execution_id)

    def insert(self, record: ExecutionRecord, *, wait: bool = False) -> None:
        open_run = not record.status.is_final  # its final row may yet supersede it
        self._submit(RunWrite(self, record, upsert=False), wait, record.id, linger=open_run)

    def update(self, record: ExecutionRecord, *, wait: bool = True) -> None:
        self._submit(RunWrite(self, record, upsert=True), wait, record.id)

    # -- idempotency -------------------------------------------------------
    def take_over_delivery(
        self,
        plugin: str,
        key: str,
        holder: str,
        execution_id: str,
        now: datetime,
        answer: str = "",
    ) -> bool:
        deliveries = self.deliveries_sql
        return self._write(
            lambda c: deliveries.take_over(c, plugin, key, holder, execution_id, now, answer)
        )

    def release_delivery(self, plugin: str, key: str, execution_id: str) -> None:
        self._write(lambda c: self.deliveries_sql.release(c, plugin, key, execution_id))

    def mark_replayed(self, execution_id: str, now: datetime) -> None:
        self._write(lambda c: self.deliveries_sql.mark_replayed(c, execution_id, now))

    def purge_deliveries(self, before: datetime) -> int:
        return self._write(lambda c: self.deliveries_sql.purge(c, before))


class RunWrite:
    """A run's row written whole (`upsert`: its lifecycle columns set again if the row
    is there), with its attempts and tags, and the end of its delivery's claim in the
    same transaction. Its values are worked out when it runs: a `running` row that a
    later write of the same run supersedes in the batch costs nothing (the record is
    not changed after it is handed over: the tracker makes each anew). A writer may
    also write several at once (runs_together)."""

    __slots__ = ("record", "store", "upsert")

    def __init__(self, store: ServerStore, record: ExecutionRecord, upsert: bool) -> None:
        self.store = store
        self.record = record
        self.upsert = upsert

    @property
    def finishes_claim(self) -> bool:
        return self.upsert and bool(self.record.idempotency_key) and self.record.status.is_final

    def __call__(self, conn: Any) -> None:
        sql, record = self.store.records_sql, self.record
        rows, tags = [sql.values(record)], sql.tag_values(record)
        if self.upsert:
            sql.write(conn, sql.UPSERT, rows, sql.attempt_values(record), tags)
        else:
            sql.write(conn, sql.INSERT, rows, tags=tags)
        self.finish_claim(conn)

    def finish_claim(self, conn: Any) -> None:
        if self.finishes_claim:  # in the same transaction: claim and record agree
            self.store.deliveries_sql.finish(conn, self.record)


def runs_together(batch: list[Ticket]) -> tuple[list[RunWrite], list[Ticket]]:
    """A batch's run writes, for a writer to write together, and its other tickets. None
    when a run is written twice in it: then every op runs alone, in order."""
    runs = [t.op for t in batch if isinstance(t.op, RunWrite)]
    if len({w.record.id for w in runs}) < len(runs):
        return [], batch
    return runs, [t for t in batch if not isinstance(t.op, RunWrite)]
