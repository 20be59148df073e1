"""The backends the contract suite runs against: one entry per backend in ``BACKENDS``.

A backend gives each test a database of its own, opens it as a store (again after the store was
closed, as a restart does), and removes it afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore
from storage.store import Store
from tests.postgres import TestSchema


class Backend(Protocol):
    async def open(self) -> Store:
        """A store on this test's database: the same data each time it is called."""

    async def remove(self) -> None:
        """Leave nothing of this test's database behind (its stores are closed by then)."""


class SQLiteBackend:
    def __init__(self, workdir: Path) -> None:
        self._path = workdir / "store" / "threadscribe.db"

    async def open(self) -> Store:
        return await SQLiteStore.open(self._path)

    async def remove(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            self._path.with_name(self._path.name + suffix).unlink(missing_ok=True)


class PostgresBackend:
    """A schema of the test's own on the test server (``tests/postgres.py``): skipped when there
    is no server, failed under ``CI=true``."""

    def __init__(self, workdir: Path) -> None:
        self._schema = TestSchema()

    async def open(self) -> Store:
        # Small pools: many tests may run at once against one server.
        return await PostgresStore.open(await self._schema.create(), min_size=1, max_size=4)

    async def remove(self) -> None:
        await self._schema.drop()


#: Each backend's name and how to make one in a test's temporary directory.
BACKENDS: dict[str, Callable[[Path], Backend]] = {
    "sqlite": SQLiteBackend,
    "postgresql": PostgresBackend,
}
