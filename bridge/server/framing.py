"""Where a request ends, found in its bytes as they arrive.

The worker receives a request whole before a thread parses it (`worker.py`). This
scan only decides when that is: when the head is complete and the body it announces
has arrived, or, for a body announced larger than `max_body`, that it is `too_large`.
Anything it does not follow (a head too large, a malformed length or chunk, both
Content-Length and Transfer-Encoding, a bare LF) makes the request `ready` at once:
gunicorn's parser, which reads the same bytes, answers it with its error from the
bytes already received. The scan never decides what the request means.
"""

from __future__ import annotations

import re

_HEAD_END = b"\r\n\r\n"
_FRAMING_FIELD = re.compile(
    rb"\r\n(content-length|transfer-encoding|expect):[ \t]*([^\r]*)", re.IGNORECASE
)
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,16})[ \t]*(?:;[^\r\n]*)?")
_MAX_CHUNK_LINE = 8192


def _bare_lf(buf: bytes | bytearray, start: int, end: int) -> bool:
    """Whether a line of buf[start:end] ends with LF alone (a CR before `start` counts)."""
    return buf.count(b"\n", start, end) != buf.count(b"\r\n", max(0, start - 1), end)


class Framing:
    """The scan of one request: `feed` it the bytes received so far, in order."""

    __slots__ = (
        "body_end",
        "chunk_at",
        "chunked_size",
        "expects_continue",
        "head_end",
        "max_body",
        "max_head",
        "ready",
        "scanned",
        "too_large",
    )

    def __init__(self, max_head: int, max_body: int) -> None:
        self.max_head = max_head
        self.max_body = max_body
        self.scanned = 0  # how far the head was searched
        self.head_end = -1  # where the body starts, once the head is complete
        self.body_end = -1  # where a body of known length ends
        self.chunk_at = -1  # where the next chunk-size line starts
        self.chunked_size = 0
        self.expects_continue = False
        self.ready = False  # a thread may take the request now
        self.too_large = False  # its body is announced larger than max_body

    def feed(self, buf: bytes | bytearray) -> bool:
        """Whether the request is ready for a thread, given `buf` (everything received
        for it so far)."""
        if self.ready:
            return True
        if self.head_end < 0 and not self._head(buf):
            return self.ready
        if self.body_end >= 0:
            self.ready = len(buf) >= self.body_end
        elif self.chunk_at >= 0:
            self._chunks(buf)
        return self.ready

    def _head(self, buf: bytes | bytearray) -> bool:
        start = max(0, self.scanned - 3)
        end = buf.find(_HEAD_END, start)
        self.scanned = len(buf) if end < 0 else end + 4
        if _bare_lf(buf, start, self.scanned):
            self.ready = True  # gunicorn refuses it (400)
            return False
        if end < 0:
            self.ready = len(buf) > self.max_head  # gunicorn refuses it (414 or 431)
            return False
        self.head_end = end + 4
        lengths, codings = [], []
        for name, value in _FRAMING_FIELD.findall(buf, 0, end + 2):
            name = name.lower()
            if name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                codings.append(value)
            elif value.strip().lower() == b"100-continue":
                self.expects_continue = True
        if codings:
            if lengths or len(codings) > 1 or codings[0].strip().lower() != b"chunked":
                self.ready = True
            else:
                self.chunk_at = self.head_end
            return True
        if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
            self.ready = True
            return True
        length = int(lengths[0]) if lengths else 0
        if length > self.max_body:
            self.ready = self.too_large = True
        else:
            self.body_end = self.head_end + length
        return True

    def _chunks(self, buf: bytes | bytearray) -> None:
        at = self.chunk_at
        while True:
            line_end = buf.find(b"\r\n", at, at + _MAX_CHUNK_LINE)
            if line_end < 0:
                if len(buf) - at >= _MAX_CHUNK_LINE:
                    self.ready = True
                break
            match = _CHUNK_SIZE.fullmatch(buf, at, line_end)
            if match is None:
                self.ready = True
                break
            size = int(match.group(1), 16)
            if size == 0:  # the last chunk, then trailers up to an empty line
                end = buf.find(_HEAD_END, line_end)
                self.ready = end >= 0 or len(buf) - line_end > self.max_head
                break
            if self.chunked_size + size > self.max_body:
                self.ready = self.too_large = True
                break
            data_end = line_end + 2 + size
            if len(buf) < data_end + 2:
                break
            if buf[data_end : data_end + 2] != b"\r\n":
                self.ready = True
                break
            self.chunked_size += size
            at = data_end + 2
        self.chunk_at = at
