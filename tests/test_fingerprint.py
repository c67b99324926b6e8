"""Error fingerprints: real error messages normalised, and what makes two failures one
group or two."""

from __future__ import annotations

import pytest

from bridge.tracking.fingerprint import error_group, error_message, normalise, plugin_frame


@pytest.mark.parametrize(
    "message,normalised",
    [
        (
            "ValueError: invalid literal for int() with base 10: 'abc'",
            "ValueError: invalid literal for int() with base <n>: '<value>'",
        ),
        ("KeyError: 'customer_id'", "KeyError: '<value>'"),
        (
            "KeyError: 'order 17 not found in /var/data/orders-17.json'",
            "KeyError: 'order <n> not found in <path>'",
        ),
        (
            "ConnectionError: HTTPSConnectionPool(host='api.stripe.com', port=443): Max retries "
            "exceeded with url: /v1/charges/ch_3Nx (Caused by NewConnectionError('<urllib3."
            "connection.HTTPSConnection object at 0x7f3a2b1c4d90>: Failed to establish a new "
            "connection: [Errno 111] Connection refused'))",
            "ConnectionError: HTTPSConnectionPool(host='<value>', port=<n>): Max retries exceeded "
            "with url: <path> (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection "
            "object at <hex>>: Failed to establish a new connection: [Errno <n>] Connection "
            "refused'))",
        ),
        (
            "OSError: [Errno 28] No space left on device: '/srv/data/tmp/upload-8812.part'",
            "OSError: [Errno <n>] No space left on device: '<value>'",
        ),
        (
            "TimeoutError: connect to 10.0.3.17:5432 timed out after 30.5s",
            "TimeoutError: connect to <ip> timed out after <n>s",
        ),
        (
            "LookupError: user 3fa85f64-5717-4562-b3fc-2c963f66afa6 has no account",
            "LookupError: user <uuid> has no account",
        ),
        (
            "RuntimeError: commit deadbeefcafe1234 rejected at 2026-03-10T12:30:00Z",
            "RuntimeError: commit <hex> rejected at <time>",
        ),
        (
            "json.decoder.JSONDecodeError: Expecting value: line 1 column 5 (char 4)",
            "json.decoder.JSONDecodeError: Expecting value: line <n> column <n> (char <n>)",
        ),
        (
            "PermissionError: [Errno 13] Permission denied: 'C:\\\\data\\\\out.csv'",
            "PermissionError: [Errno <n>] Permission denied: '<value>'",
        ),
        (
            "requests.exceptions.HTTPError: 503 Server Error for url: https://hooks.example.com/x?id=9",
            "requests.exceptions.HTTPError: <n> Server Error for url: <url>",
        ),
        ("fe80::1ff:fe23:4567:890a unreachable", "<ip> unreachable"),
    ],
)
def test_variable_parts_are_normalised(message, normalised):
    assert normalise(message) == normalised


TRACE = """Traceback (most recent call last):
  File "/opt/bridge/bridge/runner.py", line 440, in _call
    result = plugin.handle()
  File "/srv/plugins/billing.py", line {line}, in {function}
    raise ValueError(f"invoice {{n}} not found")
  File "/usr/lib/python3.12/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
ValueError: invoice {n} not found
"""


def test_message_and_plugin_frame_from_a_traceback():
    text = TRACE.format(line=12, function="charge", n=5)
    assert error_message(text) == "ValueError: invoice 5 not found"
    assert plugin_frame(text) == "billing.py:charge"
    assert error_message("SignatureInvalid: bad signature") == "SignatureInvalid: bad signature"
    assert plugin_frame("no traceback") == ""


def test_one_group_for_the_same_error_at_the_same_place():
    a = error_group("billing", "validation_error", TRACE.format(line=12, function="charge", n=5))
    b = error_group("billing", "validation_error", TRACE.format(line=40, function="charge", n=77))
    assert a == b and len(a.fingerprint) == 16
    assert a.message == "ValueError: invoice <n> not found"
    for other in (
        error_group("shipping", "validation_error", TRACE.format(line=12, function="charge", n=5)),
        error_group("billing", "unknown_error", TRACE.format(line=12, function="charge", n=5)),
        error_group("billing", "validation_error", TRACE.format(line=12, function="refund", n=5)),
    ):
        assert other.fingerprint != a.fingerprint
