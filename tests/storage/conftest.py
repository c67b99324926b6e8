"""The store contract's fixtures: `store` is a fresh, empty store of each backend.

A new backend joins the contract tests by adding its name and a context manager that
makes a fresh, empty database and yields the settings of a store on it (its
`storage.<type>` section) to BACKENDS (see databases.py); nothing else here or in the
tests names a backend.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.config import from_dict
from bridge.storage import open_store
from bridge.storage.base import ExecutionStore

from .databases import mysql_database, postgresql_schema, sqlite_file
from .runs import sixty_runs

BACKENDS: dict[str, Callable[[Path], contextlib.AbstractContextManager[dict[str, Any]]]] = {
    "sqlite": sqlite_file,
    "postgresql": postgresql_schema,
    "mysql": mysql_database,
}


@pytest.fixture
def write_errors() -> list[BaseException]:
    """Errors of writes nobody waited for; a test that expects none asserts so."""
    return []


@pytest.fixture
def make_store(
    tmp_path: Path, write_errors: list[BaseException]
) -> Iterator[Callable[[str], ExecutionStore]]:
    """`make_store(backend)` opens a store on one fresh database per test; a second
    call opens another store on the same database (as a second process would)."""
    opened: list[ExecutionStore] = []
    databases: dict[str, dict[str, Any]] = {}

    with contextlib.ExitStack() as stack:

        def make(backend: str) -> ExecutionStore:
            if backend not in databases:
                databases[backend] = stack.enter_context(BACKENDS[backend](tmp_path))
            config = from_dict(
                {
                    "storage": {"type": backend, backend: databases[backend]},
                    "scheduler": {"enabled": False},
                }
            )
            store = open_store(config, lambda action, exc: write_errors.append(exc))
            opened.append(store)
            return store

        yield make
        for store in reversed(opened):
            store.close()


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store(make_store: Callable[[str], ExecutionStore], backend: str) -> ExecutionStore:
    return make_store(backend)


@pytest.fixture
def history(store: ExecutionStore) -> ExecutionStore:
    """The store holding sixty_runs()."""
    assert store.insert_many(sixty_runs()) == 60
    return store


@pytest.fixture
def backend_app(make_app: Callable[..., Any], backend: str, tmp_path: Path) -> Iterator[Any]:
    """An app (create_app, scheduler off, the test plugins) whose store is a fresh
    database of each backend."""
    with BACKENDS[backend](tmp_path) as section:
        yield make_app(
            storage={
                "type": backend,
                backend: section,
                "spool_path": str(tmp_path / "spool"),
            }
        )
