"""Development entry point.

`flask --app app run` finds `create_app` here and calls it (config from
`$BRIDGE_CONFIG` or `config.yaml`); `python app.py --config my.yaml` does the same
with an explicit file. Production runs gunicorn on `wsgi:app` (`make run`).
"""

from __future__ import annotations

import argparse
import atexit
import sys
from typing import Any

from flask import Flask

import bridge
from bridge.auth import exposure_warning, local_only_notice
from bridge.errors import ConfigError


def create_app(config: Any = None) -> Flask:
    """The app with the development server's logging; its services (background jobs,
    closing stale runs) start with the first request it serves, so a `flask` CLI
    command that builds it starts nothing."""
    try:
        app = bridge.create_app(config)
    except ConfigError as exc:  # one line naming the key, for `flask ...` as for `python app.py`
        raise SystemExit(f"Invalid configuration: {exc}") from None
    bridge.configure_logging(app.extensions["bridge.config"].logging)
    app.before_request(lambda: bridge.start_services(app))
    atexit.register(bridge.shutdown_app, app)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description="Webhook Bridge development server")
    parser.add_argument("--config", help="config file (default: $BRIDGE_CONFIG or config.yaml)")
    parser.add_argument("--host", help="default: server.host from the config")
    parser.add_argument("--port", type=int, help="default: server.port from the config")
    args = parser.parse_args()
    app = create_app(args.config)
    server = app.extensions["bridge.config"].server
    warning = exposure_warning(app.extensions["bridge.config"], args.host or server.host)
    notice = warning or local_only_notice(app.extensions["bridge.config"])
    if notice:
        print(notice, file=sys.stderr)
    app.run(host=args.host or server.host, port=args.port or server.port, threaded=True)


if __name__ == "__main__":
    main()
