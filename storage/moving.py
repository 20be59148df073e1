"""Moving from SQLite to PostgreSQL: every row of every table, work in flight included.

The copy is made while no bot runs on the SQLite database: it holds the database's process lock
(:mod:`storage.sqlite.lock`) from start to end, so it refuses to start beside a running bot, and
a bot started meanwhile refuses to start. The target is written in one transaction: a copy that
fails leaves it as it was. Rows are streamed, never all held at once (transcripts can be many).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storage.postgres.connection import Connection
from storage.postgres.connection import Database as PostgresDatabase
from storage.postgres.migrations import TABLES
from storage.postgres.rows import JSON_NUL, safe_text
from storage.postgres.urls import shown_url
from storage.sqlite.connection import Database as SQLiteDatabase
from storage.store import StorageError


class TargetNotEmpty(StorageError):
    """The target database already holds rows, which a copy would mix with the copied ones."""


class CopyUnverified(StorageError):
    """The copy was committed, but its rows could not be counted afterwards."""


@dataclass
class CopyReport:
    #: Rows per table, in the source and in the target once copied.
    source: dict[str, int]
    target: dict[str, int]

    @property
    def complete(self) -> bool:
        return self.source == self.target


async def copy_sqlite_to_postgres(source: Path, target_url: str, *, replace: bool) -> CopyReport:
    """Copy the SQLite database at ``source`` (migrated first, like a start would) into the
    PostgreSQL database at ``target_url`` (migrated too), then count the rows of both.

    Raises :class:`storage.store.DatabaseInUse` while a bot runs on ``source``, and
    :class:`TargetNotEmpty` for a target holding rows, unless told to ``replace`` them."""
    sqlite = await SQLiteDatabase.open(source)
    try:
        postgres = await PostgresDatabase.open(target_url, min_size=1, max_size=1)
        try:
            async with postgres.transaction() as target:
                found = await _counts_in_postgres(target)
                if any(found.values()) and not replace:
                    raise TargetNotEmpty(_not_empty_message(target_url, found))
                if replace:
                    await target.execute(f"TRUNCATE {', '.join(TABLES)}")
                for table in TABLES:
                    await _copy_table(sqlite, target, table)
            try:
                async with postgres.autocommit() as target:
                    copied = await _counts_in_postgres(target)
                source_counts = await _counts_in_sqlite(sqlite)
            except StorageError as exc:
                raise CopyUnverified(f"its rows could not be counted ({exc})") from exc
        finally:
            await postgres.close()
        return CopyReport(source_counts, copied)
    finally:
        await sqlite.close()


async def _copy_table(sqlite: SQLiteDatabase, target: Connection, table: str) -> None:
    async with sqlite.read() as source:
        present = {
            str(row[1]) for row in await source.execute_fetchall(f"PRAGMA table_info({table})")
        }
    # Columns only PostgreSQL has (the leases several processes take) start empty.
    types = {
        name: kind for name, kind in (await _column_types(target, table)).items() if name in present
    }
    names = ", ".join(types)
    json_columns = [index for index, kind in enumerate(types.values()) if kind == "jsonb"]
    async with (
        sqlite.read() as source,
        source.execute(f"SELECT {names} FROM {table}") as rows,
    ):
        cursor = target.cursor()
        async with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            async for row in rows:
                await copy.write_row(_storable(row, json_columns))


def _storable(row: Any, json_columns: list[int]) -> list[Any]:
    """A SQLite row as PostgreSQL can take it in text form: times, JSON and 0/1 flags read as
    they are written; NUL characters, which PostgreSQL's text cannot hold, become U+FFFD."""
    values = [safe_text(value) if isinstance(value, str) else value for value in row]
    for index in json_columns:
        value = values[index]
        if isinstance(value, str) and "\\u0000" in value:
            values[index] = JSON_NUL.sub(r"\1\\ufffd", value)
    return values


async def _column_types(target: Connection, table: str) -> dict[str, str]:
    cursor = await target.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position""",
        (table,),
    )
    return {str(name): str(kind) for name, kind in await cursor.fetchall()}


async def _counts_in_postgres(target: Connection) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        cursor = await target.execute(f"SELECT COUNT(*) FROM {table}")
        row = await cursor.fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts


async def _counts_in_sqlite(sqlite: SQLiteDatabase) -> dict[str, int]:
    counts = {}
    async with sqlite.read() as source:
        for table in TABLES:
            (row,) = await source.execute_fetchall(f"SELECT COUNT(*) FROM {table}")
            counts[table] = int(row[0])
    return counts


def _not_empty_message(url: str, found: dict[str, int]) -> str:
    held = ", ".join(f"{count} {table}" for table, count in found.items() if count)
    return (
        f"the PostgreSQL database {shown_url(url)} already holds rows ({held}): a copy into "
        "it would mix them with the copied ones. Copy into an empty database, or add "
        "--replace to delete what it holds first"
    )
