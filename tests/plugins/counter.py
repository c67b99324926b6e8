import os
import time

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Appends one line per run to the file `log` names (a side effect tests can count),
    after sleeping `seconds`; fails when `fail` is set."""

    def handle(self):
        time.sleep(float(self.data.get("seconds", 0)))
        with open(self.data["log"], "a") as f:
            f.write(f"{os.getpid()} {self.context['execution_id']}\n")
        if self.data.get("fail"):
            raise ValueError("asked to fail")
        return {"ran": True}
