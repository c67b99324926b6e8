from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    def handle(self):
        return {"status": "error", "error": "upstream rejected the order"}
