from __future__ import annotations

import urllib.error

import pytest

from bridge.errors import PluginTimeout
from bridge.tracking.classify import classify


class FakeHTTPError(Exception):
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.response = type("R", (), {"status_code": status})()


class ReadTimeout(OSError):
    pass


@pytest.mark.parametrize(
    "exc,kind",
    [
        (PluginTimeout("p", 1), "timeout"),
        (TimeoutError(), "timeout"),
        (TimeoutError(), "timeout"),
        (ReadTimeout(), "timeout"),
        (ConnectionRefusedError(), "connection_error"),
        (urllib.error.URLError("down"), "connection_error"),
        (PermissionError(), "permission_denied"),
        (ValueError("x"), "validation_error"),
        (FileNotFoundError(), "not_found"),
        (FakeHTTPError(401), "unauthorized"),
        (FakeHTTPError(403), "forbidden"),
        (RuntimeError("connection reset by peer"), "connection_error"),
        (RuntimeError("something odd"), "unknown_error"),
    ],
)
def test_classification(exc, kind):
    assert classify(exc) == kind
