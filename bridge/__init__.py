"""Webhook Bridge: HTTP requests run Python plugins; every run is tracked.

The flow: webhook view -> dispatcher -> plugin registry -> runner -> tracker (the one
end of every run, and its `RunFinished` event) -> store.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
from pathlib import Path
from typing import Any

from flask import Flask, Response

__version__ = "0.1.0"

log = logging.getLogger(__name__)


class BridgeFlask(Flask):
    def make_default_options_response(self) -> Response:
        """OPTIONS: 204 with the Allow header, where Flask answers 200 with an empty
        text/html page."""
        response = super().make_default_options_response()
        response.status_code = 204
        response.headers.pop("Content-Type", None)
        return response


def configure_logging(settings: Any) -> None:
    """The entry points' logging set-up (never the factory's: an app built by a test or
    a CLI command leaves the process's logging alone). `settings`: `config.logging`."""
    from bridge import logs
    from bridge.config import flush_warnings

    logs.configure(settings.level, settings.format)
    flush_warnings()


def create_app(config: Any = None) -> Flask:
    """The application factory: load config, build each service, register the API.

    It starts nothing (no thread, no job, no exit hook): `start_services` does that
    when the app serves. `config` may be a Config, a mapping (as config.yaml would
    hold), a path, or None for `$BRIDGE_CONFIG` / `config.yaml`.
    """
    from bridge import api, cli, dashboard
    from bridge.alerts import Alerts
    from bridge.api.body_budget import BodyBudget
    from bridge.api.health import started_marker
    from bridge.auth import Authenticator
    from bridge.config import Config, from_dict, load
    from bridge.counters import Counters
    from bridge.dispatcher import Dispatcher
    from bridge.events import Events
    from bridge.idempotency import Deliveries
    from bridge.registry import PluginRegistry
    from bridge.runner import Runner
    from bridge.scheduler import Scheduler
    from bridge.storage import open_storage
    from bridge.tracking.metrics import MetricsCache
    from bridge.tracking.tracker import Tracker

    if isinstance(config, Config):
        cfg = config
    elif isinstance(config, dict):
        cfg = from_dict(config, base_dir=os.getcwd())
    else:
        cfg = load(config if isinstance(config, str | Path) else None)

    app = BridgeFlask(__name__)
    # Werkzeug answers a path with "//" by a 308 redirect to the merged one, an HTML
    # page: unmerged, such a path matches nothing and is the API's JSON 404.
    app.url_map.merge_slashes = False
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

    counters, events, storage = Counters(), Events(), open_storage(cfg)
    for service in (counters, events, storage):
        service.init_app(app)
    MetricsCache().init_app(app)
    if cfg.metrics.enabled:
        from bridge.prometheus import PrometheusMetrics

        PrometheusMetrics().init_app(app)
    Authenticator(cfg).init_app(app)
    registry = PluginRegistry(cfg)
    registry.init_app(app)
    tracker = Tracker(cfg, storage, events)
    tracker.init_app(app)
    runner = Runner(cfg, tracker, counters)
    # A plugin's class may set a longer timeout than the config's: a run of it is not
    # stale before its own longest time (every plugin in the folders, as the leader
    # closing stale rows may never have loaded the plugin another worker runs).
    tracker.longest_run = lambda: max(
        [cfg.longest_run, *(runner.longest_run(p) for p in registry.all() if p.is_available)]
    )
    runner.init_app(app)
    deliveries = Deliveries(cfg, storage)
    deliveries.init_app(app)
    Dispatcher(registry, runner, tracker, deliveries, counters).init_app(app)
    alerts = Alerts(cfg, storage, registry.names)
    alerts.init_app(app)
    Scheduler(cfg, storage, tracker, alerts).init_app(app)
    api.init_app(app)
    dashboard.init_app(app)
    cli.init_app(app)
    return app


def start_services(app: Flask) -> None:
    """What runs while the app serves: close runs that dead processes left open, and
    start the background jobs (in one process). Called once per serving process by
    gunicorn's worker hook or the development server; a second call does nothing."""
    ext, marker = app.extensions, object()
    if ext.setdefault("bridge.services_started", marker) is not marker:
        return

    def store_ready() -> None:
        ext["bridge.tracker"].leases.start()
        ext["bridge.tracker"].recover_stale()
        ext["bridge.scheduler"].start()

    store_ready()
    ext["bridge.storage"].keep_trying(opened=store_ready)


def shutdown_app(app: Flask, timeout: float | None = None) -> None:
    """Let in-flight runs finish (up to `timeout`), cancel the rest, stop jobs, close.

    A second call (gunicorn's worker_exit after the SIGTERM handler's) waits for the
    first to finish, so that the process does not exit with the store still open."""
    ext = app.extensions
    mine = threading.Event()
    closed: threading.Event = ext.setdefault("bridge.closed", mine)
    wait = float(ext["bridge.config"].server.graceful_timeout) if timeout is None else timeout
    if closed is not mine:
        closed.wait(wait + 5)
        return
    try:
        ext["bridge.runner"].shutdown(wait)
        ext["bridge.scheduler"].shutdown()
        ext["bridge.alerts"].shutdown()
        ext["bridge.tracker"].leases.stop()
        ext["bridge.tracker"].unsaved.close()
        ext["bridge.storage"].close()
    finally:
        mine.set()
