"""Execution and trace ids: UUIDv7 (RFC 9562), a millisecond timestamp then random bits.

Ids made close in time sort together, so a new record's entries in the id, trace and
attempt indexes land on the pages the previous records just wrote, not on a random
page of a large index (fewer pages read, fewer written to the WAL per commit).
"""

from __future__ import annotations

import random
import time
import uuid

_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48 bits of Unix milliseconds, 74 random bits. The bits come from
    `random` (reseeded in each forked worker), not the OS: an id names a record and
    guards nothing, and a system call per id was a measurable share of a request."""
    return uuid7_from(time.time_ns() // 1_000_000, random.getrandbits(74))


def uuid7_from(ms: int, rand: int) -> uuid.UUID:
    """The UUIDv7 of Unix milliseconds `ms` and 74 random bits `rand` (for imports and
    generated histories, whose records were made in the past)."""
    rand_a = (rand >> 62) & 0xFFF
    rand_b = rand & ((1 << 62) - 1)
    return uuid.UUID(int=(ms & ((1 << 48) - 1)) << 80 | _VERSION | rand_a << 64 | _VARIANT | rand_b)
