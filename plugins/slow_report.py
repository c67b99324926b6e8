"""A long-running plugin that cooperates with the bridge's cancellation flag."""

import time

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Works in steps of 100 ms for `seconds` (default 2); stops early if cancelled."""

    timeout = "5s"

    def handle(self):
        seconds = float(self.data.get("seconds", 2))
        steps = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.cancelled:  # timed out or shutting down: stop cleanly
                return {"status": "error", "error": "cancelled", "steps": steps}
            time.sleep(0.1)
            steps += 1
        return {"steps": steps}
