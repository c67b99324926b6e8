"""The ceiling: a bare Flask endpoint that parses the JSON body and answers.

Served by gunicorn with the bridge's own gunicorn.conf.py, so only the app differs.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, request


def create_app() -> Flask:
    """gunicorn entry: `gunicorn -c gunicorn.conf.py 'bench.bare:create_app()'`."""
    app = Flask(__name__)
    # gunicorn.conf.py's hooks call bridge.start_services and bridge.shutdown_app; there
    # is nothing to start or stop here.
    closed = threading.Event()
    closed.set()
    app.extensions["bridge.closed"] = closed
    app.extensions["bridge.services_started"] = True

    @app.post("/api/v1/webhook/<plugin>")
    def webhook(plugin: str) -> tuple[dict[str, Any], int]:
        data = request.get_json()
        return {
            "plugin": plugin,
            "status_code": 200,
            "data": {"ok": True},
            "fields": len(data),
        }, 200

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
