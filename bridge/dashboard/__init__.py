"""The dashboard: one page at /dashboard that draws the run history from the JSON API.

The page is a template and static files; every figure on it comes from the same API
that curl uses (/api/v1/...), read by the browser with the user's API key, which the
page keeps in sessionStorage only (no cookie, so no request forgery can ride on it).
With no key configured, the page opens for local clients only, as the API does.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template

from bridge import __version__
from bridge.auth import local_client

# Everything the page loads comes from the bridge itself: no CDN, no external font.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
)


@bp.get("")
@bp.get("/")
def page() -> Response:
    keys = current_app.extensions["bridge.auth"].keys
    if not keys and not local_client():
        body = render_template("local_only.html")
        return Response(body, 403, {"Content-Security-Policy": CSP})
    body = render_template("dashboard.html", version=__version__, needs_key=bool(keys))
    return Response(body, 200, {"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
