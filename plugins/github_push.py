"""Summarises a GitHub push event; shows per-method handlers, settings and reported errors.

GitHub sends one payload shape for every push: to a branch or a tag, creating or deleting
it, forced or not. A created tag carries no commits, a deleted ref has `head_commit: null`.
"""

from __future__ import annotations

from typing import Any

from webhook_bridge.plugin import BasePlugin

_REF_KINDS = (("refs/heads/", "branch"), ("refs/tags/", "tag"))


def _invalid(message: str) -> dict[str, str]:
    return {"status": "error", "error": message, "error_type": "validation_error"}


def _ref_name(ref: str) -> dict[str, str]:
    """`{"ref_type": "branch", "branch": ...}` or the same for a tag; branch names may hold
    `/` (`feature/login`, `dependabot/npm_and_yarn/lodash-4.17.21`), so only the prefix goes."""
    for prefix, kind in _REF_KINDS:
        if ref.startswith(prefix):
            return {"ref_type": kind, kind: ref.removeprefix(prefix)}
    return {"ref_type": "other"}


class Plugin(BasePlugin):
    """Summarise a GitHub push: repository, branch or tag, what happened to it, commits."""

    methods = ["POST"]  # GET, PUT, ... answer 405
    timeout = "10s"  # overridable in config.yaml: plugins.settings.github_push.timeout

    def post(self) -> dict[str, Any]:
        event = self._github_event()
        if event and event != "push":
            # A new webhook's first delivery is a `ping`; answering it keeps the hook green.
            return {"event": event, "ignored": True}
        ref = self.data.get("ref")
        if not isinstance(ref, str) or not ref.startswith("refs/"):
            return _invalid("ref must be a full git ref such as refs/heads/main")
        commits = self.data.get("commits") or []
        if not isinstance(commits, list):
            return _invalid("commits must be a list")
        head = self.data.get("head_commit") or {}
        return {
            "repository": (self.data.get("repository") or {}).get("full_name", "unknown"),
            "ref": ref,
            **_ref_name(ref),
            "created": bool(self.data.get("created")),
            "deleted": bool(self.data.get("deleted")),
            "forced": bool(self.data.get("forced")),
            "commits": len(commits),
            "head_commit": head.get("id"),
            "pusher": (self.data.get("pusher") or {}).get("name"),
        }

    def _github_event(self) -> str:
        """The `X-GitHub-Event` header, '' when the request is not from GitHub."""
        headers = self.context.get("headers") or {}
        return next((v for k, v in headers.items() if k.lower() == "x-github-event"), "")
