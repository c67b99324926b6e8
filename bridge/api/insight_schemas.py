"""Marshmallow schemas of the insight endpoints: export, analysis, error groups, replay."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from bridge.api.schemas import (
    MAX_DAYS,
    RFC3339,
    ExecutionListQuerySchema,
    StrictQuery,
)
from bridge.insight.export import FIELDS, FORMATS, PAYLOADS


class CommaList(fields.String):
    """A comma-separated list of names, each one of `choices`, loaded as a tuple."""

    def __init__(self, choices: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        names = tuple(n.strip() for n in text.split(",") if n.strip())
        unknown = [n for n in names if n not in self.choices]
        if unknown or not names:
            raise ma.ValidationError(
                f"Unknown field(s): {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(self.choices)}."
            )
        return tuple(dict.fromkeys(names))


class ExportQuerySchema(ExecutionListQuerySchema):
    class Meta:
        exclude = ("limit", "offset", "cursor", "parse_json")

    format = fields.String(
        load_default="csv",
        validate=validate.OneOf(tuple(FORMATS)),
        metadata={"description": "csv, json (one array) or ndjson (one object a line)"},
    )
    fields_ = CommaList(
        FIELDS + PAYLOADS,
        data_key="fields",
        metadata={"description": f"Columns to export, comma-separated: {', '.join(FIELDS)}"},
    )
    include = CommaList(
        PAYLOADS,
        metadata={"description": "input,output: add the payloads (as JSON text in CSV)"},
    )


class DaysQuerySchema(StrictQuery):
    days = fields.Integer(load_default=7, validate=validate.Range(1, MAX_DAYS))
    plugin = fields.String(validate=validate.Length(1, 100))


class ErrorsQuerySchema(DaysQuerySchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))


class DailyCountSchema(ma.Schema):
    date = fields.String()
    count = fields.Integer()


class ErrorGroupSchema(ma.Schema):
    fingerprint = fields.String()
    plugin = fields.String()
    error_type = fields.String()
    message = fields.String(metadata={"description": "The error message, normalised"})
    count = fields.Integer(metadata={"description": "Failures in the window"})
    previous_count = fields.Integer(metadata={"description": "In the period before, as long"})
    first_seen = RFC3339(allow_none=True, metadata={"description": "Ever, not just in the window"})
    last_seen = RFC3339(allow_none=True)
    example_execution_id = fields.String()
    new = fields.Boolean(metadata={"description": "First seen in the window"})
    rising = fields.Boolean(
        metadata={"description": "count >= analysis.error_rising_factor x previous_count"}
    )
    daily = fields.List(fields.Nested(DailyCountSchema))


class ErrorGroupsSchema(ma.Schema):
    days = fields.Integer()
    window_start = fields.String()
    window_end = fields.String()
    total_groups = fields.Integer()
    total_failures = fields.Integer()
    groups = fields.List(fields.Nested(ErrorGroupSchema))


class PerformanceSchema(ma.Schema):
    calls = fields.Integer()
    success_rate = fields.Float(metadata={"description": "Percent"})
    failure_rate = fields.Float(metadata={"description": "Percent: failed, timeout, canceled"})
    p50_duration = fields.Integer(metadata={"description": "Nanoseconds"})
    p95_duration = fields.Integer(metadata={"description": "Nanoseconds"})
    p99_duration = fields.Integer(metadata={"description": "Nanoseconds"})
    max_duration = fields.Integer(metadata={"description": "Nanoseconds"})
    timeout_share = fields.Float(metadata={"description": "Percent of runs that timed out"})
    retry_share = fields.Float(metadata={"description": "Percent of runs that needed a retry"})
    retry_time_share = fields.Float(
        metadata={"description": "Percent of the run time spent after first attempts"}
    )


class TrendSchema(ma.Schema):
    p95_ratio = fields.Float(allow_none=True, metadata={"description": "p95 now / p95 before"})
    failure_rate_change = fields.Float(metadata={"description": "Percentage points"})


class PluginAnalysisSchema(PerformanceSchema):
    plugin = fields.String()
    previous = fields.Nested(PerformanceSchema)
    trend = fields.Nested(TrendSchema)


class FindingSchema(ma.Schema):
    plugin = fields.String()
    kind = fields.String(metadata={"description": "p95_rise, failure_rate_rise, timeouts, retries"})
    score = fields.Float(metadata={"description": "How far past its threshold; ranks findings"})
    message = fields.String()
    figures = fields.Dict()


class AnalysisSchema(ma.Schema):
    days = fields.Integer()
    window_start = fields.String()
    window_end = fields.String()
    previous_start = fields.String()
    plugins = fields.List(fields.Nested(PluginAnalysisSchema))
    findings = fields.List(fields.Nested(FindingSchema))
