"""gunicorn's gthread worker, with no thread ever waiting for a client's bytes.

gthread gives a connection to a thread once it has a byte to read, and the thread then
blocks until the client has sent the rest, with no deadline: twenty sockets trickling
their headers stalled every thread, and a slow body held the body budget all along.
Here a thread reads only what has already arrived (non-blocking). A request that is
whole (`Framing`), as nearly all are, goes on in that thread as in gthread; one that
is not goes back to the event loop, which receives the rest as it comes, holding no
thread, and then gives it to a thread whole:

- a request must arrive whole within `server.request_timeout` of the connection
  opening (of its first byte, on a kept-alive connection): a slower client gets 408;
- a body announced over `server.max_body_size` gets 413 at once, unread;
- the bytes of the requests a worker holds, from their first byte read until they
  are answered, are bounded by `server.max_receiving_size` (`InFlight`): past it,
  no request reads more than its first piece (TCP pushes back on the senders) until
  one is answered; only when all of them are still arriving does the oldest read on;
- a webhook goes on only within its plugin's share of the threads (`ThreadShares`);
  past it, it waits in the loop holding no thread, and gets 429 after
  `plugins.timeout` (at once if the worker holds `server.max_receiving_size`).

The errors gunicorn answers itself (400, 414, 431, ...) are written in the API's one
JSON error shape: gunicorn writes them through `gunicorn.util.write_error`, which the
worker replaces, in its own process (`answers.json_error_writer`).
"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import socket
import threading
import time
from functools import partial
from typing import Any
from urllib.parse import unquote

from gunicorn import http, util
from gunicorn.http.body import Body, ChunkedReader, LengthReader
from gunicorn.http.message import DEFAULT_MAX_HEADERFIELD_SIZE, MAX_HEADERS, MAX_REQUEST_LINE
from gunicorn.http.unreader import IterUnreader, SocketUnreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from bridge.api.webhook import blp as webhook_routes
from bridge.config import load
from bridge.errors import PluginBusy
from bridge.server.answers import bridge_error_bytes, error_bytes, json_error_writer
from bridge.server.framing import Framing
from bridge.server.shares import ThreadShares

# One read: 64 KiB stays below glibc's mmap threshold (128 KiB once post_fork sets it),
# so the buffer of a small request's read costs no mmap/munmap; the rest of a large
# body of known length is read up to 1 MiB at a time, as gunicorn's own reader does.
RECV_SIZE = 64 * 1024
MAX_RECV_SIZE = 1024 * 1024
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_WEBHOOK = re.compile(
    rb"(?:\r\n)?[!-~]+ (?:https?://[^/ ]*)?"
    + re.escape(f"{webhook_routes.url_prefix}/".encode())
    + rb"([^/?# ]+)[?# ]"
)
# What a thread hands back to the event loop instead of answering a request.
_INCOMPLETE, _WAITING, _BUSY, _TOO_LARGE = object(), object(), object(), object()


def _recv_size(conn: Conn) -> int:
    framing = conn.framing
    if framing is None or framing.body_end < 0:
        return RECV_SIZE
    return min(max(framing.body_end - len(conn.inbox), RECV_SIZE), MAX_RECV_SIZE)


class InFlight:
    """Bytes of the requests a worker holds: threads add what they read, the event
    loop what it reads, and takes a request's bytes off once it is answered."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self._lock = threading.Lock()

    @property
    def full(self) -> bool:
        return self.bytes >= self.limit

    def add(self, conn: Conn, size: int) -> None:
        with self._lock:
            self.bytes += size
        conn.held += size

    def remove(self, conn: Conn) -> None:
        with self._lock:
            self.bytes -= conn.held
        conn.held = 0


class ReceivedUnreader(SocketUnreader):
    """A connection's unreader that serves what was received for it before it reads
    the socket: gunicorn's parser reads a whole request without waiting on anyone. A
    read the framing scan did not foresee waits `timeout` seconds at most."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        super().__init__(sock)
        self.received = memoryview(b"")
        self.timeout = timeout

    def give(self, data: bytearray) -> None:
        self.received = memoryview(data)

    def chunk(self, size_hint: int | None = None) -> bytes:
        if not self.received:
            self.sock.settimeout(self.timeout)
            return super().chunk(size_hint)
        size = max(self.mxchunk, min(size_hint or 0, self.max_body_chunk))
        piece, self.received = self.received[:size], self.received[size:]
        return piece.tobytes()

    def take_all(self) -> bytes:
        """What was received but not parsed (a pipelined request), taken out."""
        data = self.take_buffered() + self.received.tobytes()
        self.received = memoryview(b"")
        return data


class Conn(TConn):
    """A client connection and the request it is sending."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.inbox = bytearray()
        self.framing: Framing | None = None
        self.deadline = 0.0
        self.given = False  # the request is whole and given to the parser
        self.continued = False  # "100 Continue" was sent for this request
        self.plugin: str | None = None  # a webhook's, for its plugin's share
        self.held = 0  # bytes of this request counted in the worker's InFlight

    def next_request(self, timeout: float) -> None:
        self.framing, self.deadline = None, time.monotonic() + timeout


class BufferingWorker(ThreadWorker):
    """gthread, with requests received whole before they are parsed (see the module)."""

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # The bridge's config; a plain Flask app (the benchmark's bare one) reads it too.
        config = self.wsgi.extensions.get("bridge.config") or load()
        server = config.server
        self.request_timeout = float(server.request_timeout)
        self.retry_after = config.runner.retry_after
        self.shares: ThreadShares[Conn] = ThreadShares(
            self.cfg.threads, float(config.plugins.timeout)
        )
        self.max_body = server.max_body_size
        self.inflight = InFlight(server.max_receiving_size)
        cfg = self.cfg
        fields = cfg.limit_request_fields
        fields = MAX_HEADERS if fields <= 0 or fields > MAX_HEADERS else fields
        field_size = cfg.limit_request_field_size
        field_size = field_size if field_size > 0 else DEFAULT_MAX_HEADERFIELD_SIZE
        line = cfg.limit_request_line
        line = MAX_REQUEST_LINE if line < 0 or line >= MAX_REQUEST_LINE else line or 1 << 20
        # Past this, gunicorn's parser refuses a head (414 or 431) from what it holds.
        self.max_head = fields * (field_size + 2) + 4 + line + 2
        self.receiving: dict[Conn, None] = {}  # waiting for bytes, oldest first
        self.paused: list[Conn] = []  # ... and not read while InFlight is full
        self.receiving_bytes = 0  # of InFlight's, held by requests still arriving
        self.stopping_since: float | None = None
        self.next_sweep = 0.0
        self.buffering = not (
            cfg.is_ssl
            or cfg.proxy_protocol != "off"
            or cfg.http2_cleartext != "off"
            or "h2" in cfg.http_protocols
        )
        if not self.buffering:
            self.log.warning(
                "TLS, HTTP/2 or the PROXY protocol is on: threads read requests as "
                "gthread does, so slow clients can hold them"
            )
        util.write_error = json_error_writer(self.wsgi)

    # -- gthread's entry points ----------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        if not self.buffering:
            return super().accept(listener)
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return None
        self.nr_conns += 1
        conn = Conn(self.cfg, sock, addr, listener.getsockname())
        conn.next_request(self.request_timeout)
        self._receive(conn)
        return None

    def on_client_socket_readable(self, conn: Conn, client: socket.socket) -> None:
        """A kept-alive connection's next request is arriving."""
        if self.buffering:
            conn.next_request(self.request_timeout)
        super().on_client_socket_readable(conn, client)

    def handle(self, conn: Conn) -> Any:
        """In a thread: read what has arrived; a whole request is parsed and answered
        here, anything else goes back to the event loop."""
        if not self.buffering:
            return super().handle(conn)
        if not conn.given:
            outcome = self._take_request(conn)
            if outcome is not None:
                return outcome
        conn.given = False
        return super().handle(conn)

    def finish_request(self, conn: Conn, fs: Any) -> None:
        """In the event loop, when a thread is done with a connection."""
        outcome = None if fs.cancelled() or fs.exception() else fs.result()
        if outcome is _WAITING:  # the share's waiting list has it now
            return
        if outcome is _INCOMPLETE:
            self._receive(conn)
            return
        if outcome is _TOO_LARGE:
            self._refuse(conn, error_bytes(self.wsgi, 413))
            return
        if outcome is _BUSY:
            self._refuse_busy(conn)
            return
        self._answered(conn)
        if conn.plugin is not None:
            for waiting in self.shares.release(conn.plugin):
                self._start(waiting)
            conn.plugin = None
        if outcome and conn.parser is not None:
            leftover = conn.parser.unreader.take_all()
            if leftover:  # a pipelined request, maybe whole: a thread reads it
                conn.inbox = bytearray(leftover)
                self.inflight.add(conn, len(leftover))
                conn.next_request(self.request_timeout)
                conn.sock.setblocking(False)
                self.enqueue_req(conn)
                return
        super().finish_request(conn, fs)

    def handle_request(self, req: Any, conn: Conn) -> bool:
        if conn.continued:  # else gunicorn sends a second "100 Continue"
            req._expected_100_continue = False
            conn.continued = False
        if self.buffering and isinstance(req.body.reader, ChunkedReader):
            # The request has arrived whole, but gunicorn decodes a chunked body only as
            # the app reads it: a malformed chunk (a size that is not hex, data without
            # its CRLF) surfaced inside the app as a 500. Decoded here, it is gunicorn's
            # 400 in the error shape, as every other framing error.
            body = req.body.read()
            req.body = Body(LengthReader(IterUnreader([body]), len(body)))
        return super().handle_request(req, conn)

    def murder_pending(self) -> None:
        """Close what outlived its deadline: a request half sent gets 408 first, a
        webhook that waited past its plugin's share 429. A stopping worker closes
        connections that sent nothing, as gthread closes kept-alive ones."""
        super().murder_pending()
        now = time.monotonic()
        if now < self.next_sweep:
            return
        self.next_sweep = now + 0.25
        if not self.alive:
            self.stopping_since = self.stopping_since or now
            if now - self.stopping_since >= STOP_KEEPALIVE_LINGER:
                for conn in [c for c in self.receiving if not c.inbox]:
                    conn.deadline = now
        for conn in [c for c in self.receiving if c.deadline <= now]:
            self._forget(conn)
            if not conn.inbox:
                self._close(conn)
                continue
            self.log.info("Request timeout from ip=%s", conn.client[0])
            message = (
                "The request did not arrive whole within server.request_timeout "
                f"({self.request_timeout:g}s)."
            )
            self._refuse(conn, error_bytes(self.wsgi, 408, message))
        for _, conn in self.shares.expired(now):
            self._refuse_busy(conn)

    # -- in a thread -------------------------------------------------------------------

    def _take_request(self, conn: Conn) -> Any:
        """Read what has arrived; None when the request is whole, admitted and given
        to the parser, else what the event loop is to do with the connection."""
        if conn.framing is None:
            conn.framing = Framing(self.max_head, self.max_body)
        while not conn.framing.feed(conn.inbox):
            if conn.inbox and self.inflight.full:  # the event loop reads on, or not
                return _INCOMPLETE
            try:
                data = conn.sock.recv(_recv_size(conn))
            except (BlockingIOError, InterruptedError):
                self._continue(conn)
                return _INCOMPLETE
            except OSError:
                data = b""
            if not data:  # the client went away
                return False
            conn.inbox += data
            self.inflight.add(conn, len(data))
        if conn.framing.too_large:
            return _TOO_LARGE
        match = _WEBHOOK.match(conn.inbox)
        if match is not None:
            name = match.group(1).decode("latin-1")
            conn.plugin = unquote(name) if "%" in name else name
            may_wait = not self.inflight.full
            if not self.shares.admit(conn.plugin, conn, time.monotonic(), may_wait):
                return _WAITING if may_wait else _BUSY
        self._give(conn)
        return None

    def _continue(self, conn: Conn) -> None:
        """Tell a client that waits for it (Expect: 100-continue) to send its body."""
        framing = conn.framing
        if framing and framing.expects_continue and framing.head_end >= 0 and not conn.continued:
            conn.continued = True
            with contextlib.suppress(OSError):
                conn.sock.send(_CONTINUE)

    def _give(self, conn: Conn) -> None:
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.parser.unreader = ReceivedUnreader(conn.sock, self.request_timeout)
        conn.parser.unreader.give(conn.inbox)
        conn.inbox = bytearray()
        conn.data_ready = conn.given = True

    # -- in the event loop -----------------------------------------------------------

    def _receive(self, conn: Conn) -> None:
        """Wait for the connection's bytes: its first ones, or the rest of a request."""
        self.receiving[conn] = None
        self.receiving_bytes += conn.held
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._readable, conn))

    def _readable(self, conn: Conn, _sock: socket.socket) -> None:
        if not conn.inbox:  # the first bytes of a request: a thread reads them
            self._forget(conn)
            self.enqueue_req(conn)
            return
        if self.inflight.full and (
            conn is not next(iter(self.receiving))
            or self.inflight.bytes > self.receiving_bytes  # others will be answered
        ):
            self.poller.unregister(conn.sock)
            self.paused.append(conn)
            return
        try:
            data = conn.sock.recv(_recv_size(conn))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away
            self._forget(conn)
            self._close(conn)
            return
        conn.inbox += data
        self.inflight.add(conn, len(data))
        self.receiving_bytes += len(data)
        assert conn.framing is not None
        if not conn.framing.feed(conn.inbox):
            self._continue(conn)
            return
        self._forget(conn)
        self.enqueue_req(conn)  # whole: a thread takes it from here

    def _start(self, conn: Conn) -> None:
        """A webhook that waited for its plugin's share: to a thread, now."""
        self._give(conn)
        self.enqueue_req(conn)

    def _forget(self, conn: Conn) -> None:
        """`conn` no longer waits for bytes: it is whole, answered or gone."""
        del self.receiving[conn]
        self.receiving_bytes -= conn.held
        if conn in self.paused:
            self.paused.remove(conn)
        else:
            self.poller.unregister(conn.sock)

    def _answered(self, conn: Conn) -> None:
        """`conn`'s request is answered (or never will be): its bytes are off."""
        self.inflight.remove(conn)
        if not self.paused:
            return
        if not self.inflight.full:
            resumed, self.paused = self.paused, []
        elif self.inflight.bytes <= self.receiving_bytes:  # only requests still arriving
            oldest = next(iter(self.receiving))
            if oldest not in self.paused:
                return
            self.paused.remove(oldest)
            resumed = [oldest]
        else:
            return
        for paused in resumed:
            self.poller.register(paused.sock, selectors.EVENT_READ, partial(self._readable, paused))

    def _refuse_busy(self, conn: Conn) -> None:
        """429: the plugin's share of the threads stayed taken (or nothing may wait)."""
        counters = self.wsgi.extensions.get("bridge.counters")
        if counters is not None:
            counters.inc("runner.plugin_busy")
        assert conn.plugin is not None
        busy = PluginBusy(conn.plugin, self.shares.per_plugin, self.retry_after)
        self._refuse(conn, bridge_error_bytes(self.wsgi, busy))

    def _refuse(self, conn: Conn, answer: bytes) -> None:
        """Write `answer` and close, without a thread."""
        conn.sock.setblocking(False)
        with contextlib.suppress(OSError):
            util.write_nonblock(conn.sock, answer)
        # What the client sent and nobody read would make close() reset the connection,
        # and the client might lose the answer: read it off first, a little.
        for _ in range(4):
            try:
                if not conn.sock.recv(RECV_SIZE):
                    break
            except OSError:
                break
        self._close(conn)

    def _close(self, conn: Conn) -> None:
        self._answered(conn)
        self.nr_conns -= 1
        conn.close()
