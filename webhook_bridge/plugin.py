"""`from webhook_bridge.plugin import BasePlugin` keeps working for existing plugins."""

from bridge.plugin import HTTP_METHODS, BasePlugin

__all__ = ["HTTP_METHODS", "BasePlugin"]
