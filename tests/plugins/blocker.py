import time
from pathlib import Path

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Hangs, ignoring cancellation, until the file `release` names exists (10 s at most)."""

    timeout = "0.2s"

    def handle(self):
        deadline = time.monotonic() + 10
        while not Path(self.data["release"]).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return {"released": True}
