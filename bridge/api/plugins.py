"""Plugins resource: what is in the plugin folders and whether each one loads."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.schemas import ErrorSchema, PluginListSchema, PluginSchema
from bridge.errors import PluginNotFound
from bridge.registry import LoadedPlugin, PluginRegistry

blp = Blueprint(
    "plugins",
    __name__,
    url_prefix="/api/v1/plugins",
    description="The plugins found in the configured folders.",
)


def _describe(plugin: LoadedPlugin) -> dict[str, Any]:
    return {
        "name": plugin.name,
        "description": plugin.description,
        "supported_methods": plugin.supported_methods,
        "is_available": plugin.is_available,
        "error": plugin.error,
        "path": str(plugin.path),
        "last_modified": plugin.last_modified,
    }


def _registry() -> PluginRegistry:
    return current_app.extensions["bridge.registry"]


@blp.route("")
class Plugins(MethodView):
    @blp.response(200, PluginListSchema)
    def get(self) -> dict[str, Any]:
        """List every plugin, with the load error of those that are unavailable."""
        plugins = [_describe(p) for p in _registry().all()]
        return {"plugins": plugins, "total_count": len(plugins)}


@blp.route("/<name>")
class PluginByName(MethodView):
    @blp.response(200, PluginSchema)
    @blp.alt_response(404, schema=ErrorSchema, description="No plugin of that name")
    def get(self, name: str) -> dict[str, Any]:
        """One plugin."""
        plugin = _registry().lookup(name)
        if plugin is None:
            raise PluginNotFound(name)
        return _describe(plugin)
