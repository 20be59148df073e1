"""What each of a job's verbs records besides its state, and what a poll cycle reads of jobs."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from storage.models import (
    Failure,
    FileInfo,
    Job,
    JobState,
    ProviderAccountProblem,
    Resubmission,
    StillRunning,
    Submission,
    Upload,
)
from storage.store import InvalidRecord, Store
from tests.contract.builders import (
    FAILURE,
    LATER,
    NOW,
    batch_with,
    job_at,
    move_job,
    new_batch,
    new_job,
    new_link,
    next_ts,
)
from tests.workspaces import T1


async def _reread(store: Store, job: Job) -> Job:
    found = await store.get_job(job.id)
    assert found is not None
    return found


async def test_a_download_keeps_the_spool_file_until_it_is_deleted(store: Store) -> None:
    job = await job_at(store, JobState.DOWNLOADING)
    assert await store.schedule_retry(
        [job.id], attempts=1, retry_at=LATER, detail="x", stalled_since=NOW, now=NOW
    )
    assert await store.record_download(job.id, spool_path="/spool/a", size_bytes=42, now=LATER)
    job = await _reread(store, job)
    assert (job.spool_path, job.size_bytes, job.stalled_since) == ("/spool/a", 42, None)
    assert job.updated_at == LATER

    assert await store.record_spool_deleted(job.id, LATER)
    assert (await _reread(store, job)).spool_path is None
    assert not await store.record_spool_deleted(job.id, LATER), "nothing left to forget"


async def test_a_lost_spool_file_sends_the_job_back_to_slack(store: Store) -> None:
    job = await job_at(store, JobState.UPLOADING)
    assert await store.download_again(job.id, NOW)
    job = await _reread(store, job)
    assert (job.state, job.spool_path) == (JobState.QUEUED, None)


async def test_a_stub_learns_its_file_from_slack_or_is_skipped(store: Store) -> None:
    job = await job_at(store, JobState.QUEUED)
    info = FileInfo("memo.m4a", "https://files.slack.com/m", "audio/mp4", 9, 1500)
    assert await store.record_file_info(job.id, info, NOW)
    job = await _reread(store, job)
    assert not job.needs_file_info
    assert (job.filename, job.download_url, job.mimetype) == (
        "memo.m4a",
        "https://files.slack.com/m",
        "audio/mp4",
    )
    assert (job.size_bytes, job.duration_ms) == (9, 1500)

    other = await job_at(store, JobState.QUEUED)
    assert await store.skip_job(other.id, LATER)
    assert (await _reread(store, other)).finished_at == LATER
    uploading = await job_at(store, JobState.UPLOADING)
    assert not await store.record_file_info(uploading.id, info, NOW), "only before its download"


async def test_calls_marked_sent_are_answered_by_their_outcome(store: Store) -> None:
    uploading, queued = (
        await job_at(store, JobState.UPLOADING),
        await job_at(store, JobState.QUEUED),
    )
    assert await store.mark_upload_sent([uploading.id, queued.id], NOW) == 1
    assert (await _reread(store, uploading)).sent_at == NOW
    assert (await _reread(store, queued)).sent_at is None, "no upload is sent for a queued job"
    assert await store.schedule_retry(
        [uploading.id], attempts=3, retry_at=LATER, detail="x", stalled_since=NOW, now=NOW
    )

    assert await store.record_uploads([Upload(uploading.id, "file-1", "up-1")], {}, LATER) == {
        uploading.id
    }
    uploaded = await _reread(store, uploading)
    assert (uploaded.provider_file_id, uploaded.provider_upload_id) == ("file-1", "up-1")
    assert (uploaded.sent_at, uploaded.attempts, uploaded.next_attempt_at) == (None, 0, None)
    assert uploaded.stalled_since is None

    refused = await job_at(store, JobState.UPLOADING)
    await store.mark_upload_sent([refused.id], NOW)
    assert await store.record_uploads([], {refused.id: FAILURE}, LATER) == {refused.id}
    failed = await _reread(store, refused)
    assert (failed.state, failed.error, failed.error_detail) == (
        JobState.FAILED,
        FAILURE.message,
        FAILURE.detail,
    )
    assert (failed.finished_at, failed.sent_at) == (LATER, None), "a refusal is an answer"


async def test_a_submission_records_what_the_provider_started(store: Store) -> None:
    uploaded = await job_at(store, JobState.UPLOADED)
    _, (link,) = await batch_with(store, new_link("https://x.test/a.mp3"))
    refused = await job_at(store, JobState.UPLOADED)
    ids = [uploaded.id, link.id, refused.id]
    assert await store.mark_submission_sent(ids, NOW) == 3
    eta = LATER + timedelta(minutes=1)

    moved = await store.record_submissions(
        [
            Submission(uploaded.id, "tr-1", None, eta_at=eta, poll_at=LATER),
            Submission(link.id, "tr-2", "file-2", eta_at=None, poll_at=None),
        ],
        {refused.id: FAILURE},
        NOW,
    )

    assert moved == set(ids)
    first, second, third = [await _reread(store, job) for job in (uploaded, link, refused)]
    assert (first.provider_job_id, first.provider_eta_at, first.next_attempt_at) == (
        "tr-1",
        eta,
        LATER,
    )
    assert first.provider_file_id == uploaded.provider_file_id, "its file is kept"
    assert (first.stalled_since, first.sent_at, first.attempts) == (NOW, None, 0)
    assert (second.provider_job_id, second.provider_file_id) == ("tr-2", "file-2")
    assert second.next_attempt_at is None, "already said to be done: due at once"
    assert (third.state, third.sent_at) == (JobState.FAILED, None)


async def test_a_poll_answer_never_overwrites_a_newer_change(store: Store) -> None:
    read = await job_at(store, JobState.SUBMITTED)
    # Meanwhile something newer happened (a webhook made the job due at once).
    assert await store.record_remote_finished("soniox", str(read.provider_job_id), LATER) == 1
    stale = StillRunning(read.id, read.state, read.updated_at, poll_at=LATER, eta_at=LATER)
    assert await store.record_still_running([stale], LATER + timedelta(seconds=1)) == 0
    now = await _reread(store, read)
    assert (now.state, now.next_attempt_at) == (JobState.SUBMITTED, None)

    fresh = StillRunning(now.id, now.state, now.updated_at, poll_at=LATER, eta_at=LATER)
    assert await store.record_still_running([fresh], LATER + timedelta(seconds=2)) == 1
    running = await _reread(store, now)
    assert (running.state, running.next_attempt_at, running.provider_eta_at) == (
        JobState.PROCESSING,
        LATER,
        LATER,
    )
    again = StillRunning(running.id, running.state, running.updated_at, poll_at=NOW)
    assert await store.record_still_running([again], LATER + timedelta(seconds=3)) == 1
    kept = await _reread(store, running)
    assert (kept.next_attempt_at, kept.provider_eta_at) == (NOW, LATER), "no estimate keeps one"


async def test_a_notice_from_the_provider_makes_only_its_running_jobs_due(store: Store) -> None:
    running = await job_at(store, JobState.PROCESSING)
    other = await job_at(store, JobState.PROCESSING)
    remote = str(running.provider_job_id)
    assert await store.record_remote_finished("soket", remote, NOW) == 0, "another provider's"
    assert await store.record_remote_finished("soniox", remote, NOW) == 1
    assert (await _reread(store, running)).next_attempt_at is None
    assert (await _reread(store, other)).next_attempt_at == LATER
    done = await move_job(store, await _reread(store, running), JobState.COMPLETED)
    assert await store.record_remote_finished("soniox", remote, NOW) == 0, "not once finished"
    assert done.transcript == {"text": "hi"} and done.raw_result == {"r": 1}


async def test_a_completed_job_forgets_its_earlier_error(store: Store) -> None:
    job = await job_at(store, JobState.PROCESSING)
    await store.schedule_retry(
        [job.id], attempts=2, retry_at=LATER, detail="503", stalled_since=NOW, now=NOW
    )
    assert await store.complete_job(job.id, transcript={"text": "x"}, raw=[1, "a"], now=LATER)
    done = await _reread(store, job)
    assert (done.transcript, done.raw_result, done.finished_at) == ({"text": "x"}, [1, "a"], LATER)
    assert (done.error, done.error_detail) == (None, None)


async def test_a_failed_job_keeps_its_unanswered_call_and_the_providers_answer(
    store: Store,
) -> None:
    uploading = await job_at(store, JobState.UPLOADING)
    await store.mark_upload_sent([uploading.id], NOW)

    processing = await job_at(store, JobState.PROCESSING)
    answer = Failure("Could not.", "decode error", provider_answer={"status": "error"})
    assert await store.fail_jobs([uploading.id], FAILURE, LATER) == {uploading.id}
    assert await store.fail_jobs([processing.id], answer, LATER) == {processing.id}
    failed = await _reread(store, uploading)
    assert failed.sent_at == NOW, "what that upload created is looked for at clean-up"
    assert (failed.error, failed.finished_at, failed.raw_result) == (FAILURE.message, LATER, None)
    assert (await _reread(store, processing)).raw_result == {"status": "error"}
    assert await store.fail_jobs([], FAILURE, LATER) == set()


async def test_lost_work_goes_back_to_be_submitted_again_and_is_counted(store: Store) -> None:
    stored, link_job, given_up = [await job_at(store, JobState.PROCESSING) for _ in range(3)]
    moved = await store.record_work_lost(
        [
            Resubmission(stored.id, file_id=stored.provider_file_id, detail="lost it"),
            Resubmission(link_job.id, file_id=None, detail="lost that"),
        ],
        {given_up.id: FAILURE},
        LATER,
    )
    assert moved == {stored.id, link_job.id, given_up.id}
    again, restarted, failed = [await _reread(store, j) for j in (stored, link_job, given_up)]
    assert (again.state, again.provider_file_id, again.provider_job_id) == (
        JobState.UPLOADED,
        stored.provider_file_id,
        None,
    )
    assert (again.resubmissions, again.error_detail, again.next_attempt_at) == (1, "lost it", None)
    assert (restarted.state, restarted.provider_file_id, restarted.resubmissions) == (
        JobState.QUEUED,
        None,
        1,
    )
    assert (again.provider_eta_at, again.stalled_since, again.attempts) == (None, None, 0)
    assert failed.state is JobState.FAILED and failed.resubmissions == 0


async def test_retries_and_waits_apply_to_unfinished_jobs_only(store: Store) -> None:
    waiting, done = await job_at(store, JobState.UPLOADED), await job_at(store, JobState.COMPLETED)
    ids = [waiting.id, done.id]
    assert (
        await store.schedule_retry(
            ids, attempts=4, retry_at=LATER, detail="503", stalled_since=NOW, now=NOW
        )
        == 1
    )
    retried = await _reread(store, waiting)
    assert (retried.attempts, retried.next_attempt_at, retried.error_detail) == (4, LATER, "503")
    assert retried.stalled_since == NOW
    assert await store.postpone_jobs(ids, until=NOW, stalled_since=LATER, now=NOW) == 1
    postponed = await _reread(store, waiting)
    assert (postponed.next_attempt_at, postponed.stalled_since, postponed.attempts) == (
        NOW,
        LATER,
        4,
    )
    assert await _reread(store, done) == done


async def test_a_wait_for_room_counts_against_no_age_limit(store: Store) -> None:
    job = await job_at(store, JobState.UPLOADING)
    assert await store.postpone_jobs([job.id], until=LATER, stalled_since=None, now=NOW) == 1
    waiting = await _reread(store, job)
    assert (waiting.next_attempt_at, waiting.stalled_since) == (LATER, None)


async def test_jobs_wait_for_their_providers_account_until_it_works(store: Store) -> None:
    held = [await job_at(store, JobState.UPLOADED) for _ in range(3)]
    ids = [job.id for job in held]
    problem = ProviderAccountProblem(
        "soniox", "balance_exhausted", "402", "The balance is used up.", ["submit"], NOW
    )
    await store.record_account_problem(problem, NOW)
    assert await store.account_problems() == [problem]
    changed = ProviderAccountProblem(
        "soniox", "budget", "402 again", "Used up.", ["submit", "upload"], NOW
    )
    await store.record_account_problem(changed, LATER)
    assert await store.account_problems() == [changed], "one problem per provider"

    assert await store.hold_for_account(
        ids, provider="soniox", until=LATER, stalled_since=NOW, detail="402", now=NOW
    ) == len(ids)
    first = await _reread(store, held[0])
    assert (first.held_by, first.next_attempt_at, first.error_detail) == ("soniox", LATER, "402")
    assert await store.release_jobs([held[0].id], NOW) == 1
    released = await _reread(store, held[0])
    assert (released.held_by, released.next_attempt_at, released.stalled_since) == (
        None,
        None,
        NOW,
    )

    assert await store.resolve_account_problem("soniox", LATER) == 2
    assert await store.account_problems() == []
    for job in held[1:]:
        free = await _reread(store, job)
        assert (free.held_by, free.next_attempt_at, free.stalled_since) == (None, None, None)


async def test_a_lost_answer_is_recorded_once_looked_for(store: Store) -> None:
    batch, (uploading, submitting) = await batch_with(
        store, new_job("F1", ts := next_ts()), new_job("F2", ts)
    )
    uploading = await move_job(store, uploading, JobState.UPLOADING)
    submitting = await move_job(store, submitting, JobState.UPLOADED)
    await store.mark_upload_sent([uploading.id], NOW)
    await store.mark_submission_sent([submitting.id], NOW)
    assert await store.lost_answers_to_recover() == [], "their batch goes on"
    assert await store.cancel_batch(batch.id, NOW)
    assert {job.id for job in await store.lost_answers_to_recover()} == {
        uploading.id,
        submitting.id,
    }

    assert await store.record_lost_answer(uploading.id, file_id="f-1", remote_id=None, now=NOW)
    assert await store.record_lost_answer(submitting.id, file_id=None, remote_id="tr", now=NOW)
    found, started = await _reread(store, uploading), await _reread(store, submitting)
    assert (found.provider_file_id, found.sent_at) == ("f-1", None)
    assert (started.provider_job_id, started.provider_file_id) == (
        "tr",
        submitting.provider_file_id,
    )
    assert await store.lost_answers_to_recover() == []
    assert not await store.record_lost_answer(found.id, file_id=None, remote_id=None, now=NOW)


async def test_spool_files_of_finished_batches_are_unneeded(store: Store) -> None:
    batch, (job,) = await batch_with(store)
    job = await move_job(store, job, JobState.UPLOADING)
    assert await store.jobs_with_unneeded_spool() == []
    assert await store.cancel_batch(batch.id, NOW)
    assert [found.id for found in await store.jobs_with_unneeded_spool()] == [job.id]
    await store.record_spool_deleted(job.id, NOW)
    assert await store.jobs_with_unneeded_spool() == []


async def test_clean_up_waits_for_delivery_unless_the_provider_cleans_per_file(
    store: Store,
) -> None:
    batch, (done, running) = await batch_with(
        store, new_job("F1", ts := next_ts()), new_job("F2", ts)
    )
    done = await move_job(store, done, JobState.COMPLETED)
    await move_job(store, running, JobState.PROCESSING)
    assert await store.jobs_to_clean_up(LATER) == []
    assert await store.jobs_to_clean_up(LATER, finished_early=["soket"]) == []
    early = await store.jobs_to_clean_up(LATER, finished_early=["soniox"])
    assert [job.id for job in early] == [done.id]

    retry_at = LATER + timedelta(minutes=1)
    assert await store.postpone_clean_up([done.id], retry_at, LATER) == 1
    assert await store.jobs_to_clean_up(LATER, finished_early=["soniox"]) == []
    again = await store.jobs_to_clean_up(retry_at, finished_early=["soniox"])
    assert [job.id for job in again] == [done.id]
    assert await store.mark_cleaned_up([done.id], LATER) == 1
    assert await store.jobs_to_clean_up(retry_at, finished_early=["soniox"]) == []

    await store.fail_jobs([running.id], FAILURE, LATER)
    assert await store.jobs_to_clean_up(retry_at) == [], "its batch is not delivered yet"
    assert await store.record_reply(batch.id, "1.5", LATER)
    assert [job.id for job in await store.jobs_to_clean_up(retry_at)] == [running.id]


async def test_an_unanswered_call_holds_back_the_early_clean_up(store: Store) -> None:
    sent, answered = [await job_at(store, JobState.UPLOADED) for _ in range(2)]
    await store.mark_submission_sent([sent.id], NOW)
    await store.fail_jobs([sent.id, answered.id], FAILURE, NOW)
    found = await store.jobs_to_clean_up(NOW, finished_early=["soniox"])
    # What the unanswered submission created is looked for once the batch has ended.
    assert [job.id for job in found] == [answered.id]


async def test_what_each_provider_holds_for_us(store: Store) -> None:
    _, (uploaded, sending, waiting) = await batch_with(
        store,
        new_job("F1", ts := next_ts(), size=100),
        new_job("F2", ts, size=20),
        new_job("F3", ts, size=7),
    )
    assert await store.stored_at_provider("soniox") == (0, 0)
    for job, size in ((uploaded, 100), (sending, 20), (waiting, 7)):
        await store.start_download(job.id, NOW)
        await store.record_download(job.id, spool_path=f"/s/{job.id}", size_bytes=size, now=NOW)
    await store.mark_upload_sent([uploaded.id, sending.id], NOW)
    await store.record_uploads([Upload(uploaded.id, "f1")], {}, NOW)
    assert await store.stored_at_provider("soniox") == (2, 120)
    assert await store.stored_at_provider("soket") == (0, 0)
    await store.mark_cleaned_up([uploaded.id], NOW)
    assert await store.stored_at_provider("soniox") == (1, 20)


async def test_a_count_taken_while_an_upload_is_recorded_sees_the_file_once(store: Store) -> None:
    # The count reads both the files held and the uploads under way: an upload recorded
    # between the two readings would be in neither, and its room given away twice.
    _, (job,) = await batch_with(store, new_job("F1", next_ts(), size=100))
    await store.start_download(job.id, NOW)
    await store.record_download(job.id, spool_path="/s/x", size_bytes=100, now=NOW)
    await store.mark_upload_sent([job.id], NOW)

    counted, _ = await asyncio.gather(
        store.stored_at_provider("soniox"),
        store.record_uploads([Upload(job.id, "f1")], {}, NOW),
    )
    assert counted == (1, 100)


async def test_attachments_once_uploaded_are_not_uploaded_again(store: Store) -> None:
    job = await job_at(store, JobState.COMPLETED)
    assert await store.mark_attachments_uploaded({job.id}, NOW) == 1
    assert (await _reread(store, job)).attachment_uploaded
    assert await store.mark_attachments_uploaded(set(), NOW) == 0


async def test_due_jobs_are_whole_open_batches_with_something_due(store: Store) -> None:
    due, (due_now, due_later) = await batch_with(
        store, new_job("F1", ts := next_ts()), new_job("F2", ts), now=NOW
    )
    later, (not_due,) = await batch_with(store, now=NOW + timedelta(seconds=1))
    cancelled, _ = await batch_with(store, now=NOW + timedelta(seconds=2))
    _, (done,) = await batch_with(store, now=NOW + timedelta(seconds=3))
    for job in (due_later, not_due):
        await store.postpone_jobs([job.id], until=LATER, stalled_since=NOW, now=NOW)
    await store.cancel_batch(cancelled.id, NOW)
    await move_job(store, done, JobState.FAILED)

    found = await store.due_jobs(NOW)
    assert [job.id for job in found] == [due_now.id, due_later.id], "the whole batch, in order"
    assert {job.batch_id for job in await store.due_jobs(LATER)} == {due.id, later.id}
    assert [job.batch_id for job in await store.unfinished_jobs()] == [due.id, due.id, later.id]
    assert await store.count_unfinished_jobs() == 3


async def test_jobs_are_read_by_id_and_by_batch_in_order(store: Store) -> None:
    first, (a, b) = await batch_with(store, new_job("F1", ts := next_ts()), new_job("F2", ts))
    second, (c,) = await batch_with(store)
    by_id = await store.get_jobs([b.id, c.id, a.id, "nope"])
    assert [job.id for job in by_id] == [
        job.id for job in sorted([a, b, c], key=lambda job: (job.batch_id, job.position))
    ]
    assert await store.get_jobs([]) == []
    assert await store.get_job("nope") is None
    assert await store.jobs_of("b-000000000000") == []
    by_batch = await store.jobs_of_batches([second.id, first.id, "b-000000000000"])
    assert [job.id for job in by_batch[first.id]] == [a.id, b.id]
    assert [job.id for job in by_batch[second.id]] == [c.id]
    assert by_batch["b-000000000000"] == []
    assert await store.jobs_of_batches([]) == {}


async def test_in_flight_counts_jobs_running_at_each_provider(store: Store) -> None:
    await job_at(store, JobState.SUBMITTED)
    await job_at(store, JobState.PROCESSING)
    await job_at(store, JobState.UPLOADED)
    await job_at(store, JobState.COMPLETED)
    assert await store.count_in_flight() == {"soniox": 2}


async def test_an_id_given_twice_counts_once(store: Store) -> None:
    uploading = await job_at(store, JobState.UPLOADING)
    uploaded = await job_at(store, JobState.UPLOADED)
    done = await job_at(store, JobState.COMPLETED)
    twice = [uploading.id, uploading.id]
    assert await store.mark_upload_sent(twice, NOW) == 1
    assert await store.mark_submission_sent([uploaded.id, uploaded.id], NOW) == 1
    assert await store.postpone_jobs(twice, until=LATER, stalled_since=None, now=NOW) == 1
    assert (
        await store.schedule_retry(
            twice, attempts=1, retry_at=LATER, detail="x", stalled_since=NOW, now=NOW
        )
        == 1
    )
    assert (
        await store.hold_for_account(
            twice, provider="soniox", until=LATER, stalled_since=NOW, detail="x", now=NOW
        )
        == 1
    )
    assert await store.release_jobs(twice, NOW) == 1
    assert await store.mark_attachments_uploaded([done.id, done.id], NOW) == 1
    assert await store.postpone_clean_up([done.id, done.id], LATER, NOW) == 1
    assert await store.mark_cleaned_up([done.id, done.id], NOW) == 1
    assert await store.mark_progress_pending([done.batch_id, done.batch_id], NOW) == 1


async def test_a_time_without_a_time_zone_is_refused(store: Store) -> None:
    # Which zone it meant is unknown: read as local time in one backend and as UTC in another,
    # it would move the work by hours.
    naive = datetime(2026, 11, 21, 12, 0)
    job = await job_at(store, JobState.UPLOADING)
    with pytest.raises(InvalidRecord, match="time zone"):
        await store.postpone_jobs([job.id], until=naive, stalled_since=None, now=NOW)
    with pytest.raises(InvalidRecord, match="time zone"):
        await store.postpone_jobs([job.id], until=LATER, stalled_since=None, now=naive)
    assert await _reread(store, job) == job, "nothing written"
    with pytest.raises(InvalidRecord, match="time zone"):
        await store.create_batch(new_batch("9.0"), [new_job("F9", "9.0")], naive)
    assert await store.active_batch_for_message(T1, "C1", "9.0") is None
    with pytest.raises(InvalidRecord, match="time zone"):
        await store.due_jobs(naive)
    with pytest.raises(InvalidRecord, match="time zone"):
        await store.record_still_running(
            [StillRunning(job.id, job.state, job.updated_at, poll_at=naive)], NOW
        )


async def test_the_unfinished_jobs_of_a_cancelled_batch_are_cleaned_up(store: Store) -> None:
    batch, (running, _) = await batch_with(store, new_job("F1", ts := next_ts()), new_job("F2", ts))
    running = await move_job(store, running, JobState.PROCESSING)
    _, (other,) = await batch_with(store)
    await move_job(store, other, JobState.PROCESSING)
    assert await store.jobs_to_clean_up(LATER) == []
    assert await store.cancel_batch(batch.id, NOW)
    found = await store.jobs_to_clean_up(LATER)
    assert [job.id for job in found] == [running.id], "not the one with nothing at the provider"
    assert await store.mark_cleaned_up([running.id], LATER) == 1
    assert await store.jobs_to_clean_up(LATER) == []
