from __future__ import annotations

import asyncio
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage.migrations import MIGRATIONS
from storage.models import (
    FINISHED_JOB_STATES,
    Batch,
    BatchState,
    ChannelSettings,
    JobKind,
    JobState,
    NewBatch,
    NewJob,
)
from storage.repository import _UNFINISHED, Repository

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def new_batch(channel: str = "C1", ts: str = "1.0") -> NewBatch:
    return NewBatch(
        team_id="T1",
        channel_id=channel,
        message_ts=ts,
        thread_ts=ts,
        user_id="U1",
        provider="soniox",
        source="upload",
    )


def new_job(file_id: str, ts: str = "1.0") -> NewJob:
    return NewJob(
        kind=JobKind.SLACK_FILE,
        filename=f"{file_id}.wav",
        slack_file_id=file_id,
        download_url=f"https://files.slack.com/{file_id}",
        dedupe_key=f"T1:C1:{ts}:{file_id}",
    )


@pytest.fixture
async def repository(tmp_path: Path) -> Repository:
    repo = await Repository.open(tmp_path / "db" / "t.db")
    yield repo  # type: ignore[misc]
    await repo.close()


async def test_database_file_is_private_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    repo = await Repository.open(path)
    await repo.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reopened = await Repository.open(path)  # migrating twice is a no-op
    async with reopened._read() as db, db.execute("PRAGMA user_version") as cursor:
        assert (await cursor.fetchone())[0] == len(MIGRATIONS)  # type: ignore[index]
    async with reopened._read() as db, db.execute("PRAGMA journal_mode") as cursor:
        assert (await cursor.fetchone())[0] == "wal"  # type: ignore[index]
    await reopened.close()


async def test_the_same_file_of_the_same_message_is_taken_once(repository: Repository) -> None:
    first = await repository.create_batch(new_batch(), [new_job("F1"), new_job("F2")], NOW)
    again = await repository.create_batch(new_batch(), [new_job("F1"), new_job("F2")], NOW)
    partly_new = await repository.create_batch(new_batch(), [new_job("F2"), new_job("F3")], NOW)

    assert first is not None and again is None and partly_new is not None
    assert [job.slack_file_id for job in await repository.jobs_of(partly_new.id)] == ["F3"]
    assert len(await repository.open_jobs()) == 3


async def test_batches_asked_for_at_once_share_one_transaction_and_keep_their_rules(
    repository: Repository,
) -> None:
    statements: list[str] = []
    await repository._db.set_trace_callback(statements.append)
    first, same_file, other, running, running_again = await asyncio.gather(
        repository.create_batch(new_batch(), [new_job("F1"), new_job("F2")], NOW),
        repository.create_batch(new_batch(), [new_job("F1")], NOW),
        repository.create_batch(new_batch(ts="2.0"), [new_job("F9", ts="2.0")], NOW),
        repository.create_batch(
            new_batch(ts="3.0"), [new_job("F5", ts="3.0")], NOW, unless_running=True
        ),
        repository.create_batch(
            new_batch(ts="3.0"), [new_job("F6", ts="3.0")], NOW, unless_running=True
        ),
    )
    await repository._db.set_trace_callback(None)

    assert [statement for statement in statements if statement.startswith("BEGIN")] == [
        "BEGIN IMMEDIATE"
    ]
    assert same_file is None, "a file already taken in the same group is not taken twice"
    assert running_again is None, "a message already running in the same group is not started"
    for batch in (first, other, running):
        assert batch is not None
        assert await repository.get_batch(batch.id) == batch
    assert first is not None and len(await repository.jobs_of(first.id)) == 2
    async with repository._read() as db, db.execute("SELECT COUNT(*) FROM batches") as cursor:
        assert (await cursor.fetchone())[0] == 3, "no empty batch left behind"  # type: ignore[index]


async def test_a_faulty_request_fails_alone_when_written_with_others(
    repository: Repository,
) -> None:
    faulty = new_batch(ts="9.0")
    faulty.thread_ts = None  # type: ignore[assignment]
    good, bad = await asyncio.gather(
        repository.create_batch(new_batch(), [new_job("F1")], NOW),
        repository.create_batch(faulty, [new_job("F2", ts="9.0")], NOW),
        return_exceptions=True,
    )
    assert isinstance(bad, sqlite3.IntegrityError)
    assert isinstance(good, Batch) and await repository.get_batch(good.id) == good


async def test_a_batch_id_already_in_use_is_drawn_again(
    repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter(["b-000000000001", "b-000000000001", "b-000000000002"])
    monkeypatch.setattr("storage.repository.new_batch_id", lambda: next(draws))
    first = await repository.create_batch(new_batch(), [new_job("F1")], NOW)
    second = await repository.create_batch(new_batch(ts="2.0"), [new_job("F2", ts="2.0")], NOW)
    assert first is not None and first.id == "b-000000000001"
    assert second is not None and second.id == "b-000000000002"


async def test_refused_jobs_start_failed_and_batches_deliver_when_all_are_terminal(
    repository: Repository,
) -> None:
    refused = NewJob(
        kind=JobKind.SLACK_FILE, filename="huge.mp4", slack_file_id="F9", refused_reason="too big"
    )
    batch = await repository.create_batch(new_batch(), [new_job("F1"), refused], NOW)
    assert batch is not None
    jobs = await repository.jobs_of(batch.id)
    assert [job.state for job in jobs] == [JobState.QUEUED, JobState.FAILED]
    assert jobs[1].error == "too big"
    assert await repository.batches_to_deliver(NOW) == []

    await repository.update_job(
        jobs[0].id, NOW, state=JobState.COMPLETED, transcript={"text": "hi"}
    )
    (ready,) = await repository.batches_to_deliver(NOW)
    assert ready.id == batch.id
    # A batch waiting for a retry is not due before its time.
    await repository.update_batch(batch.id, NOW, next_attempt_at=NOW + timedelta(seconds=30))
    assert await repository.batches_to_deliver(NOW) == []
    assert await repository.batches_to_deliver(NOW + timedelta(seconds=31)) != []


async def test_clean_up_waits_for_delivery(repository: Repository) -> None:
    batch = await repository.create_batch(new_batch(), [new_job("F1")], NOW)
    assert batch is not None
    (job,) = await repository.jobs_of(batch.id)
    await repository.update_job(
        job.id, NOW, state=JobState.COMPLETED, provider_file_id="pf", provider_job_id="pj"
    )
    assert await repository.jobs_to_clean_up(NOW) == []
    await repository.update_batch(batch.id, NOW, state=BatchState.DELIVERED)
    assert [j.id for j in await repository.jobs_to_clean_up(NOW)] == [job.id]
    await repository.update_job(job.id, NOW, cleaned_up=True)
    assert await repository.jobs_to_clean_up(NOW) == []


async def test_a_per_file_providers_ended_jobs_are_cleaned_up_before_delivery(
    repository: Repository,
) -> None:
    batch = await repository.create_batch(new_batch(), [new_job("F1"), new_job("F2")], NOW)
    assert batch is not None
    done, running = await repository.jobs_of(batch.id)
    await repository.update_job(
        done.id, NOW, state=JobState.COMPLETED, provider_file_id="f1", provider_job_id="t1"
    )
    await repository.update_job(
        running.id, NOW, state=JobState.PROCESSING, provider_file_id="f2", provider_job_id="t2"
    )
    assert await repository.jobs_to_clean_up(NOW, finished_early=["soket"]) == []
    early = await repository.jobs_to_clean_up(NOW, finished_early=["soniox"])
    assert [job.id for job in early] == [done.id]
    # A job whose last call's answer was lost is left for the look-up after the batch ends.
    await repository.update_job(done.id, NOW, sent_at=NOW)
    assert await repository.jobs_to_clean_up(NOW, finished_early=["soniox"]) == []


async def test_stored_files_count_uploads_under_way_until_cleaned_up(
    repository: Repository,
) -> None:
    batch = await repository.create_batch(
        new_batch(), [new_job("F1"), new_job("F2"), new_job("F3")], NOW
    )
    assert batch is not None
    uploaded, sending, waiting = await repository.jobs_of(batch.id)
    assert await repository.count_stored("soniox") == (0, 0)
    await repository.update_job(
        uploaded.id, NOW, state=JobState.UPLOADED, provider_file_id="f1", size_bytes=100
    )
    await repository.update_job(
        sending.id, NOW, state=JobState.UPLOADING, sent_at=NOW, size_bytes=20
    )
    await repository.update_job(waiting.id, NOW, state=JobState.UPLOADING, size_bytes=7)
    assert await repository.count_stored("soniox") == (2, 120)
    assert await repository.count_stored("soket") == (0, 0)
    await repository.update_job(uploaded.id, NOW, cleaned_up=True)
    assert await repository.count_stored("soniox") == (1, 20)


async def test_times_round_trip_in_utc(repository: Repository) -> None:
    batch = await repository.create_batch(new_batch(), [new_job("F1")], NOW)
    assert batch is not None
    assert batch.created_at == NOW
    (job,) = await repository.jobs_of(batch.id)
    later = NOW + timedelta(minutes=5, microseconds=7)
    await repository.update_job(job.id, NOW, next_attempt_at=later)
    reloaded = await repository.get_job(job.id)
    assert reloaded is not None and reloaded.next_attempt_at == later


async def test_events_are_remembered(repository: Repository) -> None:
    assert await repository.remember_event("Ev1", NOW)
    assert not await repository.remember_event("Ev1", NOW)


async def test_channel_settings_default_and_round_trip(repository: Repository) -> None:
    assert await repository.channel_settings("C1") == ChannelSettings(channel_id="C1")
    chosen = ChannelSettings(channel_id="C1", provider="soket", auto=False, language_hints=["en"])
    await repository.save_channel_settings(chosen, NOW)
    assert await repository.channel_settings("C1") == chosen
    strict = ChannelSettings(channel_id="C2", language_hints=["hi"], language_hints_strict=True)
    await repository.save_channel_settings(strict, NOW)
    assert await repository.channel_settings("C2") == strict

    # What a caller holds is its own until saved.
    held = await repository.channel_settings("C1")
    held.language_hints.append("de")
    held.auto = True
    chosen.language_hints.append("fr")
    assert await repository.channel_settings("C1") == ChannelSettings(
        channel_id="C1", provider="soket", auto=False, language_hints=["en"]
    )


async def test_channel_settings_survive_a_restart(tmp_path: Path) -> None:
    first = await Repository.open(tmp_path / "t.db")
    await first.channel_settings("C1")  # read (and kept) before the change
    chosen = ChannelSettings(
        "C1", provider="soket", language_hints=["en"], language_hints_strict=True
    )
    await first.save_channel_settings(chosen, NOW)
    assert (await first.channel_settings("C1")).provider == "soket"
    await first.close()
    second = await Repository.open(tmp_path / "t.db")
    assert await second.channel_settings("C1") == chosen
    await second.close()


async def test_unknown_columns_are_refused(repository: Repository) -> None:
    with pytest.raises(ValueError, match="not columns of jobs"):
        await repository.update_job("x", NOW, id="y")


async def test_a_write_based_on_an_old_reading_does_not_overwrite_a_newer_one(
    repository: Repository,
) -> None:
    batch = await repository.create_batch(new_batch(), [new_job("F1")], NOW)
    assert batch is not None
    (read,) = await repository.jobs_of(batch.id)
    # Meanwhile something newer happened (a webhook made the job due at once).
    await repository.update_job(read.id, NOW + timedelta(seconds=1), next_attempt_at=None)
    later = NOW + timedelta(minutes=5)
    updated = await repository.update_jobs_unless_changed(
        {read.id: (read.updated_at, {"next_attempt_at": later})}, NOW + timedelta(seconds=2)
    )
    assert updated == 0
    (now,) = await repository.jobs_of(batch.id)
    assert now.next_attempt_at is None
    assert (
        await repository.update_jobs_unless_changed(
            {now.id: (now.updated_at, {"next_attempt_at": later})}, NOW + timedelta(seconds=3)
        )
        == 1
    )


async def test_due_jobs_are_found_through_the_index_of_unfinished_jobs(
    repository: Repository,
) -> None:
    listed = ", ".join(f"'{state}'" for state in sorted(FINISHED_JOB_STATES))
    expected = f"state NOT IN ({listed})"
    assert expected == _UNFINISHED
    due = await repository.create_batch(new_batch(), [new_job("F1")], NOW)
    later = await repository.create_batch(new_batch(ts="2.0"), [new_job("F2", ts="2.0")], NOW)
    assert due is not None and later is not None
    (later_job,) = await repository.jobs_of(later.id)
    await repository.update_job(later_job.id, NOW, next_attempt_at=NOW + timedelta(minutes=1))

    assert [job.batch_id for job in await repository.open_jobs(due_by=NOW)] == [due.id]
    statements: list[str] = []
    await repository._db.set_trace_callback(statements.append)
    await repository.open_jobs(due_by=NOW)
    await repository._db.set_trace_callback(None)
    (query,) = [statement for statement in statements if statement.startswith("SELECT")]
    async with repository._read() as db:
        plan = await db.execute_fetchall(f"EXPLAIN QUERY PLAN {query}")
    assert any("jobs_unfinished" in str(tuple(step)) for step in plan)


async def test_requests_waiting_on_a_stopped_writer_are_told_and_later_ones_are_written(
    repository: Repository,
) -> None:
    waiting = [
        asyncio.ensure_future(repository.create_batch(new_batch(), [new_job("F1")], NOW)),
        asyncio.ensure_future(
            repository.create_batch(new_batch(ts="2.0"), [new_job("F2", ts="2.0")], NOW)
        ),
    ]
    await asyncio.sleep(0)  # both queued; the writer has not begun
    assert repository._batch_writer is not None
    repository._batch_writer.cancel()
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert await repository.create_batch(new_batch(), [new_job("F1")], NOW) is not None


async def test_a_closed_repository_refuses_new_batches(tmp_path: Path) -> None:
    repository = await Repository.open(tmp_path / "t.db")
    written = asyncio.ensure_future(repository.create_batch(new_batch(), [new_job("F1")], NOW))
    await asyncio.sleep(0)
    await repository.close()  # what was asked for before is still written
    assert isinstance(written.result(), Batch)
    with pytest.raises(RuntimeError, match="closed"):
        await repository.create_batch(new_batch(ts="2.0"), [new_job("F2", ts="2.0")], NOW)
