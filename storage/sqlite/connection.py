"""The SQLite file: opening and migrating it, one transaction at a time, and the one place where
SQLite's errors become the store's (:mod:`storage.store`)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import aiosqlite

from storage.sqlite.lock import ProcessLock
from storage.sqlite.migrations import MIGRATIONS
from storage.store import (
    InvalidRecord,
    SchemaTooNew,
    SchemaTooOld,
    StorageError,
    StoreClosed,
    StoreUnavailable,
    too_new_message,
)

#: The schema this code reads and writes.
SCHEMA_VERSION = len(MIGRATIONS)

#: SQLite's exceptions and what the store raises for each, most specific first.
ERRORS: tuple[tuple[type[Exception], type[StorageError]], ...] = (
    # A NOT NULL, CHECK or UNIQUE rule refused the write: the same write fails again.
    (sqlite3.IntegrityError, InvalidRecord),
    # Locked for longer than the busy timeout, a full disk, a file that cannot be opened or
    # written, a file that is not a database.
    (sqlite3.OperationalError, StoreUnavailable),
    (sqlite3.DatabaseError, StoreUnavailable),
    (OSError, StoreUnavailable),
    (sqlite3.Error, StorageError),
)


def storage_error(exc: Exception) -> StorageError | None:
    """What the store raises for ``exc``; None for an exception that is not the database's."""
    for raised, mapped in ERRORS:
        if isinstance(exc, raised):
            return mapped(f"{type(exc).__name__}: {exc}")
    return None


@contextmanager
def storage_errors() -> Iterator[None]:
    """Raise the store's error for a database error inside; anything else passes unchanged."""
    try:
        yield
    except Exception as exc:
        mapped = storage_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


class Database:
    """One connection, shared by every coroutine: a statement run while another coroutine's
    transaction is open would join (and could be rolled back with) that transaction, so every
    use of it takes the lock."""

    def __init__(
        self, connection: aiosqlite.Connection, process_lock: ProcessLock | None = None
    ) -> None:
        self._connection = connection
        self._lock = asyncio.Lock()
        self._process_lock = process_lock
        self.closed = False
        #: The schema version found when opening, and the one it is at now.
        self.migrated = (SCHEMA_VERSION, SCHEMA_VERSION)

    @classmethod
    async def open(
        cls, path: Path | str, *, migrate: bool = True, exclusive: bool = True
    ) -> Database:
        """Open (creating if needed, owner-only) the database at ``path`` and migrate it.

        With ``exclusive``, take the database's process lock first (:mod:`storage.sqlite.lock`),
        or raise :class:`DatabaseInUse`. Without ``migrate``, raise :class:`SchemaTooOld` for a
        schema older than this code's. Raise :class:`SchemaTooNew` for a newer one, either way.
        """
        path = Path(path)
        lock: ProcessLock | None = None
        try:
            with storage_errors():
                if str(path) != ":memory:":
                    path.parent.mkdir(parents=True, exist_ok=True)
                    lock = ProcessLock.take(path) if exclusive else None
                    # Transcripts are private conversations: readable by the owner only.
                    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
                    os.close(fd)
                    os.chmod(path, 0o600)
                connection = await aiosqlite.connect(path, isolation_level=None)
                try:
                    await _configure(connection)
                    before = await _migrate(connection, path, migrate=migrate)
                except BaseException:
                    await connection.close()
                    raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        database = cls(connection, lock)
        database.migrated = (before, SCHEMA_VERSION)
        return database

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        async with self._lock:
            try:
                with storage_errors():
                    await self._connection.close()
            finally:
                if self._process_lock is not None:
                    self._process_lock.release()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection inside ``BEGIN IMMEDIATE``: committed when the block ends, rolled back
        if it raises. The write lock is taken at once, so what the block reads stays true until
        it commits."""
        async with self._lock:
            self._refuse_if_closed()
            with storage_errors():
                db = self._connection
                try:
                    await db.execute("BEGIN IMMEDIATE")
                    yield db
                    await db.execute("COMMIT")
                except BaseException:
                    # Also when COMMIT failed, or the caller was cancelled while its BEGIN was
                    # on its way (it runs all the same): a transaction left open would refuse
                    # every later BEGIN.
                    await _roll_back(db)
                    raise

    @asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for reads outside any transaction."""
        async with self._lock:
            self._refuse_if_closed()
            with storage_errors():
                yield self._connection

    def _refuse_if_closed(self) -> None:
        if self.closed:
            raise StoreClosed("the database is closed")


async def _roll_back(db: aiosqlite.Connection) -> None:
    """Roll back whatever transaction is open once the statements sent before have run (SQLite
    runs them in order); none open is fine."""
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:
        if db.in_transaction:
            raise


async def _configure(connection: aiosqlite.Connection) -> None:
    await connection.execute("PRAGMA journal_mode = WAL")
    await connection.execute("PRAGMA synchronous = NORMAL")
    await connection.execute("PRAGMA foreign_keys = ON")
    await connection.execute("PRAGMA busy_timeout = 5000")
    # 32 MB of page cache instead of 2: a poll cycle reads and writes every job in flight.
    await connection.execute("PRAGMA cache_size = -32768")


async def _migrate(connection: aiosqlite.Connection, path: Path, *, migrate: bool) -> int:
    """Bring the schema up to this code's version (unless told not to); the version found."""
    async with connection.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(too_new_message(f"the SQLite database {path}", version, SCHEMA_VERSION))
    if version < SCHEMA_VERSION and not migrate:
        raise SchemaTooOld(
            f"the SQLite database {path} is at schema version {version} and this threadscribe "
            f"expects {SCHEMA_VERSION}: the bot migrates it when it starts"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        await connection.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    return version
