"""The database the settings choose, and what the commands do with it: the one module of the bot
that names a storage backend.

``DATABASE_URL=postgresql://…`` selects PostgreSQL, which any number of processes may share;
without it the bot keeps its work in the SQLite file at ``DATABASE_PATH``, for one process.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.config import Settings
from storage.moving import CopyReport, copy_sqlite_to_postgres
from storage.postgres import PostgresStore
from storage.postgres.urls import shown_url
from storage.sqlite import SQLiteStore
from storage.sqlite.lock import ProcessLock
from storage.store import DatabaseInUse, SchemaTooOld, Store


def backend_name(settings: Settings) -> str:
    return "postgresql" if settings.database_url is not None else "sqlite"


def describe(settings: Settings) -> str:
    """Which database, in words an operator can show anyone: a URL's password is masked."""
    if settings.database_url is not None:
        return f"PostgreSQL at {shown_url(settings.database_url.get_secret_value())}"
    return f"SQLite at {settings.database_path}"


async def open_store(settings: Settings) -> Store:
    """The store the settings choose, opened and migrated: for SQLite, held by this process
    alone until closed. Raises :class:`storage.store.StoreUnavailable` (its subclass
    :class:`storage.store.DatabaseInUse` when another process runs on the SQLite database)
    or :class:`storage.store.SchemaTooNew`."""
    if settings.database_url is not None:
        return await PostgresStore.open(settings.database_url.get_secret_value())
    return await SQLiteStore.open(settings.database_path)


@dataclass
class Opened:
    store: Store
    #: What ``check`` adds after the database's name, such as "in use by the running bot".
    note: str


class MigrationPending(SchemaTooOld):
    """The schema is older than this code's, and no older bot runs on it (that ``check`` can
    tell): the bot migrates it when it starts. Nothing is wrong."""


async def open_beside_the_bot(settings: Settings) -> Opened:
    """The store for ``check``, which must work while the bot runs and changes nothing: the
    database is opened as it is, never migrated (on PostgreSQL, replicas of an older version
    may be running on it). On SQLite, a running bot holds the database, which is then read
    without taking its lock.

    Raises :class:`MigrationPending` for a schema older than this code's, and
    :class:`storage.store.SchemaTooOld` when the bot running on SQLite is older than this
    code."""
    if settings.database_url is None and ProcessLock.is_held(settings.database_path):
        beside = await SQLiteStore.open(settings.database_path, migrate=False, exclusive=False)
        return Opened(beside, "in use by the running bot")
    try:
        if settings.database_url is not None:
            url = settings.database_url.get_secret_value()
            store: Store = await PostgresStore.open(url, migrate=False, min_size=1, max_size=1)
        else:
            store = await SQLiteStore.open(settings.database_path, migrate=False)
    except SchemaTooOld as exc:
        raise MigrationPending(str(exc)) from None
    return Opened(store, "")


async def migrate(settings: Settings) -> str:
    """Apply the migrations the database lacks; what was done, in one line.

    On SQLite, a running bot has migrated its database when it started, and nothing may change
    the schema under it: with the bot running, this only confirms that nothing is left to do.
    Raises :class:`storage.store.SchemaTooOld` when something is (stop the bot first)."""
    try:
        store = await _open_migrated(settings)
    except DatabaseInUse as exc:
        try:
            store = await SQLiteStore.open(settings.database_path, migrate=False, exclusive=False)
        except SchemaTooOld:
            raise SchemaTooOld(
                f"{exc} The bot migrates its database when it starts: stop it, then run "
                "`python -m bot migrate` (or start the new version, which migrates at start)"
            ) from None
        await store.close()
        return f"{describe(settings)}: already at schema version {store.migrated[1]}"
    try:
        before, after = store.migrated
    finally:
        await store.close()
    if before == after:
        return f"{describe(settings)}: already at schema version {after}"
    return f"{describe(settings)}: migrated from schema version {before} to {after}"


async def _open_migrated(settings: Settings) -> SQLiteStore | PostgresStore:
    if settings.database_url is not None:
        return await PostgresStore.open(settings.database_url.get_secret_value(), min_size=1)
    return await SQLiteStore.open(settings.database_path)


async def copy_database(settings: Settings, target_url: str, *, replace: bool) -> CopyReport:
    """Copy the configured SQLite database into the PostgreSQL database at ``target_url``."""
    return await copy_sqlite_to_postgres(settings.database_path, target_url, replace=replace)
