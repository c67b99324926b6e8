from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Signed by GitHub: the secret comes from the environment."""

    signature = {"type": "github", "secret": "env:TEST_GITHUB_SECRET"}
    methods = ["POST"]

    def handle(self):
        return {"got": self.data}
