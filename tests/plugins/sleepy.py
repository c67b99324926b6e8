import time

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Sleeps for `seconds` and reports its process id."""

    def handle(self):
        import os

        time.sleep(float(self.data.get("seconds", 0)))
        return {"pid": os.getpid()}
