from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    def post(self):
        return "created"
