"""Executions resource: the history of runs, their stats, storage info and cleanup."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

from flask import Response, current_app, jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, RAISE

from bridge import clock
from bridge.api.insight import list_filter
from bridge.api.schemas import (
    CleanupQuerySchema,
    CleanupResultSchema,
    ErrorSchema,
    ExecutionDetailSchema,
    ExecutionListQuerySchema,
    ExecutionListSchema,
    ExecutionQuerySchema,
    SeriesQuerySchema,
    SeriesSchema,
    StatsEnvelopeSchema,
    StatsQuerySchema,
    StorageInfoSchema,
    dump_execution,
    rfc3339,
)
from bridge.errors import ExecutionNotFound
from bridge.insight.errors import require_group
from bridge.model import ExecutionFilter, ExecutionRecord
from bridge.storage import Storage
from bridge.storage.base import ExecutionStore
from bridge.storage.cleanup import cleanup
from bridge.storage.series import series
from bridge.storage.stats import list_page, window_stats

blp = Blueprint(
    "executions",
    __name__,
    url_prefix="/api/v1/executions",
    description="Every plugin run, as recorded by execution tracking.",
)

_UNAVAILABLE = {"schema": ErrorSchema, "description": "Execution tracking is disabled"}


def _storage() -> Storage:
    return current_app.extensions["bridge.storage"]


def _store() -> ExecutionStore:
    return _storage().require()


@blp.route("")
class Executions(MethodView):
    @blp.arguments(ExecutionListQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, ExecutionListSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No run has that error_group")
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any]) -> Response:
        """List runs, newest first, filtered; `total` counts every match."""
        flt = list_filter(args)
        if flt.error_group:
            require_group(_store(), flt.error_group)
        page = list_page(_store(), flt, args["limit"], args["offset"], args.get("cursor"))
        shown = {
            k: (v.value if hasattr(v, "value") else rfc3339(v) if k in ("since", "until") else v)
            for k, v in asdict(flt).items()
            if v is not None and k != "tags"
        }
        if flt.tags:
            shown["tag"] = [f"{key}:{value}" for key, value in flt.tags]
        # What ExecutionListSchema's dump gives, built directly (see dump_execution).
        return jsonify(
            {
                "executions": [dump_execution(r) for r in _shown(page.records, args["parse_json"])],
                "total": page.total,
                "total_is_estimate": page.total_is_estimate,
                "limit": args["limit"],
                "offset": 0 if args.get("cursor") else args["offset"],
                "next_cursor": page.next_cursor,
                "filter": shown,
            }
        )


@blp.route("/stats")
class Stats(MethodView):
    @blp.arguments(StatsQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, StatsEnvelopeSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Totals, success rate, durations and a daily breakdown for the last `days` days."""
        stats = window_stats(
            _store(), args["days"], args.get("plugin"), clock.utcnow(), tuple(args.get("tag", ()))
        )
        return {"stats": stats}


@blp.route("/stats/<plugin>")
class PluginStats(MethodView):
    @blp.arguments(StatsQuerySchema(only=("days",)), location="query", unknown=RAISE)
    @blp.response(200, StatsEnvelopeSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any], plugin: str) -> dict[str, Any]:
        """One plugin's stats, plus this worker's real-time metrics for it."""
        return {
            "plugin": plugin,
            "stats": window_stats(_store(), args["days"], plugin, clock.utcnow()),
            "realtime": current_app.extensions["bridge.live_metrics"].get(plugin),
        }


@blp.route("/timeseries")
class TimeSeries(MethodView):
    @blp.arguments(SeriesQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, SeriesSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Runs, failures and duration percentiles per minute, hour or day, overall and
        per plugin, from the rollups (what the dashboard draws)."""
        return series(
            _store(),
            args["since"],
            args["until"],
            args["grain"],
            args.get("plugin"),
            args["plugin_buckets"],
        )


@blp.route("/storage/info")
class StorageInfo(MethodView):
    @blp.response(200, StorageInfoSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self) -> dict[str, Any]:
        """Where records are kept, how many, how large, and how healthy."""
        store = _store()
        info = asdict(store.info())
        # The backend's own figures stay at the top level, where they always were.
        backend = info.pop("backend") or {}
        info.update(backend, backend=backend)
        info["healthy"], info["health_message"] = store.health()
        status = _storage().status()
        info["write_failures"] = status["write_failures"]
        if "spool" in status:
            info["spool"] = status["spool"]
        return info


@blp.route("/cleanup")
class Cleanup(MethodView):
    @blp.arguments(CleanupQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, CleanupResultSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def delete(self, args: dict[str, Any]) -> dict[str, Any]:
        """Delete finished runs older than `older_than_days` (default: retention_days)."""
        store = _store()
        days = args.get("older_than_days", current_app.extensions["bridge.config"].retention_days)
        result = cleanup(store, days, clock.utcnow())
        return {
            "deleted": result.deleted,
            "older_than_days": days,
            "cutoff": result.cutoff,
            "duration_ms": round(result.duration_ms, 1),
            "message": f"Deleted {result.deleted} executions older than {days} days",
        }


@blp.route("/<execution_id>")
class ExecutionById(MethodView):
    @blp.arguments(ExecutionQuerySchema, location="query", unknown=EXCLUDE)
    @blp.response(200, ExecutionDetailSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No execution with that id")
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any], execution_id: str) -> dict[str, Any]:
        """One run with each of its attempts."""
        record = _store().get(execution_id) if len(execution_id) <= 100 else None
        if record is None:
            raise ExecutionNotFound(execution_id[:100])
        (shown,) = _shown([record], args["parse_json"])
        # The newest replays only, without a total: nothing shows one.
        with _store().snapshot() as reader:
            replays, _ = reader.page(ExecutionFilter(replay_of=record.id), 100, 0, None)
        return {"execution": shown, "attempts": record.attempt_records, "replayed_by": replays}


def _shown(records: list[ExecutionRecord], parse_json: bool) -> list[Any]:
    """The records as stored, or with their JSON text fields as the values they hold."""
    if not parse_json:
        return records
    return [replace(r, **{name: _value(getattr(r, name)) for name in JSON_FIELDS}) for r in records]


JSON_FIELDS = ("input", "output", "tags", "metadata")


def _value(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:  # not JSON after all (a legacy row): the text itself
        return text
