"""GET /metrics: the Prometheus text format (bridge.prometheus), answered to whoever
may read the management API: local clients while no key is configured, else a key
with the `read` scope. Absent when `metrics.enabled` is false."""

from __future__ import annotations

from flask import Response, current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.schemas import ErrorSchema

blp = Blueprint("metrics", __name__, description="Prometheus metrics.")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@blp.route("/metrics")
class Metrics(MethodView):
    @blp.alt_response(200, description="Prometheus text format", content_type="text/plain")
    @blp.alt_response(403, schema=ErrorSchema, description="Not local, and no key configured")
    def get(self) -> Response:
        """Runs, durations, runs in flight, refusals (503, 429, signatures), idempotent
        replays, store write errors, the spool's backlog and background jobs, across
        every worker."""
        body = current_app.extensions["bridge.prometheus"].exposition()
        return Response(body, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
