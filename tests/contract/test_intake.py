"""What intake relies on: events and files taken once, concurrent requests grouped without losing
their rules, channel settings, and a store that is closed or restarted."""

from __future__ import annotations

import asyncio
from datetime import timedelta, timezone

import pytest

from storage.models import Batch, BatchState, ChannelSettings, Failure, JobKind, JobState, NewJob
from storage.store import InvalidRecord, Store, StoreClosed
from tests.contract.backends import Backend
from tests.contract.builders import NOW, new_batch, new_job, new_link
from tests.workspaces import T1


async def test_an_event_is_remembered_once(store: Store) -> None:
    assert await store.remember_event("Ev1", NOW)
    assert not await store.remember_event("Ev1", NOW + timedelta(seconds=1))
    assert await store.remember_event("Ev2", NOW)


async def test_a_new_batch_is_open_with_its_jobs_queued_in_order(store: Store) -> None:
    asked = new_batch(hints=["en", "hi"])
    asked.language_hints_strict = True
    batch = await store.create_batch(
        asked, [new_job("F1"), new_link("https://x.test/a.mp3"), new_job("F2")], NOW
    )

    assert batch is not None
    assert await store.get_batch(batch.id) == batch
    assert batch.state is BatchState.OPEN and batch.created_at == NOW
    assert (batch.channel_id, batch.message_ts, batch.provider) == ("C1", "1.0", "soniox")
    assert (batch.language_hints, batch.language_hints_strict) == (["en", "hi"], True)
    jobs = await store.jobs_of(batch.id)
    assert [(job.position, job.kind, job.state) for job in jobs] == [
        (0, JobKind.SLACK_FILE, JobState.QUEUED),
        (1, JobKind.URL, JobState.QUEUED),
        (2, JobKind.SLACK_FILE, JobState.QUEUED),
    ]
    assert [job.filename for job in jobs] == ["F1.wav", "a.mp3", "F2.wav"]
    assert all(job.provider == "soniox" and job.batch_id == batch.id for job in jobs)


async def test_the_same_file_of_the_same_message_is_taken_once(store: Store) -> None:
    first = await store.create_batch(new_batch(), [new_job("F1"), new_job("F2")], NOW)
    again = await store.create_batch(new_batch(), [new_job("F1"), new_job("F2")], NOW)
    partly_new = await store.create_batch(new_batch(), [new_job("F2"), new_job("F3")], NOW)

    assert first is not None and again is None and partly_new is not None
    assert [job.slack_file_id for job in await store.jobs_of(partly_new.id)] == ["F3"]
    assert len(await store.unfinished_jobs()) == 3
    assert await store.count_batches_by_state() == {"open": 2}, "no empty batch is kept"


async def test_jobs_without_a_key_are_always_taken(store: Store) -> None:
    links = [new_link("https://x.test/a.mp3")]
    first = await store.create_batch(new_batch(), links, NOW)
    second = await store.create_batch(new_batch(), links, NOW)
    assert first is not None and second is not None and first.id != second.id


async def test_a_job_refused_at_intake_starts_failed(store: Store) -> None:
    refused = NewJob(
        kind=JobKind.SLACK_FILE, filename="huge.mp4", slack_file_id="F9", refused_reason="too big"
    )
    batch = await store.create_batch(new_batch(), [new_job("F1"), refused], NOW)
    assert batch is not None
    queued, failed = await store.jobs_of(batch.id)
    assert queued.state is JobState.QUEUED and queued.finished_at is None
    assert (failed.state, failed.error, failed.finished_at) == (JobState.FAILED, "too big", NOW)


async def test_unless_running_refuses_a_second_batch_for_a_running_message(store: Store) -> None:
    first = await store.create_batch(new_batch(), [new_job("F1")], NOW, unless_running=True)
    assert first is not None
    assert await store.create_batch(new_batch(), [new_job("F2")], NOW, unless_running=True) is None
    other = await store.create_batch(
        new_batch("2.0"), [new_job("F3", "2.0")], NOW, unless_running=True
    )
    assert other is not None, "another message is not held back"
    assert await store.cancel_batch(first.id, NOW)
    again = await store.create_batch(new_batch(), [new_job("F4")], NOW, unless_running=True)
    assert again is not None, "once the first has finished, the message may be asked for again"


async def test_requests_made_at_once_keep_their_rules(store: Store) -> None:
    first, same_file, other, running, running_again = await asyncio.gather(
        store.create_batch(new_batch(), [new_job("F1"), new_job("F2")], NOW),
        store.create_batch(new_batch(), [new_job("F1")], NOW),
        store.create_batch(new_batch("2.0"), [new_job("F9", "2.0")], NOW),
        store.create_batch(new_batch("3.0"), [new_job("F5", "3.0")], NOW, unless_running=True),
        store.create_batch(new_batch("3.0"), [new_job("F6", "3.0")], NOW, unless_running=True),
    )

    assert same_file is None, "a file already taken in the same group is not taken twice"
    assert running_again is None, "a message already running in the same group is not started"
    for batch in (first, other, running):
        assert batch is not None
        assert await store.get_batch(batch.id) == batch
    assert first is not None and len(await store.jobs_of(first.id)) == 2
    assert await store.count_batches_by_state() == {"open": 3}, "no empty batch left behind"


async def test_many_requests_at_once_are_all_written_in_order(store: Store) -> None:
    batches = await asyncio.gather(
        *(
            store.create_batch(new_batch(f"{index}.0"), [new_job("F1", f"{index}.0")], NOW)
            for index in range(50)
        )
    )
    assert all(isinstance(batch, Batch) for batch in batches)
    assert len({batch.id for batch in batches if batch is not None}) == 50
    assert await store.count_unfinished_jobs() == 50


async def test_a_faulty_request_fails_alone_when_made_with_others(store: Store) -> None:
    faulty = new_batch("9.0")
    faulty.thread_ts = None  # type: ignore[assignment]
    good, bad = await asyncio.gather(
        store.create_batch(new_batch(), [new_job("F1")], NOW),
        store.create_batch(faulty, [new_job("F2", "9.0")], NOW),
        return_exceptions=True,
    )
    assert isinstance(bad, InvalidRecord)
    assert isinstance(good, Batch) and await store.get_batch(good.id) == good
    with pytest.raises(InvalidRecord):
        await store.create_batch(faulty, [new_job("F3", "9.0")], NOW)


async def test_a_job_the_database_refuses_fails_its_request_and_is_not_dropped(
    store: Store,
) -> None:
    nameless = new_job("F2")
    nameless.filename = None  # type: ignore[assignment]
    with pytest.raises(InvalidRecord):
        await store.create_batch(new_batch(), [new_job("F1"), nameless], NOW)
    assert await store.count_batches_by_state() == {}, "all or nothing"
    assert await store.unfinished_jobs() == []
    again = await store.create_batch(new_batch(), [new_job("F1"), new_job("F2")], NOW)
    assert again is not None and len(await store.jobs_of(again.id)) == 2, "no key was taken"


async def test_a_closed_store_refuses_work_but_finishes_what_was_asked(backend: Backend) -> None:
    store = await backend.open()
    written = asyncio.ensure_future(store.create_batch(new_batch(), [new_job("F1")], NOW))
    await asyncio.sleep(0)
    await store.close()  # what was asked for before is still written
    assert isinstance(written.result(), Batch)
    with pytest.raises(StoreClosed):
        await store.create_batch(new_batch("2.0"), [new_job("F2", "2.0")], NOW)
    with pytest.raises(StoreClosed):
        await store.ping()
    with pytest.raises(StoreClosed):
        await store.fail_jobs(["x"], Failure("m", "d"), NOW)
    await store.close()  # closing again does nothing

    reopened = await backend.open()
    try:
        assert [job.slack_file_id for job in await reopened.unfinished_jobs()] == ["F1"]
        assert await reopened.ping()
    finally:
        await reopened.close()


async def test_channel_settings_default_and_round_trip(store: Store) -> None:
    assert await store.channel_settings(T1, "C1") == ChannelSettings(channel_id="C1")
    chosen = ChannelSettings(channel_id="C1", provider="soket", auto=False, language_hints=["en"])
    await store.save_channel_settings(T1, chosen, NOW)
    assert await store.channel_settings(T1, "C1") == chosen
    strict = ChannelSettings(channel_id="C2", language_hints=["hi"], language_hints_strict=True)
    await store.save_channel_settings(T1, strict, NOW)
    assert await store.channel_settings(T1, "C2") == strict

    # What a caller holds is its own until saved.
    held = await store.channel_settings(T1, "C1")
    held.language_hints.append("de")
    held.auto = True
    chosen.language_hints.append("fr")
    assert await store.channel_settings(T1, "C1") == ChannelSettings(
        channel_id="C1", provider="soket", auto=False, language_hints=["en"]
    )


async def test_what_was_recorded_survives_a_restart(backend: Backend) -> None:
    first = await backend.open()
    await first.channel_settings(T1, "C1")  # read (and perhaps kept) before the change
    chosen = ChannelSettings(
        "C1", provider="soket", language_hints=["en"], language_hints_strict=True
    )
    await first.save_channel_settings(T1, chosen, NOW)
    assert (await first.channel_settings(T1, "C1")).provider == "soket"
    batch = await first.create_batch(new_batch(), [new_job("F1")], NOW)
    assert await first.remember_event("Ev1", NOW)
    await first.close()

    second = await backend.open()
    try:
        assert await second.channel_settings(T1, "C1") == chosen
        assert batch is not None and await second.get_batch(batch.id) == batch
        assert not await second.remember_event("Ev1", NOW)
    finally:
        await second.close()


async def test_times_come_back_as_the_same_instants_in_utc(store: Store) -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    created = NOW.astimezone(india) + timedelta(microseconds=7)
    batch = await store.create_batch(new_batch(), [new_job("F1")], created)
    assert batch is not None
    read = await store.get_batch(batch.id)
    assert read is not None and read.created_at == created
    assert read.created_at.utcoffset() == timedelta(0)
    (job,) = await store.jobs_of(batch.id)
    assert job.created_at == created and job.created_at.utcoffset() == timedelta(0)
