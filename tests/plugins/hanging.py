from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    timeout = "0.3s"

    def handle(self):
        self.cancel_event.wait(5)
        return {"finished": True}
