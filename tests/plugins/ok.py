from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Answers with its data."""

    def handle(self):
        return {"echo": self.data, "method": self.http_method}
