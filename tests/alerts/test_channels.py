"""Each channel delivers to a real receiver on loopback: the webhook's JSON with a
Standard Webhooks signature the `standardwebhooks` package verifies, a Slack-style
message, an email over STARTTLS with login and both parts, a log line. A receiver that
is down or hangs is retried, recorded as failed, and delays no other channel."""

from __future__ import annotations

import base64
import logging
import threading
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bridge.alerts.delivery import Delivery, Outcome
from bridge.alerts.message import Notification, runs_link
from bridge.alerts.rules import parse

pytestmark = pytest.mark.slow

AT = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes!!!!").decode()


def _setup(channels: dict, environ: dict | None = None):
    chans, rules = parse(
        channels,
        [
            {
                "name": "github-failing",
                "plugin": "github",
                "metric": "failure_rate",
                "window": "15m",
                "threshold": "20%",
                "severity": "critical",
                "channels": list(channels),
            }
        ],
        environ=environ or {},
    )
    rule = rules[0]
    note = Notification(
        "fired", rule, "github", 0.5, AT, AT, runs_link("http://bridge:8001", rule, "github", AT)
    )
    return chans, note


def _deliver(chans, note, failed=None, **kw):
    delivery = Delivery(
        chans, kw.pop("timeout", 5.0), kw.pop("attempts", 1), 0.05, failed or (lambda n, o: None)
    )
    try:
        return [f.result(30) for f in delivery.submit(note, list(chans))]
    finally:
        delivery.shutdown()


def test_webhook_posts_the_notification_signed_as_standard_webhooks(receiver):
    chans, note = _setup(
        {"hook": {"type": "webhook", "url": receiver.url, "secret": "env:HOOK_SECRET"}},
        {"HOOK_SECRET": SECRET},
    )
    assert _deliver(chans, note) == [Outcome("hook", True, 1)]
    (got,) = receiver.received
    payload = Webhook(SECRET).verify(got.body, got.headers)  # raises if the signature is bad
    assert payload["event"] == "fired" and payload["rule"] == "github-failing"
    assert payload["plugin"] == "github" and payload["severity"] == "critical"
    assert (payload["value"], payload["threshold"], payload["window_seconds"]) == (0.5, 0.2, 900)
    assert payload["since"] == "2026-03-10T12:30:00.000000Z"
    assert payload["link"].startswith("http://bridge:8001/api/v1/executions?")
    assert "plugin=github" in payload["link"] and "status=failed" in payload["link"]
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"another key, not the right one!!").decode()).verify(
            got.body, got.headers
        )


def test_slack_gets_a_text_message_with_value_threshold_window_and_link(receiver):
    chans, note = _setup({"chat": {"type": "slack", "url": receiver.url, "channel": "#ops"}})
    assert _deliver(chans, note)[0].ok
    message = receiver.received[0].json
    assert message["channel"] == "#ops"
    text = message["text"]
    assert "FIRING" in text and "github-failing" in text and "github" in text
    assert "50.0%" in text and "threshold 20.0%" in text and "0:15:00" in text
    assert "<http://bridge:8001/api/v1/executions?" in text


def test_email_over_starttls_with_login_has_plain_and_html_parts(smtp):
    box, port = smtp
    chans, note = _setup(
        {
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": port,
                "security": "starttls",
                "username": "alerts",
                "password": "env:SMTP_PASSWORD",
                "from": "bridge@example.com",
                "to": ["oncall@example.com"],
            }
        },
        {"SMTP_PASSWORD": "s3cret-password"},
    )
    assert _deliver(chans, note) == [Outcome("mail", True, 1)]
    (msg,) = box.wait_for(1)
    assert msg["To"] == "oncall@example.com"
    assert "github-failing" in msg["Subject"] and "FIRING" in msg["Subject"]
    plain = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "50.0%" in plain and "http://bridge:8001/api/v1/executions?" in plain
    assert "<a href=" in html and "50.0%" in html


def test_email_with_a_wrong_password_fails_and_says_so(smtp):
    box, port = smtp
    chans, note = _setup(
        {
            "mail": {
                "type": "email",
                "host": "127.0.0.1",
                "port": port,
                "username": "alerts",
                "password": "env:SMTP_PASSWORD",
                "from": "bridge@example.com",
                "to": "oncall@example.com",
            }
        },
        {"SMTP_PASSWORD": "wrong"},
    )
    (outcome,) = _deliver(chans, note)
    assert not outcome.ok and "535" in outcome.error
    assert box.messages == []


def test_log_channel_writes_one_structured_line(caplog):
    chans, note = _setup({"ops": {"type": "log", "level": "error"}})
    with caplog.at_level(logging.INFO, logger="bridge.alerts"):
        assert _deliver(chans, note)[0].ok
    (line,) = [r for r in caplog.records if r.name == "bridge.alerts"]
    assert line.levelno == logging.ERROR
    text = line.getMessage()
    assert text.startswith("Alert fired: rule=github-failing plugin=github severity=critical")
    assert "value=0.5 threshold=0.2 window_seconds=900.0" in text


def test_a_receiver_that_fails_is_retried_then_recorded_as_failed(receiver):
    receiver.status = 503
    chans, note = _setup({"hook": {"type": "webhook", "url": receiver.url}})
    failures: list[Outcome] = []
    (outcome,) = _deliver(chans, note, failed=lambda n, o: failures.append(o), attempts=3)
    assert len(receiver.received) == 3  # tried three times
    assert outcome == failures[0] and not outcome.ok and outcome.attempts == 3
    assert "503" in outcome.error


def test_deliveries_queued_at_shutdown_are_recorded_as_failed_and_it_returns(receiver):
    receiver.hang = threading.Event()
    chans, note = _setup({"slow": {"type": "webhook", "url": receiver.url}})
    failures: list[Outcome] = []
    delivery = Delivery(chans, 1.0, 1, 0.05, lambda n, o: failures.append(o))
    first, *queued = (delivery.submit(note, ["slow"])[0] for _ in range(3))
    deadline = time.monotonic() + 5
    while not first.running():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    stopping = threading.Thread(target=delivery.shutdown, daemon=True)
    stopping.start()
    stopping.join(5)
    assert not stopping.is_alive(), "shutdown hung with deliveries queued"
    assert all(f.cancelled() for f in queued)
    assert "timed out" in first.result(5).error  # the one under way ends on its own
    dropped = [o for o in failures if o.attempts == 0]
    assert dropped == 2 * [Outcome("slow", False, 0, "not sent: the bridge shut down first")]
    assert len(failures) == 3


def test_a_hanging_receiver_times_out_and_delays_no_other_channel(receiver):
    hanging = receiver
    hanging.hang = threading.Event()
    from .receivers import start_http_receiver

    healthy = start_http_receiver()
    try:
        chans, note = _setup(
            {
                "slow": {"type": "webhook", "url": hanging.url},
                "fast": {"type": "slack", "url": healthy.url},
            }
        )
        failures: list[Outcome] = []
        delivery = Delivery(chans, 1.0, 2, 0.05, lambda n, o: failures.append(o))
        try:
            slow, fast = delivery.submit(note, ["slow", "fast"])
            assert fast.result(5).ok and len(healthy.received) == 1
            # the healthy channel's message arrived while the hanging one still hung
            assert not slow.done()
            outcome = slow.result(10)
        finally:
            delivery.shutdown()
        assert not outcome.ok and outcome.attempts == 2 and "timed out" in outcome.error
        assert failures == [outcome]
    finally:
        healthy.server.shutdown()
        healthy.server.server_close()
