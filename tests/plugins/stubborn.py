import time

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Ignores the cancellation flag: its thread outlives the timeout."""

    timeout = "0.2s"

    def handle(self):
        time.sleep(1.0)
        return {"finished": True}
