from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from .receivers import HttpReceiver, MailBox, self_signed_cert, start_http_receiver


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = start_http_receiver()
    yield r
    if r.hang is not None:
        r.hang.set()
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def smtp(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[MailBox, int]]:
    """A real SMTP server on loopback with STARTTLS (a self-signed certificate the
    bridge is told to trust, as SSL_CERT_FILE tells OpenSSL) and a login of
    alerts / s3cret-password."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = certificate
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login,
            auth_data.password,
        ) == (b"alerts", b"s3cret-password")
        return AuthResult(success=ok, handled=False)  # False: the server answers 535

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = MailBox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN"],  # smtplib retries a refused PLAIN as LOGIN
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()
