"""What several processes must agree on through the database: a provider's caps (transcriptions in
flight, files stored), counted and taken under a lock, and the notices that a transcription ended
that come before the answer that started it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage.models import JobState, Submission
from storage.store import EARLY_NOTICE_KEPT, Store
from tests.contract.builders import LATER, NOW, job_at, move_job


async def _open_connections(store: Store) -> None:
    """Calls at once, so that a store with a pool has its connections open: the calls that
    follow then run side by side, as those of several processes do."""
    for _ in range(3):
        await asyncio.gather(*(store.ping() for _ in range(8)))


async def test_submission_slots_are_taken_within_the_limit_by_one_caller_at_a_time(
    store: Store,
) -> None:
    await job_at(store, JobState.PROCESSING)
    waiting = [await job_at(store, JobState.UPLOADED) for _ in range(20)]
    await _open_connections(store)
    taken = await asyncio.gather(
        *(store.take_submission_slots("soniox", [job.id], limit=3, now=NOW) for job in waiting)
    )
    assert taken.count(True) == 2, "one running, two taken"
    marked = [job for job in await store.get_jobs([j.id for j in waiting]) if job.sent_at]
    assert len(marked) == 2 and all(job.sent_at == NOW for job in marked)

    # A slot is held until its answer is recorded; a job marked already takes no new one.
    (sent, *_) = marked
    unmarked = next(job for job in waiting if job.id not in {m.id for m in marked})
    assert await store.take_submission_slots("soniox", [sent.id], limit=3, now=LATER)
    assert not await store.take_submission_slots("soniox", [unmarked.id], limit=3, now=NOW)
    assert await store.take_submission_slots("soniox", [unmarked.id], limit=None, now=NOW)
    assert await store.take_submission_slots("soket", [], limit=1, now=NOW)


async def test_with_nothing_in_flight_any_number_of_submissions_may_go(store: Store) -> None:
    waiting = [await job_at(store, JobState.UPLOADED) for _ in range(3)]
    assert await store.take_submission_slots("soniox", [j.id for j in waiting], limit=2, now=NOW)
    other = await job_at(store, JobState.UPLOADED)
    assert not await store.take_submission_slots("soniox", [other.id], limit=3, now=NOW)
    assert await store.take_submission_slots("soniox", [other.id], limit=4, now=NOW)


async def test_upload_room_is_taken_within_the_caps_by_one_caller_at_a_time(
    store: Store,
) -> None:
    await job_at(store, JobState.UPLOADED)  # 100 bytes held
    waiting = [await job_at(store, JobState.UPLOADING) for _ in range(20)]
    await _open_connections(store)
    taken = await asyncio.gather(
        *(
            store.take_upload_room("soniox", [job.id], max_files=3, max_bytes=None, now=NOW)
            for job in waiting
        )
    )
    assert taken.count(True) == 2
    assert await store.stored_at_provider("soniox") == (3, 300)
    left = [job for job in await store.get_jobs([j.id for j in waiting]) if job.sent_at is None]
    assert not await store.take_upload_room(
        "soniox", [left[0].id], max_files=None, max_bytes=350, now=NOW
    )
    assert await store.take_upload_room(
        "soniox", [left[0].id], max_files=None, max_bytes=400, now=NOW
    )
    assert await store.take_upload_room(
        "soniox", [left[1].id], max_files=None, max_bytes=None, now=NOW
    )
    assert await store.stored_at_provider("soniox") == (5, 500)


async def test_with_nothing_stored_any_upload_fits(store: Store) -> None:
    job = await job_at(store, JobState.UPLOADING)
    assert await store.take_upload_room("soniox", [job.id], max_files=1, max_bytes=1, now=NOW)
    assert await store.stored_at_provider("soniox") == (1, 100)


async def _submit(store: Store, state: JobState, remote_id: str) -> str:
    """A job submitted as ``remote_id``, first polled at ``LATER``; its id."""
    job = await job_at(store, state)
    await store.mark_submission_sent([job.id], NOW)
    submission = Submission(job.id, remote_id, None, eta_at=None, poll_at=LATER)
    assert job.id in await store.record_submissions([submission], {}, NOW)
    return job.id


async def test_a_notice_before_its_submission_makes_the_job_due_once_recorded(
    store: Store,
) -> None:
    assert await store.record_remote_finished("soniox", "tr-early", NOW) == 0
    job_id = await _submit(store, JobState.UPLOADED, "tr-early")
    (job,) = await store.get_jobs([job_id])
    assert job.next_attempt_at is None, "due at once"
    assert job_id in [due.id for due in await store.due_jobs(NOW)]

    # Used up: a later submission of the same id (another provider's, or a repeat) waits.
    again = await _submit(store, JobState.UPLOADED, "tr-early")
    (later,) = await store.get_jobs([again])
    assert later.next_attempt_at == LATER


async def test_a_notice_names_one_providers_transcription_and_is_kept_for_a_while(
    store: Store,
) -> None:
    assert await store.record_remote_finished("soket", "tr-other", NOW) == 0
    other = await _submit(store, JobState.UPLOADED, "tr-other")
    assert (await store.get_jobs([other]))[0].next_attempt_at == LATER, "another provider's"

    stale = NOW - EARLY_NOTICE_KEPT - timedelta(seconds=1)
    assert await store.record_remote_finished("soniox", "tr-stale", stale) == 0
    late = await _submit(store, JobState.UPLOADED, "tr-stale")
    assert (await store.get_jobs([late]))[0].next_attempt_at == LATER, "kept too long ago"


async def test_a_notice_after_its_submission_makes_the_running_job_due(store: Store) -> None:
    job_id = await _submit(store, JobState.UPLOADED, "tr-known")
    job = await store.get_job(job_id)
    assert job is not None
    await move_job(store, job, JobState.PROCESSING)
    assert await store.record_remote_finished("soniox", "tr-known", NOW) == 1
    assert (await store.get_jobs([job_id]))[0].next_attempt_at is None
