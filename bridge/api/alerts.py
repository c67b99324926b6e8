"""Alerts resource: the rules and their states, the events history, a test
notification, and silencing a rule (the last two need the admin scope)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import RAISE

from bridge.alerts import Alerts
from bridge.api.alert_schemas import (
    AlertEventListSchema,
    AlertEventsQuerySchema,
    AlertListSchema,
    AlertTestSchema,
    SilenceQuerySchema,
    SilenceSchema,
)
from bridge.api.schemas import ErrorSchema
from bridge.storage.alerts import AlertStore

blp = Blueprint(
    "alerts",
    __name__,
    url_prefix="/api/v1/alerts",
    description="Alert rules, their state per plugin, and their history.",
)

_UNAVAILABLE = {"schema": ErrorSchema, "description": "Execution tracking is disabled"}
_NO_RULE = {"schema": ErrorSchema, "description": "No alert rule of that name"}


def _alerts() -> Alerts:
    return current_app.extensions["bridge.alerts"]


@blp.route("")
class AlertList(MethodView):
    @blp.response(200, AlertListSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self) -> dict[str, Any]:
        """Every rule with its state per plugin; the firing ones first in `firing`."""
        return _alerts().overview()


@blp.route("/events")
class AlertEvents(MethodView):
    @blp.arguments(AlertEventsQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, AlertEventListSchema)
    @blp.alt_response(503, **_UNAVAILABLE)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Alert events (fired, reminded, resolved, delivery failed, ...), newest first."""
        store = AlertStore(_alerts().storage.require())
        return {"events": store.events(args.get("since"), args["limit"])}


@blp.route("/<rule>/test")
class AlertTest(MethodView):
    @blp.response(200, AlertTestSchema)
    @blp.alt_response(404, **_NO_RULE)
    @blp.alt_response(503, **_UNAVAILABLE)
    def post(self, rule: str) -> dict[str, Any]:
        """Send a test notification through the rule's channels; says how each went."""
        return {"rule": rule, "outcomes": _alerts().test(rule)}


@blp.route("/<rule>/silence")
class AlertSilence(MethodView):
    @blp.arguments(SilenceQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, SilenceSchema)
    @blp.alt_response(404, **_NO_RULE)
    @blp.alt_response(503, **_UNAVAILABLE)
    def post(self, args: dict[str, Any], rule: str) -> dict[str, Any]:
        """Send no notification of the rule for `for` (its states still move)."""
        seconds = args["for_"]
        until = _alerts().silence(rule, seconds)
        return {"rule": rule, "silenced_until": until if seconds > 0 else None}
