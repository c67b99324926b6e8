"""A plugin in the original webhook_bridge style: a class with run()."""

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Greets `name` (original-API style)."""

    def run(self):
        return {"message": f"Hello, {self.data.get('name', 'world')}!"}
