"""Alert rules and channels are checked at start-up: each mistake stops the bridge with
one line naming the rule (or channel) and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.alerts.rules import parse
from bridge.config import from_dict
from bridge.errors import ConfigError

OPS = {"ops": {"type": "log"}}
GOOD = {
    "name": "fail",
    "metric": "failure_rate",
    "window": "5m",
    "threshold": "20%",
    "channels": ["ops"],
}


def _load(rules, channels=OPS):
    return from_dict({"alerts": {"channels": channels, "rules": rules}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"metric": "latency"}, "alerts.rules.fail.metric: expected one of failure_rate"),
        ({"window": "5 minutes"}, "alerts.rules.fail.window: expected a duration"),
        ({"window": "0s"}, "alerts.rules.fail.window: expected a duration > 0"),
        ({"threshold": 1.5}, "alerts.rules.fail.threshold: expected a share in (0, 1]"),
        ({"threshold": None}, "alerts.rules.fail.threshold: missing"),
        ({"min_runs": 0}, "alerts.rules.fail.min_runs: expected a whole number >= 1"),
        ({"for": "soon"}, "alerts.rules.fail.for: expected a duration"),
        ({"repeat": -1}, "alerts.rules.fail.repeat: expected a duration"),
        ({"severity": "high"}, "alerts.rules.fail.severity: expected one of info, warning"),
        ({"channels": ["pager"]}, "alerts.rules.fail.channels: no such channel"),
        ({"channels": []}, "alerts.rules.fail.channels: expected a list of channel names"),
        ({"error_type": "timeout"}, "alerts.rules.fail.error_type: only error_count takes"),
        (
            {"metric": "error_count", "threshold": 3, "error_type": "Card Declined"},
            "alerts.rules.fail.error_type: expected one of timeout, connection_error",
        ),
        ({"treshold": 3}, "alerts.rules.fail.treshold: unknown key"),
        ({"name": "bad name!"}, "alerts.rules.[0].name: expected a name"),
    ],
)
def test_a_bad_rule_is_one_line_naming_the_rule_and_key(change, message):
    with pytest.raises(ConfigError) as caught:
        _load([{**GOOD, **change}])
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("error_type", ["timeout", "card_declined"])
def test_error_count_takes_a_built_in_error_type_or_one_a_plugin_names(error_type):
    config = _load([{**GOOD, "metric": "error_count", "threshold": 3, "error_type": error_type}])
    _, (rule,) = parse(config.alerts.channels, config.alerts.rules)
    assert rule.metric == "error_count" and rule.error_type == error_type


def test_duplicate_rule_names_are_refused():
    with pytest.raises(ConfigError, match=r"alerts.rules.fail.name: duplicate rule name"):
        _load([GOOD, GOOD])


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"type": "pager"}, "alerts.channels.c.type: expected one of webhook, slack"),
        ({"type": "webhook", "url": "ftp://x"}, "alerts.channels.c.url: expected an http"),
        ({"type": "webhook", "url": "http://x", "secret": "whsec_abc"}, "alerts.channels.c.secret"),
        (
            {
                "type": "email",
                "host": "smtp",
                "from": "a@b",
                "to": ["c@d"],
                "password": "pw",
                "username": "u",
            },
            "alerts.channels.c.password: write env:NAME",
        ),
        ({"type": "email", "host": "smtp", "from": "a@b", "to": []}, "alerts.channels.c.to"),
        (
            {"type": "email", "host": "smtp", "from": "a@b", "to": ["c@d"], "security": "tls"},
            "alerts.channels.c.security: expected starttls, ssl or none",
        ),
        ({"type": "slack", "url": "http://x", "icon": ":x:"}, "alerts.channels.c.icon: unknown"),
    ],
)
def test_a_bad_channel_is_one_line_naming_the_channel_and_key(channel, message):
    with pytest.raises(ConfigError) as caught:
        _load([], {"c": channel})
    assert str(caught.value).startswith(message)
    assert "whsec_abc" not in str(caught.value) and "'pw'" not in str(caught.value)


def test_a_secret_from_an_unset_variable_names_the_variable(monkeypatch):
    monkeypatch.delenv("ALERT_HOOK_SECRET", raising=False)
    channel = {"type": "webhook", "url": "http://x", "secret": "env:ALERT_HOOK_SECRET"}
    with pytest.raises(ConfigError, match=r"alerts\.channels\.c\.secret: unset or empty"):
        _load([], {"c": channel})


def test_a_good_config_reads_shares_durations_and_defaults():
    from bridge.alerts.rules import parse

    config = _load(
        [
            GOOD,
            {
                "name": "slow",
                "plugin": "github",
                "metric": "p99_duration",
                "window": "1h",
                "threshold": "1500ms",
                "for": "5m",
                "channels": ["ops"],
            },
            {"name": "quiet", "metric": "no_runs", "window": "6h", "channels": ["ops"]},
        ]
    )
    _, (fail, slow, quiet) = parse(config.alerts.channels, config.alerts.rules)
    assert (fail.plugin, fail.threshold, fail.window, fail.min_runs) == ("*", 0.2, 300.0, 1)
    assert (slow.threshold, slow.for_, slow.resolve_after) == (1.5, 300.0, 300.0)
    assert quiet.metric == "no_runs" and quiet.severity == "warning"


def test_the_bridge_will_not_start_with_a_bad_rule(tmp_path):
    import subprocess
    import sys

    (tmp_path / "config.yaml").write_text(
        "alerts:\n  channels: {ops: {type: log}}\n  rules:\n"
        "    - {name: fail, metric: failure_rate, window: 5m, threshold: 7, channels: [ops]}\n"
    )
    out = subprocess.run(
        [sys.executable, "app.py", "--config", str(tmp_path / "config.yaml")],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == (
        "Invalid configuration: alerts.rules.fail.threshold: expected a share in (0, 1], "
        "such as 0.2 or 20% 7"
    )


def test_a_secret_that_is_not_standard_webhooks_base64_is_refused(monkeypatch):
    monkeypatch.setenv("ALERT_HOOK_SECRET", "not base64!")
    channel = {"type": "webhook", "url": "http://x", "secret": "env:ALERT_HOOK_SECRET"}
    with pytest.raises(ConfigError, match=r"alerts\.channels\.c\.secret: expected whsec_"):
        _load([], {"c": channel})


def test_the_readme_example_is_a_valid_config(monkeypatch):
    import re

    import yaml

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = re.search(r"## Alerts.*?```yaml\n(.*?)```", readme, re.S).group(1)
    monkeypatch.setenv("ALERT_WEBHOOK_SECRET", "whsec_" + "QUJD" * 8)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://chat.example.com/hooks/x")
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret")
    config = from_dict(yaml.safe_load(block))
    assert len(config.alerts.rules) == 5 and len(config.alerts.channels) == 4
