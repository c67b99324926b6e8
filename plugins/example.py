"""Echo plugin: answers with what it was sent. A starting point for your own."""

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Echoes the request data back, with the method it came with."""

    def handle(self):
        self.logger.info("example received %d fields", len(self.data))
        return {"status": "success", "method": self.http_method, "received": self.data}
