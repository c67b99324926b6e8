"""The HTTP API: flask-smorest blueprints, the error shape and the offline docs page."""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin
from flask import Blueprint, Flask, send_from_directory
from flask_smorest import Api
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException

from bridge import __version__
from bridge.api import (
    access,
    alerts,
    errors,
    executions,
    health,
    insight,
    metrics,
    plugins,
    webhook,
)
from bridge.api.schemas import ErrorSchema
from bridge.auth import SECURITY_SCHEMES, required_scope

DOCS_ASSETS = "/docs/assets/"


class BridgeApi(Api):
    """flask-smorest's Api with the bridge's error shape and error schema."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):  # type: ignore[override]
        return errors.handle_http_exception(error)


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


class SecurityDocs(BasePlugin):
    """Marks every management route as needing an API key, with its 401 and 403."""

    prefixes = (
        "/api/v1/executions",
        "/api/v1/plugins",
        "/api/v1/alerts",
        "/api/v1/access",
        "/metrics",
    )

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        if not path or not operations or not path.startswith(self.prefixes):
            return
        for method, operation in operations.items():
            scope = required_scope(method, path)
            operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            responses = operation.setdefault("responses", {})
            responses.setdefault(
                "401",
                _error_response(
                    "No API key, or not a valid one (not sent to loopback clients while no key "
                    "is configured)"
                ),
            )
            responses.setdefault(
                "403",
                _error_response(
                    f"The key lacks the '{scope}' scope, or no key is configured and the client "
                    "is not local"
                ),
            )


def _docs_assets() -> Blueprint:
    """Swagger UI's files from the installed package, so /docs needs no internet."""
    bp = Blueprint("docs_assets", __name__)

    @bp.get(f"{DOCS_ASSETS}<path:filename>")
    def asset(filename: str):
        return send_from_directory(str(swagger_ui_path), filename, max_age=3600)

    return bp


def init_app(app: Flask) -> None:
    app.config.update(
        API_TITLE="Webhook Bridge",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL=DOCS_ASSETS,
        API_SPEC_OPTIONS={
            "info": {"description": "Run Python plugins from webhooks; every run is tracked."},
        },
    )
    api = BridgeApi(app, spec_kwargs={"extra_plugins": [SecurityDocs()]})
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    for module in (webhook, plugins, insight, executions, alerts, health, access):
        api.register_blueprint(module.blp)
    if app.extensions["bridge.config"].metrics.enabled:
        api.register_blueprint(metrics.blp)
    app.register_blueprint(_docs_assets())
    errors.init_app(app)
    app.extensions["bridge.api"] = api
