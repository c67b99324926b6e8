"""What a notification says: what fired, the plugin, the value against the threshold,
the window, since when, and a link to the failing runs; as JSON, plain text and HTML."""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from bridge.alerts.rules import DURATION_METRICS, Rule
from bridge.clock import rfc3339
from bridge.storage.alerts import FIRED, REMINDED, RESOLVED, TEST
from bridge.storage.rollups import Aggregate

_VERB = {
    FIRED: "FIRING",
    REMINDED: "STILL FIRING",
    RESOLVED: "RESOLVED",
    TEST: "TEST",
}


def shown(rule: Rule, value: float | None) -> str:
    """A value as people read it: a share as %, durations in s, counts whole."""
    if value is None:
        return "n/a"
    if rule.metric == "failure_rate":
        return f"{value * 100:.1f}%"
    if rule.metric in DURATION_METRICS or rule.metric == "no_runs":
        return f"{value:.3g}s"
    return f"{value:g}"


def _span(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


@dataclass(frozen=True)
class Notification:
    kind: str  # fired, reminded, resolved, test
    rule: Rule
    plugin: str
    value: float | None
    since: datetime | None
    at: datetime
    link: str

    @property
    def title(self) -> str:
        return (
            f"[{_VERB[self.kind]}] {self.rule.name} ({self.rule.severity}): "
            f"{self.rule.metric} of {self.plugin}"
        )

    @property
    def threshold_text(self) -> str:
        if self.rule.metric == "no_runs":
            return f"no run for {_span(self.rule.window)}"
        return shown(self.rule, self.rule.threshold)

    @property
    def summary(self) -> str:
        rule = self.rule
        what = (
            f"last run {shown(rule, self.value)} ago"
            if rule.metric == "no_runs"
            else f"{rule.metric} {shown(rule, self.value)}"
        )
        since = f", since {rfc3339(self.since)}" if self.since else ""
        return f"{what} (threshold {self.threshold_text}) over the last {_span(rule.window)}{since}"

    def text(self) -> str:
        return f"{self.title}\n{self.summary}\nRuns: {self.link}\n"

    def html(self) -> str:
        e = html.escape
        return (
            f"<p><strong>{e(self.title)}</strong></p><p>{e(self.summary)}</p>"
            f'<p><a href="{e(self.link)}">The runs</a></p>'
        )

    def to_json(self) -> dict[str, Any]:
        rule = self.rule
        return {
            "event": self.kind,
            "rule": rule.name,
            "severity": rule.severity,
            "plugin": self.plugin,
            "metric": rule.metric,
            "value": self.value,
            "threshold": rule.window if rule.metric == "no_runs" else rule.threshold,
            "window_seconds": rule.window,
            "since": rfc3339(self.since) if self.since else None,
            "at": rfc3339(self.at),
            "summary": self.summary,
            "link": self.link,
        }


def runs_link(
    base: str, rule: Rule, plugin: str, now: datetime, window: Aggregate | None = None
) -> str:
    """The executions API filtered to the plugin's runs of the window. Where failures
    made the rule fire, those of their status: `failed`, or `timeout` when the window's
    (`window`, if known) are all timeouts; when they are both, every run of the window
    (the list has no filter for two statuses), as for a streak of consecutive failures,
    which is the newest runs."""
    query: dict[str, str] = {"since": rfc3339(now - timedelta(seconds=rule.window))}
    if plugin and plugin != "*":
        query["plugin"] = plugin
    if rule.error_type:  # its runs, whatever their status (a timeout's is `timeout`)
        query["error_type"] = rule.error_type
    elif rule.metric in ("failure_rate", "error_count"):
        if window is None or not window.timeout:
            query["status"] = "failed"
        elif not window.failed:
            query["status"] = "timeout"
    return f"{base.rstrip('/')}/api/v1/executions?{urlencode(query)}"
