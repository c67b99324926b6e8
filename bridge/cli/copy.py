"""`flask --app app bridge copy-history --from URL --to URL`: the run history (runs,
their attempts, hourly and daily rollups, the error groups' hours, and the rollup
watermarks) copied from one store to another, of any backend, in batches.

The target is empty, or one this command was filling from the same source (its
`copied_from` state says which): rollups are copied whole, replacing the target's of
the same plugin and hour, so a target with a history of its own would lose it.

Run it again after a stop and it goes on without duplicating a row: a batch goes in
whole with `insert_many`, and a batch the target already holds some of is written run
by run with the store's upsert. It ends by vacuuming and analyzing the target (the
store's own compaction) and comparing the rows of each table.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from bridge.config import from_dict, redact_url
from bridge.config.environment import database_url
from bridge.errors import ConfigError, StorageError
from bridge.model import ExecutionFilter, ExecutionRecord
from bridge.storage import open_store
from bridge.storage.base import DAILY_WATERMARK, ROLLUP_WATERMARK, ExecutionStore
from bridge.storage.rows import HISTORY_TABLES

ROLLUP_WINDOW = timedelta(days=366)
COPIED_FROM = "copied_from"  # the target's state: the source it is being filled from
# At the end, the target's tables are vacuumed and analyzed within this budget: without
# statistics PostgreSQL's planner misjudges a freshly loaded million rows (a list call
# took ~400 ms until autovacuum came by).
COMPACT_BUDGET_S = 300.0


def open_url(url: str, option: str, must_exist: bool = False) -> ExecutionStore:
    """The store a database URL names (as BRIDGE_DATABASE_URL takes it), migrated. With
    `must_exist`, an SQLite file that is not there is an error, not a new database."""
    try:
        raw = database_url({"scheduler": {"enabled": False}}, {"BRIDGE_DATABASE_URL": url})
        config = from_dict(raw, base_dir=os.getcwd())
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None
    path = Path(config.storage.sqlite.database_path)
    if must_exist and config.storage.type == "sqlite" and not path.is_file():
        raise click.BadParameter(f"no database file at {path}", param_hint=option)
    try:
        return open_store(config, lambda action, exc: None)
    except StorageError as exc:
        raise click.ClickException(f"{option}: {exc}") from None


def copy_runs(source: ExecutionStore, target: ExecutionStore, batch: int) -> int:
    """Every run with its attempts, newest first, in batches; how many were written."""
    everything = ExecutionFilter()
    with source.snapshot() as reader:
        total = reader.count(everything)
    written, cursor = 0, None
    with click.progressbar(length=total, label="executions", file=sys.stderr) as bar:
        while True:
            with source.snapshot() as reader:
                page, cursor = reader.page(everything, batch, 0, cursor)
            records = [source.get(r.id) or r for r in page]
            _put(target, records)
            written += len(records)
            bar.update(len(records))
            if cursor is None or not page:
                return written


def _put(target: ExecutionStore, records: list[ExecutionRecord]) -> None:
    if not records:
        return
    try:
        target.insert_many(records)
    except StorageError:  # some are there already (a run copied before): one by one
        for record in records:
            target.update(record, wait=True)


def claim_target(source: ExecutionStore, target: ExecutionStore, source_url: str) -> None:
    """Mark an empty target as being filled from `source`; refuse one that holds runs
    of its own (or from another source)."""
    name = redact_url(source_url)
    with target.snapshot() as reader:
        holds = reader.count(ExecutionFilter(), cap=1) > 0
        copied_from = reader.state(COPIED_FROM)
    if holds and copied_from != name:
        raise click.ClickException(
            "the target already holds runs"
            + (f" copied from {copied_from}" if copied_from else " of its own")
            + ": copy-history fills an empty database (or goes on with a copy it began "
            "from the same --from); their rollups would replace the target's"
        )
    if copied_from != name:
        target.write(lambda w: w.set_state(COPIED_FROM, name))


def copy_rollups(source: ExecutionStore, target: ExecutionStore) -> int:
    """Hourly and daily rollups and the error groups' hours (replacing the target's of
    the same plugin and start), then the watermarks, so the target does not roll up
    again what it was given."""
    copied = 0
    end = datetime.now(UTC) + timedelta(days=2)
    for grain in ("hour", "day"):
        start = datetime(1970, 1, 1, tzinfo=UTC)
        while start < end:
            stop = min(start + ROLLUP_WINDOW, end)
            with source.snapshot() as reader:
                items = reader.rollups(grain, start, stop)  # type: ignore[arg-type]
            if items:
                target.write(lambda w, g=grain, i=items: w.put_rollups(g, i))
                copied += len(items)
            start = stop
    start = datetime(1970, 1, 1, tzinfo=UTC)
    while start < end:  # the error groups' hours, kept as long as the rollups
        stop = min(start + ROLLUP_WINDOW, end)
        with source.snapshot() as reader:
            hours = reader.error_hours(start, stop)
        if hours:
            target.write(lambda w, h=hours: w.put_error_hours(h))
            copied += len(hours)
        start = stop
    with source.snapshot() as reader:
        marks = {key: reader.state(key) for key in (ROLLUP_WATERMARK, DAILY_WATERMARK)}

    def advance(w: Any) -> None:
        for key, value in marks.items():
            if value is not None and (w.state(key) or 0) < value:
                w.set_state(key, value)

    target.write(advance)
    return copied


@click.command("copy-history")
@click.option("--from", "source_url", required=True, help="Database URL to copy from.")
@click.option("--to", "target_url", required=True, help="Database URL to copy into.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
def copy_history(source_url: str, target_url: str, batch_size: int) -> None:
    """Copy runs, attempts and rollups between databases (sqlite:///path,
    postgresql://..., mysql://...). Safe to run again: no row is duplicated."""
    if source_url == target_url:
        raise click.BadParameter("--from and --to name the same database", param_hint="--to")
    source = open_url(source_url, "--from", must_exist=True)
    try:
        target = open_url(target_url, "--to")
        try:
            claim_target(source, target, source_url)
            runs = copy_runs(source, target, batch_size)
            rollups = copy_rollups(source, target)
            click.echo("Vacuuming and analyzing the target...", err=True)
            target.compact(COMPACT_BUDGET_S)
            before, after = source.table_counts(), target.table_counts()
        except StorageError as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            target.close()
    finally:
        source.close()
    click.echo(f"Copied {runs} executions and {rollups} rollups.")
    click.echo(f"{'table':<26}{'from':>12}{'to':>12}")
    short = []
    for table in HISTORY_TABLES:
        mark = "" if after[table] >= before[table] else "  MISSING"
        click.echo(f"{table:<26}{before[table]:>12}{after[table]:>12}{mark}")
        if mark:
            short.append(table)
    if short:
        raise click.ClickException(f"the target has fewer rows in: {', '.join(short)}")
    click.echo("Every table of the target holds at least the source's rows.")
