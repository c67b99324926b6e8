"""Storage backends behind one interface (`ExecutionStore`); SQLite is the default."""

from __future__ import annotations

from collections.abc import Callable

from bridge.config import Config
from bridge.storage.base import ExecutionStore


def open_store(config: Config, on_error: Callable[[str, BaseException], None]) -> ExecutionStore:
    """The store named by `storage.type`; raises StorageError if it cannot be opened."""
    from bridge.storage.sqlite import SQLiteStore

    return SQLiteStore(config, on_error)
