"""Query strings in access lines are redacted as stored input is."""

from __future__ import annotations

import pytest

from bridge.server.access_log import redact_query
from bridge.tracking.redact import Redactor

REDACTOR = Redactor(["password", "token", "secret"])


@pytest.mark.parametrize(
    ("query", "logged"),
    [
        ("a=1&b=2", "a=1&b=2"),
        ("order=42&access_token=abc&x=", "order=42&access_token=[REDACTED]&x="),
        ("Pass%77ord=abc&my+secret=x", "Pass%77ord=[REDACTED]&my+secret=[REDACTED]"),
        ("tag=env:prod&tag=client_secret:abc", "tag=env:prod&tag=client_secret:[REDACTED]"),
        ("tag=api_token%3Dabc", "tag=api_token=[REDACTED]"),
        ("token", "token"),  # a name without a value shows nothing
    ],
)
def test_values_of_names_the_redactor_hides_are_masked(query, logged):
    assert redact_query(query, REDACTOR) == logged


def test_without_redact_fields_the_query_is_logged_as_it_came():
    assert redact_query("token=abc", Redactor([])) == "token=abc"
