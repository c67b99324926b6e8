"""The list's cursor, the same opaque text on every backend: the start (microseconds
since the epoch) and the insertion number of the last run of a page, base64-encoded.

A backend decodes only what it made; anything else raises InvalidCursor (422), never a
database error.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta

from bridge.errors import InvalidCursor

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


def encode_cursor(start_us: int, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{start_us}:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """`(start_us, seq)` from a cursor `encode_cursor` made; anything else is invalid."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor(cursor) from None
    start_text, _, seq_text = raw.partition(":")
    # Plain ASCII digits only (int() would take "1_0", " 1" and "+1"), and no more of
    # them than a 64-bit integer holds.
    if not (
        start_text.removeprefix("-").isdigit()
        and seq_text.isdigit()
        and len(start_text) <= 19
        and len(seq_text) <= 19
    ):
        raise InvalidCursor(cursor)
    start_us, seq = int(start_text), int(seq_text)
    if not (_FIRST_US <= start_us <= _LAST_US and seq < 2**63):  # a start no run can have
        raise InvalidCursor(cursor)
    return start_us, seq


def to_us(value: datetime) -> int:
    """Microseconds since the epoch, exactly (no float on the way)."""
    return (value - EPOCH) // ONE_US


_FIRST_US = to_us(datetime.min.replace(tzinfo=UTC))
_LAST_US = to_us(datetime.max.replace(tzinfo=UTC))


def decode_time_cursor(cursor: str) -> tuple[datetime, int]:
    """`(start, seq)` for a backend that stores times as times: a start no datetime
    can hold is not one the store made."""
    start_us, seq = decode_cursor(cursor)
    try:
        return EPOCH + start_us * ONE_US, seq
    except OverflowError:
        raise InvalidCursor(cursor) from None
