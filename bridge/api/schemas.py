"""Marshmallow schemas: request validation, response serialization and the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from bridge import clock
from bridge.model import ERROR_TYPES, Status
from bridge.storage.series import GRAINS, MAX_BUCKETS, MAX_MINUTE_SPAN
from bridge.tracking.classify import ERROR_TYPE_RULE, OWN_ERROR_TYPE, is_error_type
from bridge.tracking.fingerprint import FINGERPRINT_PATTERN

MAX_LIMIT = 1000
MAX_OFFSET = 10_000_000
MAX_DAYS = 3650


def rfc3339(value: datetime | None) -> str | None:
    return None if value is None else clock.rfc3339(value)


class RFC3339(fields.DateTime):
    """A UTC timestamp written as RFC 3339 with a `Z`; naive input is read as UTC."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return rfc3339(value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None


class StrictQuery(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class ErrorSchema(ma.Schema):
    code = fields.Integer(metadata={"description": "The HTTP status code"})
    status = fields.String(metadata={"description": "The HTTP reason phrase"})
    message = fields.String(metadata={"description": "What went wrong, for a person"})
    errors = fields.Dict(metadata={"description": "Invalid fields, each with its messages"})


# -- plugins ---------------------------------------------------------------
class PluginSchema(ma.Schema):
    name = fields.String()
    description = fields.String()
    supported_methods = fields.List(fields.String())
    is_available = fields.Boolean()
    error = fields.String(allow_none=True)
    path = fields.String()
    last_modified = RFC3339()


class PluginListSchema(ma.Schema):
    plugins = fields.List(fields.Nested(PluginSchema))
    total_count = fields.Integer()


# -- webhooks --------------------------------------------------------------
# What a tag looks like, as documented; bridge.api.delivery.parse_tags is the check.
TAG_PATTERN = r"^\s*[^:=\s][^:=]{0,63}[:=].{0,256}$"


class WebhookQuerySchema(ma.Schema):
    """Documented control parameters; every other query parameter goes to the plugin."""

    class Meta:
        unknown = ma.INCLUDE

    async_ = fields.Boolean(
        data_key="async",
        metadata={
            "description": "Answer 202 at once and run in the background (also "
            "`Prefer: respond-async`)"
        },
    )
    tag = fields.List(
        fields.String(metadata={"pattern": TAG_PATTERN}),
        metadata={
            "description": "A `key:value` (or `key=value`) tag stored with the execution; "
            "key up to 64 characters, value up to 256; repeatable"
        },
    )


class WebhookResponseSchema(ma.Schema):
    plugin = fields.String()
    method = fields.String()
    status_code = fields.Integer()
    message = fields.String()
    execution_time = fields.Float(metadata={"description": "Seconds the run took"})
    timestamp = fields.String(metadata={"description": "RFC 3339 UTC"})
    data = fields.Dict(allow_none=True, metadata={"description": "The plugin's result"})
    error = fields.String(allow_none=True)
    error_type = fields.String(allow_none=True)
    request_id = fields.String()
    execution_id = fields.String()
    trace_id = fields.String()
    attempts = fields.Integer()
    status_url = fields.String()
    replayed = fields.Boolean(
        metadata={
            "description": "True when this answers a repeated delivery (same idempotency key) "
            "with the first run's result; the header Idempotent-Replayed says so "
            "too"
        }
    )


class WebhookErrorSchema(ErrorSchema, WebhookResponseSchema):
    """A run that failed, timed out or was canceled: the error shape, plus the run's
    fields when it got as far as running (its execution id, error and error type)."""


# -- executions ------------------------------------------------------------
_TAG_FILTER = re.compile(r"\s*([^:=\s][^:=]{0,63}?)\s*[:=]\s*(.{0,256}?)\s*")


class TagFilter(fields.String):
    """A `key:value` (or `key=value`) tag a run must carry, loaded as (key, value)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        match = _TAG_FILTER.fullmatch(text)
        if match is None:
            raise ma.ValidationError("Use key:value (key up to 64 characters, value up to 256).")
        return match.group(1), match.group(2)


def tag_filter(description: str) -> fields.List:
    """`?tag=key:value`, repeatable (at most 20), every one must match."""
    return fields.List(
        TagFilter(metadata={"pattern": TAG_PATTERN}),
        validate=validate.Length(max=20),
        metadata={"description": description},
    )


PARSE_JSON = fields.Boolean(
    load_default=False,
    metadata={
        "description": "Give input, output, tags and metadata as JSON values instead of "
        "the JSON text they are stored as (the seed's record shape, the default)"
    },
)


def _an_error_type(value: str) -> None:
    if not is_error_type(value):
        raise ma.ValidationError(f"Expected an error type: {ERROR_TYPE_RULE}.")


class ExecutionListQuerySchema(StrictQuery):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, MAX_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))
    plugin = fields.String(validate=validate.Length(1, 100))
    status = fields.Enum(Status, by_value=True)
    error_type = fields.String(
        validate=_an_error_type,
        metadata={
            "pattern": OWN_ERROR_TYPE,
            "description": "One of " + ", ".join(ERROR_TYPES) + ", or a type a plugin named",
            "x-known-values": list(ERROR_TYPES),
        },
    )
    trace_id = fields.String(validate=validate.Length(1, 200))
    since = RFC3339(metadata={"description": "Runs that started at or after (RFC 3339)"})
    until = RFC3339(metadata={"description": "Runs that started before (RFC 3339)"})
    cursor = fields.String(
        validate=validate.Length(1, 200),
        metadata={"description": "`next_cursor` of the previous page; replaces offset"},
    )
    tag = tag_filter(
        "Only runs carrying this `key:value` tag (as redacted when stored); repeatable, "
        "every one must match"
    )
    error_group = fields.String(
        validate=validate.Regexp(
            FINGERPRINT_PATTERN, error="Expected a 16-character hex fingerprint."
        ),
        metadata={"description": "Only runs of this error group (a fingerprint from /errors)"},
    )
    replay_of = fields.String(
        validate=validate.Length(1, 100),
        metadata={"description": "Only the replays of this run (an execution id)"},
    )
    parse_json = PARSE_JSON

    @ma.validates_schema
    def _window(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ma.ValidationError("must be after since", "until")


class JSONText(fields.Raw):
    """A JSON document stored as text: the text, or with `parse_json=true` its value."""


def _json_text(what: str) -> JSONText:
    return JSONText(
        metadata={"description": f"{what} as JSON text; with parse_json=true, the JSON value"}
    )


class ExecutionSchema(ma.Schema):
    id = fields.String()
    plugin_name = fields.String()
    http_method = fields.String()
    start_time = RFC3339()
    end_time = RFC3339(allow_none=True)
    status = fields.Enum(Status, by_value=True)
    input = _json_text("The plugin's input (redacted, truncated)")
    output = _json_text("The plugin's result (redacted, truncated)")
    error = fields.String()
    error_type = fields.String()
    duration = fields.Integer(metadata={"description": "Nanoseconds"})
    attempts = fields.Integer()
    retry_count = fields.Integer()
    trace_id = fields.String()
    user_agent = fields.String()
    remote_ip = fields.String()
    tags = _json_text("The run's tags, an object,")
    metadata = _json_text("Facts of the request, an object,")
    created_at = RFC3339()
    updated_at = RFC3339()
    idempotency_key = fields.String(
        metadata={"description": "The delivery's Idempotency-Key, X-GitHub-Delivery or webhook-id"}
    )
    replays = fields.Integer(
        metadata={"description": "Repeated deliveries answered with this run's result"}
    )
    error_group = fields.String(
        metadata={"description": "A failure's fingerprint (GET /api/v1/executions/errors)"}
    )
    replay_of = fields.String(metadata={"description": "The run this one replays, if any"})


def _plain(kind: type) -> Callable[[Any], Any]:
    return lambda value: None if value is None else kind(value)


def _dumper(schema: type[ma.Schema]) -> Callable[[Any], dict[str, Any]]:
    """`schema().dump(obj)` for flat schemas of String, Integer, Enum (by value),
    RFC3339 and JSONText fields, at a tenth of its cost: a list page dumps 50 runs of
    25 fields each, and marshmallow's per-field machinery took longer than the query.
    The schema stays what the OpenAPI document shows; a test holds the two equal."""
    converters: list[tuple[str, str, Callable[[Any], Any]]] = []
    for name, field in schema._declared_fields.items():
        if isinstance(field, RFC3339):
            convert = rfc3339
        elif isinstance(field, fields.Enum):
            convert = _enum_value
        elif isinstance(field, fields.String):
            convert = _plain(str)
        elif isinstance(field, fields.Integer):
            convert = _plain(int)
        elif isinstance(field, JSONText):
            convert = _same
        else:
            raise TypeError(f"{schema.__name__}.{name}: no fast dump for {type(field).__name__}")
        converters.append((field.data_key or name, field.attribute or name, convert))

    def dump(obj: Any) -> dict[str, Any]:
        return {key: convert(getattr(obj, attr)) for key, attr, convert in converters}

    return dump


def _enum_value(value: Any) -> Any:
    return None if value is None else value.value


def _same(value: Any) -> Any:
    return value


dump_execution = _dumper(ExecutionSchema)


class AttemptSchema(ma.Schema):
    number = fields.Integer()
    start_time = RFC3339()
    end_time = RFC3339()
    status = fields.Enum(Status, by_value=True)
    error = fields.String()
    error_type = fields.String()
    duration = fields.Integer(metadata={"description": "Nanoseconds"})


class ExecutionListSchema(ma.Schema):
    executions = fields.List(fields.Nested(ExecutionSchema))
    total = fields.Integer(metadata={"description": "Every match, not just this page"})
    total_is_estimate = fields.Boolean()
    limit = fields.Integer()
    offset = fields.Integer()
    next_cursor = fields.String(allow_none=True)
    filter = fields.Dict()


class ReplayRunSchema(ma.Schema):
    id = fields.String()
    status = fields.Enum(Status, by_value=True)
    start_time = RFC3339()


class ExecutionDetailSchema(ma.Schema):
    execution = fields.Nested(ExecutionSchema)
    attempts = fields.List(fields.Nested(AttemptSchema))
    replayed_by = fields.List(
        fields.Nested(ReplayRunSchema),
        metadata={"description": "Replays of this run (POST .../replay), newest first"},
    )


class ExecutionQuerySchema(StrictQuery):
    parse_json = PARSE_JSON


class StatsQuerySchema(StrictQuery):
    days = fields.Integer(load_default=7, validate=validate.Range(1, MAX_DAYS))
    plugin = fields.String(validate=validate.Length(1, 100))
    tag = tag_filter(
        "Only runs carrying this `key:value` tag; repeatable. Tagged stats are counted "
        "from the runs still stored (rollups keep no tags), so they cover the retention "
        "period at most"
    )


class CountsSchema(ma.Schema):
    """What every stats view counts: runs by outcome, success rate, mean duration."""

    total_executions = fields.Integer()
    successful_executions = fields.Integer()
    failed_executions = fields.Integer(metadata={"description": "failed, timeout or canceled"})
    timeout_executions = fields.Integer()
    success_rate = fields.Float(metadata={"description": "Percent"})
    avg_duration = fields.Integer(metadata={"description": "Nanoseconds"})


class DailyStatsSchema(CountsSchema):
    date = fields.String()


class StatsSchema(CountsSchema):
    canceled_executions = fields.Integer()
    min_duration = fields.Integer()
    max_duration = fields.Integer()
    p50_duration = fields.Integer()
    p95_duration = fields.Integer()
    p99_duration = fields.Integer()
    unique_plugins = fields.Integer()
    error_types = fields.Dict(keys=fields.String(), values=fields.Integer())
    daily_stats = fields.List(fields.Nested(DailyStatsSchema))
    window_start = fields.String()
    window_end = fields.String()


class RealtimeSchema(CountsSchema):
    min_duration = fields.Integer()
    max_duration = fields.Integer()
    last_execution = RFC3339(allow_none=True)
    last_status = fields.String()
    error_types = fields.Dict(keys=fields.String(), values=fields.Integer())


class StatsEnvelopeSchema(ma.Schema):
    stats = fields.Nested(StatsSchema)
    plugin = fields.String()
    realtime = fields.Nested(
        RealtimeSchema, metadata={"description": "Since this worker process started (per process)"}
    )


class CleanupQuerySchema(StrictQuery):
    older_than_days = fields.Integer(
        validate=validate.Range(0, MAX_DAYS),
        metadata={"description": "Default: the configured retention_days"},
    )


class CleanupResultSchema(ma.Schema):
    deleted = fields.Integer()
    older_than_days = fields.Integer()
    cutoff = RFC3339()
    duration_ms = fields.Float()
    message = fields.String()


class StorageInfoSchema(ma.Schema):
    type = fields.String()
    location = fields.String()
    size_bytes = fields.Integer()
    total_records = fields.Integer()
    oldest_record = RFC3339(allow_none=True)
    newest_record = RFC3339(allow_none=True)
    healthy = fields.Boolean()
    health_message = fields.String()
    journal_mode = fields.String()
    schema_version = fields.Integer()
    retention_days = fields.Integer()
    last_cleanup = fields.Dict(allow_none=True)
    rollup_watermark = RFC3339(allow_none=True)
    page_size = fields.Integer()
    page_count = fields.Integer()
    freelist_count = fields.Integer()
    open_connections = fields.Integer()
    max_connections = fields.Integer()
    write_failures = fields.Dict()
    spool = fields.Dict(
        metadata={
            "description": "A server database's spool: depth, bytes, max_bytes, "
            "oldest_age_seconds, dropped, replayed, rejected, path"
        }
    )
    backend = fields.Dict(
        metadata={
            "description": "What only this storage type reports, also shown at the top "
            "level (sqlite: journal_mode, page_size, page_count, freelist_count; "
            "postgresql: server_version, database, schema, database_size)"
        }
    )


class HealthSchema(ma.Schema):
    status = fields.String(metadata={"description": "healthy, degraded or unhealthy"})
    version = fields.String()
    uptime_seconds = fields.Float()
    started_at = RFC3339()
    checks = fields.Dict()


class SeriesQuerySchema(StrictQuery):
    since = RFC3339(
        metadata={
            "description": "Start of the range (RFC 3339), floored to the grain; "
            "default: 24 hours before until"
        }
    )
    until = RFC3339(metadata={"description": "End of the range (RFC 3339); default: now"})
    grain = fields.String(
        load_default="hour",
        validate=validate.OneOf(("minute", "hour", "day")),
        metadata={"description": "Bucket size; minute buckets cover at most one day"},
    )
    plugin = fields.String(validate=validate.Length(1, 100))
    plugin_buckets = fields.Boolean(
        load_default=False,
        metadata={"description": "Give each plugin's buckets too, not only its summary"},
    )

    @ma.post_load
    def _range(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Defaults from the clock, and a range small enough to answer at once."""
        until = data.setdefault("until", clock.utcnow())
        if "since" not in data:
            try:
                data["since"] = until - timedelta(hours=24)
            except OverflowError:
                raise ma.ValidationError("too early for a default since", "until") from None
        since = data["since"]
        if since >= until:
            raise ma.ValidationError("must be after since", "until")
        span = until - since
        if data["grain"] == "minute" and span > MAX_MINUTE_SPAN:
            raise ma.ValidationError("minute buckets cover at most one day", "grain")
        if span.total_seconds() / GRAINS[data["grain"]] > MAX_BUCKETS:
            raise ma.ValidationError(
                f"at most {MAX_BUCKETS} buckets: choose a larger grain or a shorter range",
                "grain",
            )
        return data


class SeriesFiguresSchema(CountsSchema):
    completed_executions = fields.Integer()
    canceled_executions = fields.Integer()
    p50_duration = fields.Integer(metadata={"description": "Nanoseconds"})
    p95_duration = fields.Integer(metadata={"description": "Nanoseconds"})
    p99_duration = fields.Integer(metadata={"description": "Nanoseconds"})
    max_duration = fields.Integer(metadata={"description": "Nanoseconds"})
    error_types = fields.Dict(keys=fields.String(), values=fields.Integer())


class SeriesSummarySchema(SeriesFiguresSchema):
    unique_plugins = fields.Integer()


class SeriesBucketSchema(SeriesFiguresSchema):
    start = RFC3339()


class PluginSeriesSchema(ma.Schema):
    plugin = fields.String()
    last_seen = RFC3339(
        allow_none=True,
        metadata={
            "description": "Its latest run in the range (for a run cleanup deleted, the "
            "end of its hour or day, which the rollups keep)"
        },
    )
    summary = fields.Nested(SeriesFiguresSchema)
    buckets = fields.List(
        fields.Nested(SeriesBucketSchema), metadata={"description": "With plugin_buckets=true"}
    )


class SeriesSchema(ma.Schema):
    grain = fields.String()
    since = RFC3339()
    until = RFC3339()
    plugin = fields.String(allow_none=True)
    summary = fields.Nested(SeriesSummarySchema)
    buckets = fields.List(fields.Nested(SeriesBucketSchema))
    plugins = fields.List(fields.Nested(PluginSeriesSchema))


class AccessSchema(ma.Schema):
    key = fields.String(
        allow_none=True, metadata={"description": "The name of the key presented, if any"}
    )
    scopes = fields.List(fields.String(), metadata={"description": "What this client may do"})
    local_only = fields.Boolean(
        metadata={"description": "True while no key is configured: only local clients get in"}
    )
