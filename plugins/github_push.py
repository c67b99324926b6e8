"""Summarises a GitHub push event; shows per-method handlers and plugin settings."""

from webhook_bridge.plugin import BasePlugin


class Plugin(BasePlugin):
    """Summarise a GitHub push: repository, branch and commit count."""

    methods = ["POST"]  # GET, PUT, ... answer 405
    timeout = "10s"  # overridable in config.yaml: plugins.settings.github_push.timeout

    def post(self):
        repository = (self.data.get("repository") or {}).get("full_name", "unknown")
        ref = self.data.get("ref", "")
        branch = ref.rsplit("/", 1)[-1] if ref else ""
        commits = self.data.get("commits") or []
        if not isinstance(commits, list):
            return {
                "status": "error",
                "error": "commits must be a list",
                "error_type": "validation_error",
            }
        return {"repository": repository, "branch": branch, "commits": len(commits)}
