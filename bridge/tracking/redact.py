"""Redaction: named fields of a payload are stored as "[REDACTED]"; the plugin sees them.

A key matches when a configured name appears anywhere in it, ignoring case, "-" and "_":
`token` hides `access_token`, `X-Auth-Token` and `refreshToken` alike.
"""

from __future__ import annotations

import json
from typing import Any

MASK = "[REDACTED]"
MAX_DEPTH = 64


def _normal(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "")


class Redactor:
    def __init__(self, fields: list[str]) -> None:
        self.needles = tuple(n for n in (_normal(f) for f in fields) if n)

    def sensitive(self, key: Any) -> bool:
        name = _normal(str(key))
        return any(needle in name for needle in self.needles)

    def might_match(self, text: str) -> bool:
        """A cheap test on the JSON text, so that most payloads skip the walk."""
        flat = text.lower().replace("-", "").replace("_", "")
        return any(needle in flat for needle in self.needles)

    def json(self, value: Any, text: str) -> str:
        """`text` (the JSON of `value`), or the JSON of its redacted copy."""
        if not self.needles or not self.might_match(text):
            return text
        return json.dumps(self(value), ensure_ascii=False, default=str)

    def __call__(self, value: Any, depth: int = 0) -> Any:
        """A copy of `value` with sensitive keys masked, at any depth of dicts and lists."""
        if not self.needles or depth > MAX_DEPTH:
            return value
        if isinstance(value, dict):
            return {k: MASK if self.sensitive(k) else self(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v, depth + 1) for v in value]
        return value
