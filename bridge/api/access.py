"""Access: what the presented API key may do, so that a client (the dashboard) shows only
the actions it can take, and learns at once whether a key is valid."""

from __future__ import annotations

from typing import Any

from flask import current_app, g
from flask.views import MethodView
from flask_smorest import Blueprint

from bridge.api.schemas import AccessSchema
from bridge.auth import SCOPES

blp = Blueprint(
    "access",
    __name__,
    url_prefix="/api/v1/access",
    description="The scopes of the API key presented.",
)


@blp.route("")
class Access(MethodView):
    @blp.response(200, AccessSchema)
    def get(self) -> dict[str, Any]:
        """The key's name and scopes (every scope for a local client while no key is
        configured); 401 for a key that is not valid."""
        if not current_app.extensions["bridge.auth"].keys:
            return {"key": None, "scopes": list(SCOPES), "local_only": True}
        return {"key": g.api_key, "scopes": g.api_scopes, "local_only": False}
