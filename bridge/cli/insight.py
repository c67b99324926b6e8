"""`flask bridge errors | analysis | export | replay <id>`: the insight endpoints'
services, called as the API calls them."""

from __future__ import annotations

import sys
from typing import IO, Any

import click
from flask import current_app
from flask.cli import AppGroup

from bridge import clock
from bridge.api.delivery import loads_json
from bridge.cli.history import filter_options, list_filter
from bridge.cli.output import JSON_OPTION, OK, PROBLEM, emit_json, ms, store, table
from bridge.errors import BridgeError
from bridge.insight.analysis import analysis
from bridge.insight.errors import error_groups, require_group
from bridge.insight.export import FIELDS, FORMATS, PAYLOADS, chunks, filename, pages
from bridge.insight.replay import replay_delivery
from bridge.model import Status
from bridge.storage.stats import list_page

DAYS = click.option("--days", type=click.IntRange(1, 3650), default=7, show_default=True)


def _names(value: str | None, choices: tuple[str, ...], hint: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in (value or "").split(",") if n.strip())
    unknown = [n for n in names if n not in choices]
    if unknown:
        raise click.BadParameter(
            f"unknown: {', '.join(unknown)} (choose from {', '.join(choices)})", param_hint=hint
        )
    return names


def register(group: AppGroup) -> None:
    @group.command("errors")
    @DAYS
    @click.option("--plugin")
    @click.option("--limit", type=click.IntRange(1, 500), default=20, show_default=True)
    @JSON_OPTION
    def errors(days: int, plugin: str | None, limit: int, as_json: bool) -> None:
        """Failures grouped by fingerprint; exit 1 if a group is new or rising."""
        rising = current_app.extensions["bridge.config"].analysis.error_rising_factor
        result = error_groups(store(), days, plugin, clock.utcnow(), rising, limit)
        if as_json:
            emit_json(result)
        else:
            table(
                [
                    (
                        g["fingerprint"],
                        g["plugin"],
                        g["count"],
                        "new" if g["new"] else "rising" if g["rising"] else "",
                        g["last_seen"],
                        g["message"][:80],
                    )
                    for g in result["groups"]
                ],
                ("fingerprint", "plugin", "count", "trend", "last seen", "message"),
            )
        sys.exit(PROBLEM if any(g["new"] or g["rising"] for g in result["groups"]) else OK)

    @group.command("analysis")
    @DAYS
    @click.option("--plugin")
    @JSON_OPTION
    def analysis_(days: int, plugin: str | None, as_json: bool) -> None:
        """Per plugin performance against the previous period; exit 1 on findings."""
        limits = current_app.extensions["bridge.config"].analysis
        result = analysis(store(), days, plugin, clock.utcnow(), limits)
        if as_json:
            emit_json(result)
        else:
            table(
                [
                    (
                        p["plugin"],
                        p["calls"],
                        p["success_rate"],
                        ms(p["p50_duration"]),
                        ms(p["p95_duration"]),
                        ms(p["p99_duration"]),
                        p["timeout_share"],
                        p["retry_share"],
                        p["retry_time_share"],
                    )
                    for p in result["plugins"]
                ],
                (
                    "plugin",
                    "calls",
                    "success %",
                    "p50",
                    "p95",
                    "p99",
                    "timeout %",
                    "retried %",
                    "retry time %",
                ),
            )
            for finding in result["findings"]:
                click.echo(f"- {finding['message']}")
        sys.exit(PROBLEM if result["findings"] else OK)

    @group.command("export")
    @click.option("--format", "fmt", type=click.Choice(tuple(FORMATS)), default="csv")
    @click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, allow_dash=True),
        help="Default: a file named for the filter and date in this folder; '-' for stdout.",
    )
    @click.option("--fields", help=f"Comma-separated, of: {', '.join(FIELDS)}")
    @click.option("--include", help="input,output: add the payloads.")
    @filter_options
    def export(
        fmt: str, output: str | None, fields: str | None, include: str | None, **options: Any
    ) -> None:
        """Export the matching runs (the list's filters), streamed to a file; a progress
        bar on a terminal."""
        flt = list_filter(options)
        chosen = _names(fields, FIELDS + PAYLOADS, "--fields") or FIELDS
        extra = _names(include, PAYLOADS, "--include")
        columns = (*chosen, *(p for p in extra if p not in chosen))
        source = store()
        if flt.error_group:
            require_group(source, flt.error_group)
        path = output or filename(flt, fmt, clock.utcnow())
        total = list_page(source, flt, 1, 0, None).total
        show = sys.stderr.isatty() and path != "-"
        written = [0]
        try:
            with click.open_file(path, "wb") as out:
                counted = _counted(pages(source, flt), total, show, written)
                for chunk in chunks(counted, fmt, columns):
                    out.write(chunk)
        except OSError as exc:
            raise click.FileError(path, exc.strerror or str(exc)) from None
        if path != "-":
            click.echo(f"Exported {written[0]} runs to {path}", err=True)

    @group.command("replay")
    @click.argument("execution_id")
    @click.option(
        "--input",
        "input_file",
        type=click.File("r"),
        help="Edited input: a JSON object file ('-' for stdin).",
    )
    @JSON_OPTION
    def replay(execution_id: str, input_file: IO[str] | None, as_json: bool) -> None:
        """Run the plugin of a stored run again; exit 1 unless it completes."""
        record = store().get(execution_id)
        if record is None:
            click.echo(f"Execution '{execution_id}' not found", err=True)
            sys.exit(PROBLEM)
        edited = None
        if input_file is not None:
            try:
                edited = loads_json(input_file.read())
            except (ValueError, RecursionError) as exc:
                raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None
            if not isinstance(edited, dict):
                raise click.BadParameter("expected a JSON object", param_hint="--input")
        dispatcher = current_app.extensions["bridge.dispatcher"]
        try:
            result = dispatcher.deliver(replay_delivery(record, edited))
        except BridgeError as exc:
            click.echo(f"Not replayed: {exc.message}", err=True)
            sys.exit(PROBLEM)
        run, outcome = result.run, result.outcome
        assert run is not None and outcome is not None
        answer = {
            "execution_id": run.execution_id,
            "replay_of": record.id,
            "status": outcome.status.value,
            "duration": outcome.duration,
            "data": outcome.result,
            "error": str(outcome.error) if outcome.error else "",
            "error_type": outcome.error_type,
        }
        if as_json:
            emit_json(answer)
        else:
            table([(k, v) for k, v in answer.items()], ("field", "value"))
        sys.exit(OK if outcome.status is Status.COMPLETED else PROBLEM)


def _counted(source: Any, total: int, show: bool, written: list[int]) -> Any:
    """The pages, counted into `written[0]`; a progress bar on stderr when `show`."""
    if not show:
        for page in source:
            written[0] += len(page)
            yield page
        return
    with click.progressbar(length=total, label="Exporting", file=sys.stderr) as bar:
        for page in source:
            written[0] += len(page)
            bar.update(len(page))
            yield page
