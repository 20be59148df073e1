"""What only the PostgreSQL backend promises: migrations once under an advisory lock, a schema
newer than the code refused, several processes sharing one database (each store here has a pool
of its own, as each process would), and the driver's errors turned into the store's. The contract
every store keeps is in tests/contract."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from storage.models import (
    ChannelSettings,
    JobKind,
    NewBatch,
    NewJob,
    TranscriptionOptions,
    Workspace,
)
from storage.moving import copy_sqlite_to_postgres
from storage.postgres import PostgresStore
from storage.postgres.migrations import MIGRATIONS, SCHEMA_VERSION
from storage.postgres.rows import UNFINISHED
from storage.sqlite import SQLiteStore
from storage.store import SchemaTooNew, StoreUnavailable
from tests.postgres import TestSchema
from tests.workspaces import FAKE_WORKSPACE

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
async def schema() -> AsyncIterator[TestSchema]:
    made = TestSchema()
    await made.create()
    yield made
    await made.drop()


async def open_store(schema: TestSchema) -> PostgresStore:
    return await PostgresStore.open(schema.url, min_size=1, max_size=4)


async def _query(schema: TestSchema, statement: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(schema.url, autocommit=True) as db:
        cursor = await db.execute(statement)  # type: ignore[arg-type]
        return list(await cursor.fetchall()) if cursor.description else []


async def test_processes_starting_together_migrate_once(schema: TestSchema) -> None:
    stores = await asyncio.gather(*(open_store(schema) for _ in range(3)))
    try:
        assert sorted(store.migrated[0] for store in stores) == [0, SCHEMA_VERSION, SCHEMA_VERSION]
        versions = await _query(schema, "SELECT version FROM schema_migrations ORDER BY version")
        assert versions == [(number,) for number in range(1, SCHEMA_VERSION + 1)]
    finally:
        for store in stores:
            await store.close()


async def test_a_schema_newer_than_the_code_is_refused(schema: TestSchema) -> None:
    await (await open_store(schema)).close()
    await _query(schema, f"INSERT INTO schema_migrations (version) VALUES ({SCHEMA_VERSION + 1})")
    with pytest.raises(SchemaTooNew) as refused:
        await (await open_store(schema)).close()
    assert f"schema version {SCHEMA_VERSION + 1}" in str(refused.value)
    assert f"versions up to {SCHEMA_VERSION}" in str(refused.value)


async def test_an_unreachable_server_is_unavailable_with_its_reason() -> None:
    url = "postgresql://someone:s3cret-pw@127.0.0.1:1/nothing"
    with pytest.raises(StoreUnavailable) as refused:
        await (await PostgresStore.open(url)).close()
    assert "127.0.0.1" in str(refused.value) and "s3cret-pw" not in str(refused.value)


async def test_a_channel_setting_changed_by_one_process_is_read_by_another(
    schema: TestSchema,
) -> None:
    first, second = await open_store(schema), await open_store(schema)
    try:
        assert (await first.channel_settings(FAKE_WORKSPACE, "C1")).provider is None
        await second.save_channel_settings(
            FAKE_WORKSPACE, ChannelSettings("C1", provider="soket"), NOW
        )
        assert (await first.channel_settings(FAKE_WORKSPACE, "C1")).provider == "soket", (
            "no stale copy"
        )
    finally:
        await first.close()
        await second.close()


async def test_processes_creating_batches_at_once_keep_the_rules(schema: TestSchema) -> None:
    first, second = await open_store(schema), await open_store(schema)
    try:
        for round_ in range(5):  # the race is won by either side, each time
            ts = f"{round_}.0"
            same_file = await asyncio.gather(
                first.create_batch(new_batch(ts), [new_job("F1", ts)], NOW),
                second.create_batch(new_batch(ts), [new_job("F1", ts)], NOW),
            )
            assert sum(batch is not None for batch in same_file) == 1, "the file is taken once"
            message = f"9{round_}.0"
            running = await asyncio.gather(
                first.create_batch(
                    new_batch(message), [new_job("A", message)], NOW, unless_running=True
                ),
                second.create_batch(
                    new_batch(message), [new_job("B", message)], NOW, unless_running=True
                ),
            )
            assert sum(batch is not None for batch in running) == 1, "one batch per message"
        assert await first.count_batches_by_state() == {"open": 10}, "no empty batch kept"
    finally:
        await first.close()
        await second.close()


async def test_unfinished_jobs_are_found_through_their_partial_index(schema: TestSchema) -> None:
    store = await open_store(schema)
    await store.close()
    async with await psycopg.AsyncConnection.connect(schema.url, autocommit=True) as db:
        await db.execute("SET enable_seqscan = off")
        cursor = await db.execute(f"EXPLAIN SELECT batch_id FROM jobs WHERE {UNFINISHED}")  # type: ignore[arg-type]
        plan = " ".join(str(row[0]) for row in await cursor.fetchall())
    assert "jobs_unfinished" in plan


async def test_a_dropped_connection_fails_one_call_and_the_next_works(schema: TestSchema) -> None:
    store = await PostgresStore.open(schema.url, min_size=1, max_size=1)
    try:
        ((pid,),) = await store._rows("SELECT pg_backend_pid()")
        # As when the server restarts or a proxy drops an idle connection.
        await _query(schema, f"SELECT pg_terminate_backend({int(pid)})")
        with pytest.raises(StoreUnavailable):
            await store.ping()
        assert await store.ping(), "the pool replaced the broken connection"
    finally:
        await store.close()


async def test_closing_finishes_the_write_under_way(schema: TestSchema) -> None:
    store = await open_store(schema)
    written = asyncio.ensure_future(store.remember_event("Ev1", NOW))
    await asyncio.sleep(0)
    await store.close()
    assert written.result() is True
    reopened = await open_store(schema)
    try:
        assert not await reopened.remember_event("Ev1", NOW)
    finally:
        await reopened.close()


async def test_copy_db_keeps_what_channels_and_batches_ask_of_their_transcripts(
    schema: TestSchema, tmp_path: Path
) -> None:
    options = TranscriptionOptions(
        terms=("Kubernetes", "Priya Raman"), context="Stand-up.", translation=("en", "es"),
        mark_doubtful=True,
    )  # fmt: skip
    settings = ChannelSettings(
        "C1", vocabulary=list(options.terms), context=options.context, translation=("de",),
        mark_doubtful=True,
    )  # fmt: skip
    source = await SQLiteStore.open(tmp_path / "threadscribe.db")
    try:
        await source.save_channel_settings(FAKE_WORKSPACE, settings, NOW)
        asked = dataclasses.replace(new_batch(), options=options)
        batch = await source.create_batch(asked, [new_job("F1")], NOW)
        plain = await source.create_batch(new_batch("2.0"), [new_job("F2", "2.0")], NOW)
    finally:
        await source.close()
    assert batch is not None and plain is not None

    report = await copy_sqlite_to_postgres(tmp_path / "threadscribe.db", schema.url, replace=False)
    assert report.complete
    store = await open_store(schema)
    try:
        assert await store.channel_settings(FAKE_WORKSPACE, "C1") == settings
        copied = await store.transcription_options_of([batch.id, plain.id])
        assert copied == {batch.id: options, plain.id: TranscriptionOptions()}
    finally:
        await store.close()


async def test_copy_db_keeps_each_workspaces_rows_and_the_removed_workspaces(
    schema: TestSchema, tmp_path: Path
) -> None:
    other, gone = Workspace("T2", "E1"), Workspace("T3")
    source = await SQLiteStore.open(tmp_path / "threadscribe.db")
    try:
        await source.save_channel_settings(FAKE_WORKSPACE, ChannelSettings("C1", auto=False), NOW)
        await source.save_channel_settings(other, ChannelSettings("C1", provider="soket"), NOW)
        ours = dataclasses.replace(new_batch(), team_id="T2", enterprise_id="E1")
        batch = await source.create_batch(ours, [new_job("F1")], NOW)
        await source.remove_workspace(gone, NOW)
    finally:
        await source.close()
    assert batch is not None

    report = await copy_sqlite_to_postgres(tmp_path / "threadscribe.db", schema.url, replace=False)
    assert report.complete
    store = await open_store(schema)
    try:
        assert not (await store.channel_settings(FAKE_WORKSPACE, "C1")).auto
        assert (await store.channel_settings(other, "C1")).provider == "soket"
        assert [b.id for b in await store.running_batches(other, "C1")] == [batch.id]
        copied = await store.get_batch(batch.id)
        assert copied is not None and copied.workspace == other
        assert await store.workspace_removed(gone)
        assert not await store.workspace_removed(other)
    finally:
        await store.close()


async def test_channel_settings_from_before_workspaces_are_kept_for_adoption(
    schema: TestSchema,
) -> None:
    async with await psycopg.AsyncConnection.connect(schema.url, autocommit=True) as db:
        await db.execute(
            """CREATE TABLE schema_migrations (
                   version    integer PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now()
               )"""
        )
        for number, script in enumerate(MIGRATIONS[:6], start=1):
            await db.execute(script.encode())
            await db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
        await db.execute(
            """INSERT INTO channel_settings (channel_id, provider, auto, vocabulary, updated_at)
               VALUES ('C1', 'soket', false, '["Priya"]', now())"""
        )
    store = await open_store(schema)
    try:
        unowned = await store.channel_settings(Workspace(""), "C1")
        assert (unowned.provider, unowned.auto, unowned.vocabulary) == ("soket", False, ["Priya"])
        assert await store.adopt_unowned(Workspace("T1")) == 1
        assert await store.channel_settings(Workspace("T1"), "C1") == unowned
        assert await store.channel_settings(Workspace("T2"), "C1") == ChannelSettings("C1")
    finally:
        await store.close()


async def test_a_batch_whose_jobs_finished_before_the_migration_is_still_delivered(
    schema: TestSchema,
) -> None:
    async with await psycopg.AsyncConnection.connect(schema.url, autocommit=True) as db:
        await db.execute(
            """CREATE TABLE schema_migrations (
                   version    integer PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now()
               )"""
        )
        for number, script in enumerate(MIGRATIONS[:7], start=1):
            await db.execute(script.encode())
            await db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (number,))
        for batch_id, state in (("b-done", "completed"), ("b-running", "processing")):
            await db.execute(
                """INSERT INTO batches (id, team_id, channel_id, message_ts, thread_ts, provider,
                       source, state, created_at, updated_at)
                   VALUES (%s, 'T1', 'C1', '1.0', '1.0', 'soniox', 'upload', 'open',
                           now(), now())""",
                (batch_id,),
            )
            await db.execute(
                """INSERT INTO jobs (id, batch_id, position, kind, provider, filename, state,
                       created_at, updated_at, finished_at)
                   VALUES (%s, %s, 0, 'url', 'soniox', 'a.mp3', %s, now(), now(),
                           CASE WHEN %s = 'completed' THEN now() END)""",
                (f"j-{batch_id}", batch_id, state, state),
            )
    store = await open_store(schema)
    try:
        ready = await store.batches_to_deliver(datetime.now(UTC) + timedelta(minutes=1))
        assert [batch.id for batch in ready] == ["b-done"]
    finally:
        await store.close()
