"""The PostgreSQL database: a pool of connections, the migrations (once, under an advisory lock),
transactions, and the one place where the driver's errors become the store's
(:mod:`storage.store`)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from storage.postgres.migrations import MIGRATIONS, SCHEMA_VERSION
from storage.postgres.rows import refuse_naive_times
from storage.postgres.urls import shown_url
from storage.store import (
    InvalidRecord,
    SchemaTooNew,
    SchemaTooOld,
    StorageError,
    StoreClosed,
    StoreUnavailable,
    too_new_message,
)

Connection = psycopg.AsyncConnection[Any]

#: The driver's exceptions and what the store raises for each, most specific first.
ERRORS: tuple[tuple[type[Exception], type[StorageError]], ...] = (
    # The pool was closed under a caller that was waiting for a connection.
    (PoolClosed, StoreClosed),
    # Every connection busy for longer than the pool waits, or none can be made.
    (PoolTimeout, StoreUnavailable),
    # A NOT NULL, CHECK or UNIQUE rule refused the write: the same write fails again.
    (psycopg.IntegrityError, InvalidRecord),
    # A value the column cannot hold: the same write fails again.
    (psycopg.DataError, InvalidRecord),
    # The server is down, restarting or out of resources, the connection dropped, a deadlock or
    # a lock timeout: the same call may work later.
    (psycopg.OperationalError, StoreUnavailable),
    (psycopg.InterfaceError, StoreUnavailable),
    (OSError, StoreUnavailable),
    (psycopg.Error, StorageError),
)

#: How long opening waits for the server, a caller for a free connection of the pool, and
#: closing for the calls under way.
CONNECT_TIMEOUT_SECONDS = 10
POOL_TIMEOUT_SECONDS = 30.0
CLOSE_WAIT_SECONDS = 10.0


def storage_error(exc: Exception) -> StorageError | None:
    """What the store raises for ``exc``; None for an exception that is not the database's."""
    for raised, mapped in ERRORS:
        if isinstance(exc, raised):
            return mapped(f"{type(exc).__name__}: {_one_line(str(exc))}")
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


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class Database:
    """A pool of connections in autocommit; :meth:`transaction` opens one explicitly."""

    def __init__(self, pool: AsyncConnectionPool[Connection], migrated: tuple[int, int]) -> None:
        self._pool = pool
        #: The schema version found when opening, and the one it is at now.
        self.migrated = migrated
        self.closed = False
        #: Callers holding a connection: closing waits for them to finish.
        self._active = 0
        self._idle = asyncio.Event()
        #: The locks of :meth:`locked_transaction`, as this process waits for them.
        self._local_locks: dict[str, asyncio.Lock] = {}

    @classmethod
    async def open(
        cls, url: str, *, migrate: bool = True, min_size: int = 2, max_size: int = 10
    ) -> Database:
        """Connect to ``url``, migrate its schema (unless told not to), and open the pool.

        Raises :class:`StoreUnavailable` (with the server's reason) when it cannot be reached,
        :class:`SchemaTooNew` or :class:`SchemaTooOld` as :func:`migrate_schema` does."""
        with storage_errors():
            # One connection first, for the server's own reason when it fails (a pool only says
            # it timed out), and for the migrations.
            async with await psycopg.AsyncConnection.connect(
                url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
            ) as connection:
                before = await migrate_schema(connection, url, migrate=migrate)
            pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                open=False,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_SECONDS},
                configure=_configure,
                timeout=POOL_TIMEOUT_SECONDS,
                name="threadscribe",
            )
            try:
                await pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
            except BaseException:
                # Its workers would go on trying to connect in the background.
                await pool.close()
                raise
        return cls(pool, (before, SCHEMA_VERSION))

    async def close(self) -> None:
        """Refuse new work, let the callers holding a connection finish (for a while: a call
        hanging on a dead server must not hold up the exit), close the pool."""
        if self.closed:
            return
        self.closed = True
        if self._active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), CLOSE_WAIT_SECONDS)
        with storage_errors():
            await self._pool.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside a transaction: committed when the block ends, rolled back if it
        raises."""
        async with self._connection() as connection, connection.transaction():
            yield connection

    @asynccontextmanager
    async def locked_transaction(self, name: str | None) -> AsyncIterator[Connection]:
        """A transaction holding, until it ends, the lock called ``name`` in this schema (none
        for None): the transactions of every process that take it run one after the other.

        Callers of this process wait for it here first, without holding a connection: many
        waiting at once must not take the pool's connections from everyone else."""
        if name is None:
            async with self.transaction() as connection:
                yield connection
            return
        async with (
            self._local_locks.setdefault(name, asyncio.Lock()),
            self.transaction() as connection,
        ):
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s || current_schema(), 0))",
                (f"threadscribe {name} in ",),
            )
            yield connection

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Connection]:
        """A connection in autocommit: each statement is a transaction of its own, and sees what
        was committed before it began."""
        async with self._connection() as connection:
            yield connection

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        if self.closed:
            raise StoreClosed("the database is closed")
        self._active += 1
        try:
            with storage_errors():
                async with self._pool.connection() as connection:
                    yield connection
        finally:
            self._active -= 1
            if self.closed and not self._active:
                self._idle.set()


async def _configure(connection: Connection) -> None:
    # Times come back in UTC, whatever the server's or the role's time zone, as the store's
    # contract says; converting each in Python would cost more than the rest of reading a row.
    # No JIT: a poll cycle's queries over thousands of jobs pass its cost threshold, and
    # compiling them took longer (15-30 ms each) than running them.
    await connection.execute("SET TIME ZONE 'UTC'; SET jit = off")
    refuse_naive_times(connection)


#: The advisory lock under which one process at a time migrates, per schema: the tests keep a
#: schema each on one server.
_MIGRATION_LOCK = """SELECT pg_advisory_xact_lock(
    hashtextextended('threadscribe migrations ' || current_schema(), 0))"""


async def migrate_schema(connection: Connection, url: str, *, migrate: bool = True) -> int:
    """Bring the schema up to this code's version, in one transaction under an advisory lock, so
    that processes starting together migrate once; returns the version found.

    Raises :class:`SchemaTooNew` for a schema newer than this code's; without ``migrate``,
    :class:`SchemaTooOld` for an older one, having written nothing."""
    async with connection.transaction():
        if migrate:
            await connection.execute(_MIGRATION_LOCK)
            await connection.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version    integer PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now()
                   )"""
            )
            version = await _schema_version(connection)
        else:
            cursor = await connection.execute("SELECT to_regclass('schema_migrations')")
            found = await cursor.fetchone()
            version = await _schema_version(connection) if found and found[0] else 0
        where = f"the PostgreSQL database {shown_url(url)}"
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(too_new_message(where, version, SCHEMA_VERSION))
        if version < SCHEMA_VERSION and not migrate:
            raise SchemaTooOld(
                f"{where} is at schema version {version} and this threadscribe expects "
                f"{SCHEMA_VERSION}: the bot migrates it when it starts"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await connection.execute(script)
            await connection.execute(
                "INSERT INTO schema_migrations (version) VALUES (%s)", (number,)
            )
    return version


async def _schema_version(connection: Connection) -> int:
    cursor = await connection.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
    row = await cursor.fetchone()
    return int(row[0]) if row else 0
