"""Health: one check per component, for load balancers and people."""

from __future__ import annotations

import time
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge import __version__, clock
from bridge.api.schemas import HealthSchema

blp = Blueprint("health", __name__, description="Is the bridge working?")


def health_report() -> tuple[dict[str, Any], int]:
    ext = current_app.extensions
    runner, registry, storage = ext["bridge.runner"], ext["bridge.registry"], ext["bridge.storage"]
    started_at, started = ext["bridge.started"]
    run = runner.snapshot()
    plugins = registry.known()  # never an import: /health answers while a plugin loads
    missing = registry.missing_dirs()
    checks: dict[str, Any] = {
        "runner": {
            "status": "unhealthy"
            if run["closing"]
            else ("degraded" if run["busy"] >= run["max_workers"] else "healthy"),
            **run,
        },
        "plugins": {
            "status": "healthy"
            if all(p.is_available for p in plugins) and not missing
            else "degraded",
            "total": len(plugins),
            "unavailable": [p.name for p in plugins if not p.is_available],
            "missing_dirs": [str(d) for d in missing],
        },
    }
    tracking = storage.status()
    if storage.store is None:
        checks["storage"] = {
            "status": "degraded",
            "message": tracking["disabled_reason"],
            **tracking,
        }
    else:
        # Degraded, not unhealthy: webhooks still run while records cannot be stored.
        if storage.outage:  # known away: no wait for the server's connect timeout
            ok, message = False, f"The database is unreachable: {storage.outage}"
        else:
            ok, message = storage.store.health()
            if not ok:
                storage.went_away(message)  # with a spool: records go there at once
        unsaved = len(ext["bridge.tracker"].unsaved)
        spooled = storage.spool.depth if storage.spool is not None else 0
        if ok and unsaved:
            ok, message = False, f"{unsaved} final records wait to be written"
        elif ok and spooled:
            ok, message = False, f"{spooled} spooled run records wait to be replayed"
        checks["storage"] = {
            "status": "healthy" if ok else "degraded",
            "type": storage.store.kind,
            "message": message,
            "unsaved_records": unsaved,
            **tracking,
        }
    scheduler = ext.get("bridge.scheduler")
    if scheduler is not None:
        checks["scheduler"] = scheduler.health()
    states = [c["status"] for c in checks.values()]
    overall = (
        "unhealthy" if "unhealthy" in states else "degraded" if "degraded" in states else "healthy"
    )
    body = {
        "status": overall,
        "version": __version__,
        "uptime_seconds": round(time.monotonic() - started, 3),
        "started_at": started_at,
        "checks": checks,
    }
    return body, 503 if overall == "unhealthy" else 200


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="A component is unhealthy")
    def get(self) -> Any:
        """Overall status, version, uptime and one check per component."""
        return health_report()


def started_marker() -> tuple[Any, float]:
    return clock.utcnow(), time.monotonic()
