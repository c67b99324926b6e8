"""Real receivers on loopback for the alert channels' tests: an HTTP server that records
every request (the webhook and Slack channels' receiver), and an SMTP server (aiosmtpd)
with STARTTLS and login that records every message."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Answers `status` to every POST (or, with `hang`, answers nothing until closed),
    and records what it got."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    status: int = 200
    hang: threading.Event | None = None
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The requests, once at least `count` have arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count and time.monotonic() < deadline:
                self.arrived.wait(deadline - time.monotonic())
            return list(self.received)


def start_http_receiver() -> HttpReceiver:
    holder: dict[str, HttpReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = holder["r"]
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with me.arrived:
                me.received.append(Received(self.path, dict(self.headers.items()), body))
                me.arrived.notify_all()
            if me.hang is not None:
                me.hang.wait(30)
                return
            self.send_response(me.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder["r"] = HttpReceiver(server)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return holder["r"]


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class MailBox:
    """aiosmtpd's handler: keeps each message with who logged in to send it."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []
        self.arrived = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.original_content, policy=policy.default)
        with self.arrived:
            self.messages.append(msg)  # type: ignore[arg-type]
            self.logins.append(getattr(session, "login_data", b"") or b"")
            self.arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.messages) < count and time.monotonic() < deadline:
                self.arrived.wait(deadline - time.monotonic())
            return list(self.messages)
