"""Insight resource: export, performance analysis, error groups, and replay of a run.

Thin views over bridge.insight, which `flask bridge` calls the same way.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE

from bridge import clock
from bridge.api.delivery import loads_json
from bridge.api.insight_schemas import (
    AnalysisSchema,
    DaysQuerySchema,
    ErrorGroupsSchema,
    ErrorsQuerySchema,
    ExportQuerySchema,
)
from bridge.api.schemas import ErrorSchema, StrictQuery
from bridge.api.webhook import (
    REQUEST_BODY,
    WebhookErrorSchema,
    WebhookResponseSchema,
    _json,
    answer,
)
from bridge.errors import BadPayload, ExecutionNotFound
from bridge.insight.analysis import analysis
from bridge.insight.errors import error_groups, require_group
from bridge.insight.export import FIELDS, FORMATS, chunks, filename, pages
from bridge.insight.replay import replay_delivery
from bridge.model import ExecutionFilter
from bridge.storage.base import ExecutionStore

blp = Blueprint(
    "insight",
    __name__,
    url_prefix="/api/v1/executions",
    description="What the history says: export, analysis, error groups; and replay.",
)

_UNAVAILABLE = {"schema": ErrorSchema, "description": "Execution tracking is disabled"}


def _store() -> ExecutionStore:
    return current_app.extensions["bridge.storage"].require()


def list_filter(args: dict[str, Any]) -> ExecutionFilter:
    """The list's filter from its query arguments (export takes exactly the list's)."""
    return ExecutionFilter(
        plugin=args.get("plugin"),
        status=args.get("status"),
        error_type=args.get("error_type"),
        trace_id=args.get("trace_id"),
        since=args.get("since"),
        until=args.get("until"),
        tags=tuple(args.get("tag", ())),
        error_group=args.get("error_group"),
        replay_of=args.get("replay_of"),
    )


@blp.route("/export")
class Export(MethodView):
    @blp.arguments(ExportQuerySchema, location="query", unknown=RAISE)
    @blp.doc(
        responses={
            "200": {
                "description": "The matching runs, newest first, streamed as a file",
                "content": {
                    ct.split(";")[0]: {"schema": {"type": "string"}} for ct in FORMATS.values()
                },
            }
        }
    )
    @blp.alt_response(404, schema=ErrorSchema, description="Unknown error group")
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any]) -> Response:
        """Export the runs the list's filters match, as CSV, JSON or NDJSON."""
        store = _store()
        flt = list_filter(args)
        if flt.error_group:
            require_group(store, flt.error_group)
        fmt = args["format"]
        chosen = args.get("fields_") or FIELDS
        fields = (*chosen, *(p for p in args.get("include", ()) if p not in chosen))
        name = filename(flt, fmt, clock.utcnow())
        return Response(
            chunks(pages(store, flt), fmt, fields),
            content_type=FORMATS[fmt],
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )


@blp.route("/analysis")
class Analysis(MethodView):
    @blp.arguments(DaysQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, AnalysisSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Per plugin: calls, success rate, p50/p95/p99/max duration, timeout and retry
        shares, their trend against the previous period, and ranked findings."""
        limits = current_app.extensions["bridge.config"].analysis
        return analysis(_store(), args["days"], args.get("plugin"), clock.utcnow(), limits)


@blp.route("/errors")
class Errors(MethodView):
    @blp.arguments(ErrorsQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, ErrorGroupsSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Failures grouped by fingerprint, most first, with a daily series and whether
        each group is new in the window or rising."""
        limits = current_app.extensions["bridge.config"].analysis
        return error_groups(
            _store(),
            args["days"],
            args.get("plugin"),
            clock.utcnow(),
            limits.error_rising_factor,
            args["limit"],
        )


@blp.route("/<execution_id>/replay")
class Replay(MethodView):
    @blp.doc(
        requestBody={
            **REQUEST_BODY,
            "description": "Edited input (a JSON object); without a body, the stored input is used",
        }
    )
    @blp.arguments(StrictQuery, location="query", unknown=RAISE)  # it takes none
    @blp.response(200, WebhookResponseSchema)
    @blp.alt_response(400, schema=ErrorSchema, description="Edited input not a JSON object")
    @blp.alt_response(404, schema=ErrorSchema, description="No execution (or plugin) by that id")
    @blp.alt_response(405, schema=ErrorSchema, description="The plugin no longer takes the method")
    @blp.alt_response(409, schema=ErrorSchema, description="Stored input truncated or redacted")
    @blp.alt_response(422, schema=ErrorSchema, description="A query parameter (it takes none)")
    @blp.alt_response(429, schema=ErrorSchema, description="The plugin is at max_concurrency")
    @blp.alt_response(500, schema=WebhookErrorSchema, description="The plugin failed")
    @blp.alt_response(503, schema=WebhookErrorSchema, description="Runner saturated, or no store")
    @blp.alt_response(504, schema=WebhookErrorSchema, description="The plugin timed out")
    def post(self, _args: dict[str, Any], execution_id: str) -> Response:
        """Run the plugin again with the stored input (or the body's), answered like a
        webhook; the new run's `replay_of` names this one."""
        record = _store().get(execution_id) if len(execution_id) <= 100 else None
        if record is None:
            raise ExecutionNotFound(execution_id[:100])
        edited = None
        raw = request.get_data(cache=True)
        if raw:
            try:
                edited = loads_json(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                edited = None
            if not isinstance(edited, dict):
                raise BadPayload("The edited input must be a JSON object")
        dispatcher = current_app.extensions["bridge.dispatcher"]
        return _json(*answer(dispatcher.deliver(replay_delivery(record, edited))))
