"""Webhook Bridge: HTTP requests run Python plugins; every run is tracked.

The flow: webhook blueprint -> plugin registry -> runner -> tracker -> store.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import threading
from pathlib import Path
from typing import Any

from flask import Flask

__version__ = "0.1.0"

log = logging.getLogger(__name__)


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")
    logging.getLogger("bridge").setLevel(level.upper())
    logging.getLogger("plugins").setLevel(level.upper())


def create_app(config: Any = None) -> Flask:
    """The application factory: load config, start each service, register the API.

    `config` may be a Config, a mapping (as config.yaml would hold), a path, or None
    for `$BRIDGE_CONFIG` / `config.yaml`.
    """
    from bridge import api
    from bridge.api.body_budget import BodyBudget
    from bridge.api.health import started_marker
    from bridge.auth import Authenticator
    from bridge.config import Config, from_dict, load
    from bridge.idempotency import Deliveries
    from bridge.registry import PluginRegistry
    from bridge.runner import Runner
    from bridge.scheduler import Scheduler
    from bridge.tracking import create_tracker

    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, dict):
        cfg = from_dict(config, base_dir=os.getcwd())
    else:
        cfg = load(config if isinstance(config, str | Path) else None)
    _configure_logging(cfg.logging.level)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = cfg.server.max_body_size
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["bridge.config"] = cfg
    app.extensions["bridge.trusted_proxies"] = [
        ipaddress.ip_network(p, strict=False) for p in cfg.server.trusted_proxies
    ]
    app.extensions["bridge.started"] = started_marker()
    app.extensions["bridge.body_budget"] = BodyBudget(
        cfg.server.max_inflight_body_size, cfg.runner.retry_after
    )

    Authenticator(cfg).init_app(app)
    tracker = create_tracker(cfg)
    tracker.init_app(app)
    PluginRegistry(cfg).init_app(app)
    Runner(cfg, tracker).init_app(app)
    Deliveries(cfg, tracker).init_app(app)
    api.init_app(app)
    Scheduler(cfg, tracker).init_app(app)
    atexit.register(shutdown_app, app)
    return app


def shutdown_app(app: Flask, timeout: float | None = None) -> None:
    """Let in-flight runs finish (up to `timeout`), cancel the rest, stop jobs, close.

    A second call (gunicorn's worker_exit after the SIGTERM handler's) waits for the
    first to finish, so that the process does not exit with the store still open."""
    ext = app.extensions
    mine = threading.Event()
    closed: threading.Event = ext.setdefault("bridge.closed", mine)
    cfg = ext["bridge.config"]
    wait = float(cfg.server.graceful_timeout) if timeout is None else timeout
    if closed is not mine:
        closed.wait(wait + 5)
        return
    try:
        ext["bridge.runner"].shutdown(wait)
        ext["bridge.scheduler"].shutdown()
        store = ext["bridge.tracker"].store
        if store is not None:
            store.close()
    finally:
        mine.set()
