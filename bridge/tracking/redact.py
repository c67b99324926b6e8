"""Redaction: named fields of a payload are stored as "[REDACTED]"; the plugin sees them.

A key matches when a configured name appears anywhere in it, ignoring case, "-" and "_":
`token` hides `access_token`, `X-Auth-Token` and `refreshToken` alike.
"""

from __future__ import annotations

import json
from typing import Any

MASK = "[REDACTED]"
_CONTAINERS = (dict, list, tuple)


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

    def __call__(self, value: Any) -> Any:
        """A copy of `value` with sensitive keys masked, at every depth of dicts and
        lists: walked with a stack, not recursion, so no nesting is too deep for it."""
        if not self.needles:
            return value
        holder: list[Any] = [value]
        stack: list[tuple[Any, Any, Any]] = [(holder, 0, value)]
        while stack:
            parent, slot, item = stack.pop()
            if isinstance(item, dict):
                copy: Any = {}
                for k, v in item.items():
                    if self.sensitive(k):
                        copy[k] = MASK
                    else:
                        copy[k] = v
                        if isinstance(v, _CONTAINERS):
                            stack.append((copy, k, v))
            else:
                copy = list(item)
                stack.extend((copy, i, v) for i, v in enumerate(copy) if isinstance(v, _CONTAINERS))
            parent[slot] = copy
        return holder[0]
