"""`flask bridge cleanup`: delete finished runs past the retention, as the scheduler's
job does (rolled up first, so stats and error groups outlive them)."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from bridge import clock
from bridge.cli.output import JSON_OPTION, emit_json, store
from bridge.model import ExecutionFilter, Status
from bridge.storage.cleanup import cleanup


def register(group: AppGroup) -> None:
    @group.command("cleanup")
    @click.option(
        "--older-than-days",
        type=click.IntRange(0, 3650),
        help="Default: the configured retention_days.",
    )
    @click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
    @JSON_OPTION
    def cleanup_(older_than_days: int | None, dry_run: bool, as_json: bool) -> None:
        """Delete finished runs that started more than N days ago."""
        days = current_app.extensions["bridge.config"].retention_days
        days = days if older_than_days is None else older_than_days
        now = clock.utcnow()
        cutoff = now - timedelta(days=days)
        source = store()
        if dry_run:
            with source.snapshot() as reader:
                older = reader.count(ExecutionFilter(until=cutoff))
                still_open = sum(
                    reader.count(ExecutionFilter(until=cutoff, status=s))
                    for s in (Status.RUNNING, Status.PENDING)
                )
            result = {"would_delete": older - still_open, "older_than_days": days, "cutoff": cutoff}
            message = f"Would delete {older - still_open} executions older than {days} days"
        else:
            done = cleanup(source, days, now)
            result = {"deleted": done.deleted, "older_than_days": days, "cutoff": done.cutoff}
            message = f"Deleted {done.deleted} executions older than {days} days"
        if as_json:
            emit_json(result)
        else:
            click.echo(message)
