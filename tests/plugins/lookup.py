from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Fails with a message holding the request's order id; succeeds without one."""

    def handle(self):
        order = self.data.get("order")
        if order is not None:
            self.find(order)
        return {"found": None}

    def find(self, order):
        raise KeyError(f"order {order} not found in /var/data/orders-{order}.json")
