"""The alerts API's schemas: GET /api/v1/alerts (what the dashboard shows firing), the
events history, and the answers of test and silence."""

from __future__ import annotations

import math
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from bridge.api.schemas import MAX_LIMIT, RFC3339, StrictQuery
from bridge.config.values import parse_duration

MAX_SILENCE_S = 366 * 24 * 3600


class AlertRuleSchema(ma.Schema):
    name = fields.String()
    plugin = fields.String(metadata={"description": "A plugin name, or * for each plugin"})
    metric = fields.String()
    window_seconds = fields.Float(attribute="window")
    threshold = fields.Float(
        metadata={"description": "A share for failure_rate, seconds for durations, a count"}
    )
    min_runs = fields.Integer()
    for_seconds = fields.Float(attribute="for_")
    repeat_seconds = fields.Float(attribute="repeat")
    resolve_after_seconds = fields.Float(attribute="resolve_after")
    severity = fields.String()
    channels = fields.List(fields.String())
    error_type = fields.String()


class AlertStateSchema(ma.Schema):
    plugin = fields.String()
    state = fields.String(metadata={"description": "ok, pending, firing or resolved"})
    value = fields.Float(allow_none=True, metadata={"description": "At the latest change"})
    since = RFC3339(allow_none=True, metadata={"description": "When the condition began"})
    fired_at = RFC3339(allow_none=True)
    notified_at = RFC3339(allow_none=True)
    resolved_at = RFC3339(allow_none=True)
    updated_at = RFC3339(allow_none=True)


class RuleStatesSchema(ma.Schema):
    rule = fields.Nested(AlertRuleSchema)
    silenced_until = RFC3339(allow_none=True)
    states = fields.List(fields.Nested(AlertStateSchema))


class FiringAlertSchema(ma.Schema):
    rule = fields.Nested(AlertRuleSchema)
    state = fields.Nested(AlertStateSchema)


class AlertListSchema(ma.Schema):
    enabled = fields.Boolean(metadata={"description": "Whether rules are evaluated"})
    firing = fields.List(fields.Nested(FiringAlertSchema))
    rules = fields.List(fields.Nested(RuleStatesSchema))


class AlertEventsQuerySchema(StrictQuery):
    since = RFC3339(metadata={"description": "Events at or after (RFC 3339)"})
    limit = fields.Integer(load_default=100, validate=validate.Range(1, MAX_LIMIT))


class AlertEventSchema(ma.Schema):
    id = fields.Integer()
    at = RFC3339()
    rule = fields.String()
    plugin = fields.String()
    kind = fields.String(
        metadata={"description": "fired, reminded, resolved, delivery_failed, test, silenced"}
    )
    severity = fields.String()
    value = fields.Float(allow_none=True)
    threshold = fields.Float(allow_none=True)
    channel = fields.String()
    detail = fields.Dict()


class AlertEventListSchema(ma.Schema):
    events = fields.List(fields.Nested(AlertEventSchema))


class OutcomeSchema(ma.Schema):
    channel = fields.String()
    ok = fields.Boolean()
    attempts = fields.Integer()
    error = fields.String()


class AlertTestSchema(ma.Schema):
    rule = fields.String()
    outcomes = fields.List(fields.Nested(OutcomeSchema))


class DurationField(fields.String):
    """A Go-style duration (`2h`, `30m`) as seconds."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        try:
            seconds = parse_duration(super()._deserialize(value, attr, data, **kwargs))
        except ValueError:
            raise ma.ValidationError("expected a duration such as 30m or 2h") from None
        if not math.isfinite(seconds) or seconds > MAX_SILENCE_S:
            raise ma.ValidationError("at most 366 days")
        return seconds


class SilenceQuerySchema(StrictQuery):
    for_ = DurationField(
        data_key="for",
        required=True,
        metadata={"description": "How long to send nothing, e.g. 2h (0 lifts a silence)"},
    )


class SilenceSchema(ma.Schema):
    rule = fields.String()
    silenced_until = RFC3339(allow_none=True)
