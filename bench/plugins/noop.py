"""Returns at once: the benchmark measures the bridge, not a plugin."""

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Answers at once without looking at its data."""

    def handle(self):
        return {"ok": True}
