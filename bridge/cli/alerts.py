"""`flask --app app bridge alerts`: the rules and their state per plugin, as GET
/api/v1/alerts shows them; `--events` adds the latest alert events."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from bridge.clock import rfc3339
from bridge.storage.alerts import AlertStore


@click.command("alerts")
@click.option(
    "--events", type=click.IntRange(0, 1000), default=0, help="Also show the latest N events."
)
@with_appcontext
def alerts(events: int) -> None:
    """Show the alert rules, each plugin's state, and the firing alerts."""
    service = current_app.extensions["bridge.alerts"]
    overview = service.overview()
    if not overview["rules"]:
        click.echo("No alert rules configured (alerts.rules in config.yaml).")
    for item in overview["rules"]:
        rule = item["rule"]
        silenced = item["silenced_until"]
        click.echo(
            f"{rule.name}: {rule.metric} of {rule.plugin} ({rule.severity}) -> "
            f"{', '.join(rule.channels)}"
            + (f" [silenced until {rfc3339(silenced)}]" if silenced else "")
        )
        for s in item["states"]:
            since = f" since {rfc3339(s.since)}" if s.since and s.state != "ok" else ""
            click.echo(f"  {s.plugin}: {s.state}{since} (value {s.value})")
    click.echo(f"Firing: {len(overview['firing'])}")
    if events:
        for e in AlertStore(service.storage.require()).events(None, events):
            click.echo(f"{rfc3339(e.at)} {e.kind} {e.rule} {e.plugin} {e.channel}".rstrip())
