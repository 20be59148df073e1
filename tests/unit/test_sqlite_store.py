"""What only the SQLite backend promises: its file, its schema and indexes, its transactions, and
SQLite's errors turned into the store's. The contract every store keeps is in tests/contract."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.models import Batch, ChannelSettings, JobKind, NewBatch, NewJob, Workspace
from storage.sqlite import SQLiteStore
from storage.sqlite.connection import storage_error
from storage.sqlite.migrations import MIGRATIONS
from storage.sqlite.rows import UNFINISHED
from storage.states import FINISHED_JOB_STATES
from storage.store import (
    DatabaseInUse,
    InvalidRecord,
    SchemaTooNew,
    SchemaTooOld,
    StorageError,
    StoreUnavailable,
    WriteInterrupted,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def new_batch(ts: str = "1.0") -> NewBatch:
    return NewBatch("T1", "C1", ts, ts, "U1", "soniox", "upload")


def new_job(file_id: str, ts: str = "1.0") -> NewJob:
    return NewJob(
        kind=JobKind.SLACK_FILE,
        filename=f"{file_id}.wav",
        slack_file_id=file_id,
        dedupe_key=f"T1:C1:{ts}:{file_id}",
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(tmp_path / "db" / "t.db")
    yield opened
    await opened.close()


async def _trace(store: SQLiteStore, into: list[str] | None) -> None:
    """Collect the statements run from now into ``into`` (None: stop)."""
    await store._database._connection.set_trace_callback(
        into.append if into is not None else _ignore
    )


def _ignore(statement: str) -> None:
    return None


async def _read(store: SQLiteStore, query: str) -> list[tuple[object, ...]]:
    async with store._database.read() as db:
        return [tuple(row) for row in await db.execute_fetchall(query)]


async def test_the_database_file_is_private_migrated_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    await (await SQLiteStore.open(path)).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = await SQLiteStore.open(path)  # migrating twice is a no-op
    try:
        assert await _read(reopened, "PRAGMA user_version") == [(len(MIGRATIONS),)]
        assert await _read(reopened, "PRAGMA journal_mode") == [("wal",)]
    finally:
        await reopened.close()


async def test_a_database_of_an_older_version_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as old:
        for number, script in enumerate(MIGRATIONS[:4], start=1):
            old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        old.execute(
            """INSERT INTO batches (id, channel_id, message_ts, thread_ts, provider, source, state,
                   created_at, updated_at)
               VALUES ('b-0000000000aa', 'C1', '1.0', '1.0', 'soniox', 'upload', 'delivered',
                   '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')"""
        )
    old.close()
    store = await SQLiteStore.open(path)
    try:
        batch = await store.get_batch("b-0000000000aa")
        assert batch is not None and batch.created_at == datetime(2026, 1, 1, tzinfo=UTC)
        assert batch.failing_since is None and batch.language_hints_strict is False
        assert await _read(store, "PRAGMA user_version") == [(len(MIGRATIONS),)]
    finally:
        await store.close()


async def test_batches_asked_for_at_once_share_one_transaction(store: SQLiteStore) -> None:
    statements: list[str] = []
    await _trace(store, statements)
    created = await asyncio.gather(
        *(store.create_batch(new_batch(f"{i}.0"), [new_job("F1", f"{i}.0")], NOW) for i in range(5))
    )
    await _trace(store, None)
    assert all(isinstance(batch, Batch) for batch in created)
    assert [s for s in statements if s.startswith("BEGIN")] == ["BEGIN IMMEDIATE"]


async def test_a_batch_id_already_in_use_is_drawn_again(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter(["b-000000000001", "b-000000000001", "b-000000000002"])
    monkeypatch.setattr("storage.batch_writer.new_batch_id", lambda: next(draws))
    first = await store.create_batch(new_batch(), [new_job("F1")], NOW)
    second = await store.create_batch(new_batch("2.0"), [new_job("F2", "2.0")], NOW)
    assert first is not None and first.id == "b-000000000001"
    assert second is not None and second.id == "b-000000000002"


async def test_requests_waiting_on_a_stopped_writer_are_told_and_later_ones_are_written(
    store: SQLiteStore,
) -> None:
    waiting = [
        asyncio.ensure_future(store.create_batch(new_batch(), [new_job("F1")], NOW)),
        asyncio.ensure_future(store.create_batch(new_batch("2.0"), [new_job("F2", "2.0")], NOW)),
    ]
    await asyncio.sleep(0)  # both queued; the writer has not begun
    writer = store._new_batches._writer
    assert writer is not None
    writer.cancel()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, WriteInterrupted) for outcome in outcomes)
    assert await store.create_batch(new_batch(), [new_job("F1")], NOW) is not None


async def test_due_jobs_are_found_through_the_index_of_unfinished_jobs(store: SQLiteStore) -> None:
    # The index's condition is written in migration 7; SQLite uses it only for queries whose
    # condition it can see implies it, so the store writes the same text.
    listed = ", ".join(f"'{state}'" for state in sorted(FINISHED_JOB_STATES))
    assert f"state NOT IN ({listed})" == UNFINISHED
    assert f"WHERE {UNFINISHED}" in MIGRATIONS[6]
    due = await store.create_batch(new_batch(), [new_job("F1")], NOW)
    later = await store.create_batch(new_batch("2.0"), [new_job("F2", "2.0")], NOW)
    assert due is not None and later is not None
    (later_job,) = await store.jobs_of(later.id)
    await store.postpone_jobs(
        [later_job.id], until=NOW + timedelta(minutes=1), stalled_since=NOW, now=NOW
    )

    statements: list[str] = []
    await _trace(store, statements)
    assert [job.batch_id for job in await store.due_jobs(NOW)] == [due.id]
    await _trace(store, None)
    (query,) = [statement for statement in statements if statement.startswith("SELECT")]
    plan = await _read(store, f"EXPLAIN QUERY PLAN {query}")
    assert any("jobs_unfinished" in str(step) for step in plan)


async def test_sqlite_errors_reach_callers_as_storage_errors(tmp_path: Path) -> None:
    assert isinstance(storage_error(sqlite3.IntegrityError("NOT NULL")), InvalidRecord)
    assert isinstance(storage_error(sqlite3.OperationalError("locked")), StoreUnavailable)
    assert isinstance(storage_error(sqlite3.DatabaseError("not a db")), StoreUnavailable)
    assert isinstance(storage_error(sqlite3.InterfaceError("bad")), StorageError)
    assert storage_error(ValueError("ours")) is None

    (tmp_path / "not-a-file.db").mkdir()
    with pytest.raises(StoreUnavailable):
        await SQLiteStore.open(tmp_path / "not-a-file.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable) as caught:
        await SQLiteStore.open(garbage)
    assert not isinstance(caught.value, sqlite3.Error)


async def test_a_write_cancelled_while_its_transaction_begins_leaves_none_open(
    store: SQLiteStore,
) -> None:
    batch = await store.create_batch(new_batch(), [new_job("F1")], NOW)
    assert batch is not None
    (job,) = await store.jobs_of(batch.id)
    # Cancelled once its BEGIN is on its way to SQLite (a request handler whose client left, a
    # task stopped at shutdown): the BEGIN still runs, and nothing may be left open after it.
    write = asyncio.ensure_future(store.record_spool_deleted(job.id, NOW))
    await asyncio.sleep(0)
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write

    assert await store.start_download(job.id, NOW), "the next write has a connection of its own"


async def test_one_process_at_a_time_holds_the_database(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    first = await SQLiteStore.open(path)
    try:
        with pytest.raises(DatabaseInUse) as refused:
            await (await SQLiteStore.open(path)).close()
        assert f"(pid {os.getpid()})" in str(refused.value)
        assert "DATABASE_URL=postgresql://" in str(refused.value)
        # Beside it, a reader that neither locks nor migrates.
        beside = await SQLiteStore.open(path, migrate=False, exclusive=False)
        assert await beside.ping()
        await beside.close()
    finally:
        await first.close()
    await (await SQLiteStore.open(path)).close()  # free again once closed


async def test_the_database_is_held_by_its_file_whatever_path_leads_to_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "data").mkdir()
    path = tmp_path / "data" / "t.db"
    (tmp_path / "t-link.db").symlink_to(path)  # a link to the file
    (tmp_path / "data-link").symlink_to(tmp_path / "data")  # a link to its directory
    first = await SQLiteStore.open(path)
    try:
        for other in (tmp_path / "t-link.db", tmp_path / "data-link" / "t.db"):
            with pytest.raises(DatabaseInUse):
                await (await SQLiteStore.open(other)).close()
    finally:
        await first.close()
    await (await SQLiteStore.open(tmp_path / "t-link.db")).close()


async def test_a_schema_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    await (await SQLiteStore.open(path)).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(SchemaTooNew) as refused:
        await (await SQLiteStore.open(path)).close()
    assert f"knows versions up to {len(MIGRATIONS)}" in str(refused.value)
    with pytest.raises(SchemaTooNew):  # the lock was released: refused for the same reason
        await (await SQLiteStore.open(path)).close()


async def test_a_reader_beside_the_bot_does_not_migrate(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as old:
        old.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    old.close()
    with pytest.raises(SchemaTooOld):
        await (await SQLiteStore.open(path, migrate=False, exclusive=False)).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (1,)
    db.close()


async def test_channel_settings_from_before_workspaces_are_kept_for_adoption(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path, isolation_level=None) as old:
        for number, script in enumerate(MIGRATIONS[:17], start=1):
            old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        old.execute(
            """INSERT INTO channel_settings (channel_id, provider, auto, vocabulary, updated_at)
               VALUES ('C1', 'soket', 0, '["Priya"]', '2026-01-01T00:00:00.000000Z')"""
        )
    old.close()
    store = await SQLiteStore.open(path)
    try:
        unowned = await store.channel_settings(Workspace(""), "C1")
        assert (unowned.provider, unowned.auto, unowned.vocabulary) == ("soket", False, ["Priya"])
        assert await store.adopt_unowned(Workspace("T1")) == 1
        assert await store.channel_settings(Workspace("T1"), "C1") == unowned
        assert await store.channel_settings(Workspace("T2"), "C1") == ChannelSettings("C1")
    finally:
        await store.close()


async def test_a_batch_whose_jobs_finished_before_the_migration_is_still_delivered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    stamp = "2026-01-01T00:00:00.000000Z"
    with sqlite3.connect(path, isolation_level=None) as old:
        for number, script in enumerate(MIGRATIONS[:18], start=1):
            old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
        for batch_id, state in (("b-done", "completed"), ("b-running", "processing")):
            old.execute(
                """INSERT INTO batches (id, team_id, channel_id, message_ts, thread_ts, provider,
                       source, state, created_at, updated_at)
                   VALUES (?, 'T1', 'C1', '1.0', '1.0', 'soniox', 'upload', 'open', ?, ?)""",
                (batch_id, stamp, stamp),
            )
            old.execute(
                """INSERT INTO jobs (id, batch_id, position, kind, provider, filename, state,
                       created_at, updated_at, finished_at)
                   VALUES (?, ?, 0, 'url', 'soniox', 'a.mp3', ?, ?, ?, ?)""",
                (
                    f"j-{batch_id}",
                    batch_id,
                    state,
                    stamp,
                    stamp,
                    stamp if state == "completed" else None,
                ),
            )
    old.close()
    store = await SQLiteStore.open(path)
    try:
        ready = await store.batches_to_deliver(datetime(2026, 1, 2, tzinfo=UTC))
        assert [batch.id for batch in ready] == ["b-done"]
    finally:
        await store.close()
