from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    def handle(self):
        raise ValueError("bad input: amount must be positive")
