from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    max_attempts = 3
    backoff = "10ms"

    def handle(self):
        if self.context["attempt"] < 3:
            raise ConnectionError("connection refused")
        return {"attempt": self.context["attempt"]}
