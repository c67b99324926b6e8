"""`flask bridge stats | list | show <id>`: the history, as the executions API shows it."""

from __future__ import annotations

import sys
from dataclasses import asdict
from datetime import UTC, datetime

import click
from flask.cli import AppGroup

from bridge import clock
from bridge.cli.output import JSON_OPTION, PROBLEM, emit_json, ms, store, table
from bridge.insight.errors import require_group
from bridge.model import ExecutionFilter, Status
from bridge.storage.stats import list_page, window_stats
from bridge.tracking.classify import ERROR_TYPE_RULE, is_error_type

TIME = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"])


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None else None


def _error_type(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """As the list's error_type: a value no run can have is a usage error, not an empty
    list."""
    if value is not None and not is_error_type(value):
        raise click.BadParameter(f"{value!r}: expected {ERROR_TYPE_RULE}")
    return value


def filter_options(fn):  # type: ignore[no-untyped-def]
    """The list's filters, shared by `list` and `export`."""
    for option in reversed(
        (
            click.option("--plugin"),
            click.option("--status", type=click.Choice([s.value for s in Status])),
            click.option(
                "--error-type",
                callback=_error_type,
                help=f"{ERROR_TYPE_RULE[0].upper()}{ERROR_TYPE_RULE[1:]}.",
            ),
            click.option("--error-group", help="A fingerprint from `flask bridge errors`."),
            click.option("--trace-id"),
            click.option("--replay-of", help="An execution id: only its replays."),
            click.option("--since", type=TIME, help="UTC, e.g. 2026-03-01 or 2026-03-01T12:00:00"),
            click.option("--until", type=TIME),
            click.option("--tag", multiple=True, help="key:value, repeatable."),
        )
    ):
        fn = option(fn)
    return fn


def list_filter(options: dict) -> ExecutionFilter:
    tags = []
    for tag in options.get("tag") or ():
        key, sep, value = tag.replace("=", ":", 1).partition(":")
        if not sep or not key.strip():
            raise click.BadParameter(f"{tag!r}: use key:value", param_hint="--tag")
        tags.append((key.strip(), value.strip()))
    status = options.get("status")
    return ExecutionFilter(
        plugin=options.get("plugin"),
        status=Status(status) if status else None,
        error_type=options.get("error_type"),
        error_group=options.get("error_group"),
        trace_id=options.get("trace_id"),
        replay_of=options.get("replay_of"),
        since=utc(options.get("since")),
        until=utc(options.get("until")),
        tags=tuple(tags),
    )


def register(group: AppGroup) -> None:
    @group.command("stats")
    @click.option("--days", type=click.IntRange(1, 3650), default=7, show_default=True)
    @click.option("--plugin")
    @JSON_OPTION
    def stats(days: int, plugin: str | None, as_json: bool) -> None:
        """Totals, success rate and durations of the last DAYS days, per day."""
        result = window_stats(store(), days, plugin, clock.utcnow())
        if as_json:
            emit_json(result)
            return
        click.echo(
            f"{result['total_executions']} runs, {result['success_rate']}% successful, "
            f"p50 {ms(result['p50_duration'])}, p95 {ms(result['p95_duration'])} "
            f"({result['window_start']} to {result['window_end']})"
        )
        table(
            [
                (d["date"], d["total_executions"], d["failed_executions"], d["success_rate"])
                for d in result["daily_stats"]
            ],
            ("date", "runs", "failed", "success %"),
        )

    @group.command("list")
    @filter_options
    @click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
    @JSON_OPTION
    def list_(limit: int, as_json: bool, **options: object) -> None:
        """The latest runs, newest first, filtered as the list API does."""
        flt = list_filter(options)
        if flt.error_group:
            require_group(store(), flt.error_group)
        page = list_page(store(), flt, limit, 0, None)
        if as_json:
            emit_json({"executions": [asdict(r) for r in page.records], "total": page.total})
            return
        table(
            [
                (r.id, r.plugin_name, r.status, r.start_time, ms(r.duration), r.error_type)
                for r in page.records
            ],
            ("id", "plugin", "status", "start", "duration", "error type"),
        )
        click.echo(f"{len(page.records)} of {page.total}{'+' if page.total_is_estimate else ''}")

    @group.command("show")
    @click.argument("execution_id")
    @JSON_OPTION
    def show(execution_id: str, as_json: bool) -> None:
        """One run with its attempts."""
        record = store().get(execution_id)
        if record is None:
            click.echo(f"Execution '{execution_id}' not found", err=True)
            sys.exit(PROBLEM)
        if as_json:
            emit_json(asdict(record))
            return
        fields = asdict(record)
        attempts = fields.pop("attempt_records")
        fields.pop("delivery_answer")
        table([(k, v) for k, v in fields.items()], ("field", "value"))
        click.echo()
        table(
            [(a["number"], a["status"], ms(a["duration"]), a["error_type"]) for a in attempts],
            ("attempt", "status", "duration", "error type"),
        )
