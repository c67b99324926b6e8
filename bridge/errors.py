"""The project's exceptions: one base, a subclass per cause, messages built from ids.

Services raise these; `bridge.api.errors` turns them into the API's one JSON shape.
"""

from __future__ import annotations

from typing import Any


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    http_status = 500
    # Extra response headers (Retry-After, Allow, ...) for the API's error response.
    headers: dict[str, str] = {}

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class ConfigError(BridgeError):
    """A config value that cannot be used; the one line names the key and the value."""

    def __init__(self, key: str, value: Any, why: str) -> None:
        shown = f"'{value}'" if isinstance(value, str) else repr(value)
        super().__init__(f"{key}: {why} {shown}")
        self.key = key
        self.value = value


class PluginNotFound(BridgeError):
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"Plugin '{name}' not found")
        self.name = name


class PluginUnavailable(BridgeError):
    """The plugin file exists but could not be loaded. The reason (an import error may
    show paths or a DSN) stays out of the answer: it is in the log and in the
    key-protected GET /api/v1/plugins."""

    http_status = 503

    def __init__(self, name: str, error: str) -> None:
        super().__init__(
            f"Plugin '{name}' is unavailable: it failed to load (see the server log "
            "or GET /api/v1/plugins)"
        )
        self.name = name
        self.error = error


class MethodNotAllowed(BridgeError):
    http_status = 405

    def __init__(self, name: str, method: str, allowed: list[str]) -> None:
        super().__init__(
            f"Plugin '{name}' does not handle {method}; it handles {', '.join(allowed)}"
        )
        self.allowed = allowed
        self.headers = {"Allow": ", ".join(allowed)}


class BadPayload(BridgeError):
    http_status = 400


class TooManyFields(BridgeError):
    """A form body with more fields than server.max_form_fields."""

    http_status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"Too many form fields: at most {limit} (server.max_form_fields)")


class NoCapacity(BridgeError):
    """No room to run this now: nothing ran, and the client should come back after
    `retry_after` seconds (the Retry-After header)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = {"Retry-After": str(retry_after)}


class RunnerSaturated(NoCapacity):
    """Every runner slot is taken."""

    http_status = 503

    def __init__(self, retry_after: int, what: str = "runner") -> None:
        super().__init__(f"The {what} is saturated: every slot is busy, retry later", retry_after)


class ExecutionNotFound(BridgeError):
    http_status = 404

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"Execution '{execution_id}' not found")
        self.execution_id = execution_id


class ErrorGroupNotFound(BridgeError):
    http_status = 404

    def __init__(self, fingerprint: str) -> None:
        super().__init__(f"No failure has the error group '{fingerprint}'")
        self.fingerprint = fingerprint


class NotReplayable(BridgeError):
    """A stored run whose input is not whole (truncated, redacted, not kept)."""

    http_status = 409

    def __init__(self, execution_id: str, reason: str) -> None:
        super().__init__(
            f"Execution '{execution_id}' cannot be replayed as stored: {reason}; "
            "send the input to use as the request's JSON body"
        )
        self.execution_id = execution_id


class StorageUnavailable(BridgeError):
    """Tracking is disabled or its database cannot be used."""

    http_status = 503


class StorageError(BridgeError):
    """A storage operation failed (disk full, locked, corrupt)."""

    http_status = 503


class RecordRefused(StorageError):
    """The database refused one record (a value it cannot store): the database itself
    is there, and the records before and after it are written."""


class InvalidCursor(BridgeError):
    http_status = 422

    def __init__(self, cursor: str) -> None:
        super().__init__("The cursor is not one this API returned")
        self.extra = {"errors": {"cursor": ["Not a cursor returned by this API."]}}


class PluginTimeout(BridgeError, TimeoutError):
    """A plugin ran past its timeout; its thread may still be running."""

    http_status = 504

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"Plugin '{name}' timed out after {timeout:g}s")
        self.timeout = timeout


class PluginReportedError(BridgeError):
    """The plugin returned {"status": "error", ...} instead of raising."""

    def __init__(self, name: str, result: dict[str, Any]) -> None:
        detail = result.get("error") or result.get("message") or "plugin reported an error"
        super().__init__(str(detail))
        self.result = result
        self.error_type = result.get("error_type")


class ExecutionCanceled(BridgeError):
    """The run was cut off because the process is shutting down."""

    http_status = 503

    def __init__(self, name: str) -> None:
        super().__init__(f"Plugin '{name}' was canceled: the server is shutting down")


class WebhookFailed(BridgeError):
    """A plugin run that ended badly; `extra` holds the webhook response fields."""

    def __init__(
        self, http_status: int, message: str, fields: dict[str, Any], headers: dict[str, str]
    ) -> None:
        super().__init__(message)
        self.extra = {k: v for k, v in fields.items() if k != "message"}
        self.http_status = http_status
        self.headers = headers


class SignatureInvalid(BridgeError):
    """A webhook whose signature is missing, malformed, stale or wrong."""

    http_status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(f"Webhook signature rejected: {reason}")
        self.reason = reason


class Unauthorized(BridgeError):
    """No API key, or one that matches no configured key."""

    http_status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": 'Bearer realm="webhook-bridge"'}


class Forbidden(BridgeError):
    """A valid key without the scope the route needs, or a non-loopback client without keys."""

    http_status = 403


class PluginBusy(NoCapacity):
    """The plugin already runs `max_concurrency` deliveries."""

    http_status = 429

    def __init__(self, name: str, limit: int, retry_after: int) -> None:
        super().__init__(
            f"Plugin '{name}' is at its concurrency limit ({limit}); retry later", retry_after
        )


class DeliveryInProgress(BridgeError):
    """A delivery with the same idempotency key is still running."""

    http_status = 409

    def __init__(self, execution_id: str, retry_after: int) -> None:
        super().__init__(
            f"A delivery with this idempotency key is still running as "
            f"execution '{execution_id}'; retry later for its result"
        )
        self.execution_id = execution_id
        self.extra = {"execution_id": execution_id}
        self.headers = {"Retry-After": str(retry_after)}


class DeliveryError(BridgeError):
    """An alert notification a channel could not deliver (the receiver refused it, was
    down, or did not answer in time)."""


class AlertRuleNotFound(BridgeError):
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"Alert rule '{name}' not found (see GET /api/v1/alerts)")
        self.name = name
