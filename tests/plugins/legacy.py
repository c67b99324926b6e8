from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    def run(self):
        return {"legacy": True, "name": self.data.get("name")}
