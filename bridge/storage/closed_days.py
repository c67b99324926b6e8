"""The daily rollups of closed days, merged once and kept between calls.

A stats window of 90 days or an analysis of 30 days against the 30 before reads
thousands of daily rollups, and decoding each one's histogram is what costs (tens of
microseconds a row). A day stops changing once it is over and merged, so the merge of
a window's closed days is kept, per store, and used again while it still holds: each
use first sums, in the database, the runs the window's rollups count (one indexed
SUM), and a rollup rewritten, deleted by retention or copied in moves that sum and
makes the merge be done again. Today's rollup is always read afresh.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import datetime
from typing import TypeVar
from weakref import WeakKeyDictionary

from bridge.storage.base import DAY, Reader, Span
from bridge.storage.rollups import Aggregate

K = TypeVar("K", bound=Hashable)
Merged = dict[K, Aggregate]
T = TypeVar("T")

KEPT = 32  # windows kept per store: a few windows by a few plugin filters


class _Kept:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: OrderedDict[Hashable, tuple[int, object]] = OrderedDict()


_stores: WeakKeyDictionary[object, _Kept] = WeakKeyDictionary()
_stores_lock = threading.Lock()


def merged(
    store: object,
    reader: Reader,
    what: Hashable,
    start: datetime,
    end: datetime,
    plugin: str | None,
    merge: Callable[[Reader], T],
    copy: Callable[[T], T],
) -> T:
    """`merge(reader)` of the daily rollups of [start, end): whole closed days, so `end`
    is at most the start of the day the daily rollups reach into. Kept
    under `what` for this store. The caller gets `copy` of it, to change as it likes."""
    with _stores_lock:
        kept = _stores.get(store)
        if kept is None:
            kept = _stores[store] = _Kept()
    key = (what, start, end, plugin)
    check = reader.rollup_count([Span(DAY, start, end, plugin)])
    with kept.lock:
        hit = kept.items.get(key)
        if hit is not None and hit[0] == check:
            kept.items.move_to_end(key)
            return copy(hit[1])  # type: ignore[arg-type]
    value = merge(reader)
    with kept.lock:
        kept.items[key] = (check, value)
        kept.items.move_to_end(key)
        while len(kept.items) > KEPT:
            kept.items.popitem(last=False)
    return copy(value)


def copied(agg: Aggregate) -> Aggregate:
    fresh = Aggregate()
    fresh.merge(agg)
    return fresh


def copied_each(value: Merged[K]) -> Merged[K]:
    return {key: copied(agg) for key, agg in value.items()}
