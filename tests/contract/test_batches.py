"""A batch's reply and progress message, the channel's views of its batches, figures, retention."""

from __future__ import annotations

import random
import string
from datetime import datetime, timedelta

from storage.models import (
    PENDING_STATUS,
    Batch,
    BatchState,
    Job,
    JobKind,
    JobState,
    LanguageHints,
    NewBatch,
    NewJob,
    ProgressShown,
    Submission,
)
from storage.store import Store
from tests.contract.builders import (
    FAILURE,
    LATER,
    NOW,
    batch_at,
    batch_with,
    move_job,
    new_batch,
    new_job,
    new_link,
    next_ts,
)
from tests.workspaces import T1


async def _reread(store: Store, batch: Batch) -> Batch:
    found = await store.get_batch(batch.id)
    assert found is not None
    return found


async def test_a_batch_is_delivered_once_every_job_has_finished(store: Store) -> None:
    batch, (first, second) = await batch_with(
        store, new_job("F1", ts := next_ts()), new_job("F2", ts)
    )
    await move_job(store, first, JobState.COMPLETED)
    assert await store.batches_to_deliver(NOW) == []
    await move_job(store, second, JobState.SKIPPED)
    (ready,) = await store.batches_to_deliver(NOW)
    assert ready.id == batch.id

    assert await store.begin_delivery(batch.id, NOW)
    assert [found.id for found in await store.batches_to_deliver(NOW)] == [batch.id], (
        "a reply under way is still to be confirmed"
    )
    assert await store.record_reply(batch.id, "1767225601.000100", LATER)
    delivered = await _reread(store, batch)
    assert (delivered.reply_ts, delivered.delivered_at) == ("1767225601.000100", LATER)
    assert await store.batches_to_deliver(LATER) == []


async def test_a_failing_reply_is_retried_later_and_nothing_is_posted_when_not_needed(
    store: Store,
) -> None:
    batch = await batch_at(store, BatchState.OPEN)
    retry_at = NOW + timedelta(seconds=30)
    assert await store.schedule_delivery_retry(
        batch.id, attempts=2, retry_at=retry_at, failing_since=NOW, now=NOW
    )
    retried = await _reread(store, batch)
    assert (retried.attempts, retried.next_attempt_at, retried.failing_since) == (2, retry_at, NOW)
    assert await store.batches_to_deliver(NOW) == []
    assert [found.id for found in await store.batches_to_deliver(retry_at)] == [batch.id]

    assert await store.record_no_reply(batch.id, NOW)
    settled = await _reread(store, batch)
    assert (settled.state, settled.reply_ts) == (BatchState.DELIVERED, None)
    assert not await store.schedule_delivery_retry(
        batch.id, attempts=3, retry_at=retry_at, failing_since=NOW, now=NOW
    ), "a finished batch is not retried"


async def test_batches_to_deliver_come_oldest_first(store: Store) -> None:
    made = []
    for seconds in (3, 1, 2):
        batch, (job,) = await batch_with(store, now=NOW + timedelta(seconds=seconds))
        await move_job(store, job, JobState.FAILED)
        made.append((seconds, batch.id))
    found = await store.batches_to_deliver(LATER)
    assert [batch.id for batch in found] == [batch_id for _, batch_id in sorted(made)]


async def test_a_progress_message_is_marked_before_its_post_and_recorded_after(
    store: Store,
) -> None:
    posted, edited, found = [await batch_at(store, BatchState.OPEN) for _ in range(3)]
    assert await store.mark_progress_pending([posted.id, found.id], NOW) == 2
    assert (await _reread(store, posted)).status_ts == PENDING_STATUS

    assert await store.record_progress_found(found.id, "1.1", NOW)
    assert (await _reread(store, found)).status_ts == "1.1"
    assert await store.record_progress_shown(
        [ProgressShown(posted.id, "Transcribing…", message_ts="1.2")], NOW
    )
    shown = await _reread(store, posted)
    assert (shown.status_ts, shown.status_text, shown.status_updated_at) == (
        "1.2",
        "Transcribing…",
        NOW,
    )
    assert (
        await store.record_progress_shown(
            [ProgressShown(posted.id, "1 of 2 done"), ProgressShown(edited.id, "x", "1.3")], LATER
        )
        == 2
    )
    updated = await _reread(store, posted)
    assert (updated.status_ts, updated.status_text, updated.status_updated_at) == (
        "1.2",
        "1 of 2 done",
        LATER,
    )
    assert await store.record_progress_shown([], LATER) == 0


async def test_a_final_note_settles_a_cancelled_batchs_progress_message(store: Store) -> None:
    shown, never_posted = [await batch_at(store, BatchState.OPEN) for _ in range(2)]
    await store.record_progress_shown([ProgressShown(shown.id, "Transcribing…", "1.2")], NOW)
    await store.mark_progress_pending([never_posted.id], NOW)
    assert await store.cancelled_batches_to_settle("Cancelled.") == []
    for batch in (shown, never_posted):
        assert await store.cancel_batch(batch.id, NOW)
    assert {b.id for b in await store.cancelled_batches_to_settle("Cancelled.")} == {
        shown.id,
        never_posted.id,
    }

    assert await store.record_final_note(shown.id, "1.2", "Cancelled.", LATER)
    assert await store.record_final_note(never_posted.id, None, "Cancelled.", LATER)
    settled = await _reread(store, never_posted)
    assert (settled.status_ts, settled.status_text, settled.status_updated_at) == (
        None,
        "Cancelled.",
        LATER,
    )
    assert await store.cancelled_batches_to_settle("Cancelled.") == []


async def test_progress_is_due_after_a_while_and_when_something_changed(store: Store) -> None:
    after, every = timedelta(seconds=5), timedelta(seconds=3)

    async def due(now: datetime) -> list[str]:
        found = await store.batches_needing_progress(now, after=after, every=every, held_note="||")
        return [batch.id for batch in found]

    batch, (first, second) = await batch_with(
        store, new_job("F1", ts := next_ts()), new_job("F2", ts)
    )
    assert await due(NOW + timedelta(seconds=4)) == []
    assert await due(NOW + timedelta(seconds=5)) == [batch.id]
    await store.mark_progress_pending([batch.id], NOW)
    assert await due(NOW) == [batch.id], "a post that may have gone out is looked for"
    shown_at = NOW + timedelta(seconds=5)
    await store.record_progress_shown([ProgressShown(batch.id, "0 of 2", "1.2")], shown_at)
    assert await due(shown_at + timedelta(seconds=10)) == [], "nothing changed"

    finished = shown_at + timedelta(seconds=1)
    await store.fail_jobs([first.id], FAILURE, finished)
    assert await due(finished) == [], "not more often than every"
    assert await due(shown_at + every) == [batch.id]
    await store.record_progress_shown([ProgressShown(batch.id, "1 of 2")], shown_at + every)

    held_at = shown_at + every * 2
    await store.hold_for_account(
        [second.id], provider="soniox", until=LATER, stalled_since=NOW, detail="402", now=held_at
    )
    assert await due(held_at) == [batch.id], "held jobs, and the message does not say so"
    await store.record_progress_shown([ProgressShown(batch.id, "|| waiting")], held_at)
    assert await due(held_at + every) == []
    await store.release_jobs([second.id], held_at)
    assert await due(held_at + every) == [batch.id], "it says so, and none is held any more"
    await store.cancel_batch(batch.id, held_at)
    assert await due(held_at + every) == [], "only open batches"


async def test_the_channels_views_of_its_batches(store: Store) -> None:
    delivering = await batch_at(store, BatchState.DELIVERING, channel="C7", created=LATER)
    running_old = await batch_at(store, BatchState.OPEN, channel="C7")
    delivered = await batch_at(store, BatchState.DELIVERED, channel="C7")
    cancelled = await batch_at(store, BatchState.CANCELLED, channel="C7")
    await batch_at(store, BatchState.OPEN, channel="C8")

    running = await store.running_batches(T1, "C7")
    assert [batch.id for batch in running] == [running_old.id, delivering.id]
    finished = await store.finished_batches(T1, "C7", 10)
    assert {batch.id for batch in finished} == {delivered.id, cancelled.id}
    await store.record_final_note(delivered.id, None, "touched", LATER)
    assert [batch.id for batch in await store.finished_batches(T1, "C7", 1)] == [delivered.id], (
        "the last changed first"
    )
    assert await store.finished_batches(T1, "C9", 10) == []
    active = await store.active_batch_for_message(T1, "C7", delivering.message_ts)
    assert active is not None and active.id == delivering.id
    assert await store.active_batch_for_message(T1, "C7", delivered.message_ts) is None


async def test_the_last_failed_batch_is_the_newest_not_retried_yet(store: Store) -> None:
    assert await store.last_failed_batch(T1, "C1") is None
    ts = next_ts()
    failed = await _failed_batch(store, new_batch(ts), "F1")
    newer = await _failed_batch(store, new_batch(next_ts()), "F2")
    found = await store.last_failed_batch(T1, "C1")
    assert found is not None and found.id == newer.id

    retry = await store.create_batch(new_batch(newer.message_ts), [new_link("https://x/a")], LATER)
    assert retry is not None
    found = await store.last_failed_batch(T1, "C1")
    assert found is not None and found.id == failed.id, "a batch retried is not offered again"
    assert await store.last_failed_batch(T1, "C2") is None


async def _failed_batch(store: Store, asked: NewBatch, file_id: str) -> Batch:
    batch = await store.create_batch(asked, [new_job(file_id, asked.message_ts)], NOW)
    assert batch is not None
    (job,) = await store.jobs_of(batch.id)
    await store.fail_jobs([job.id], FAILURE, NOW)
    assert await store.record_reply(batch.id, "9.9", NOW)
    return await _reread(store, batch)


async def test_language_hints_of_batches(store: Store) -> None:
    plain = await store.create_batch(new_batch(next_ts()), [new_link("https://x/a")], NOW)
    asked = new_batch(next_ts(), hints=["hi"])
    asked.language_hints_strict = True
    hinted = await store.create_batch(asked, [new_link("https://x/b")], NOW)
    assert plain is not None and hinted is not None
    strict = LanguageHints(("hi",), strict=True)

    hints = await store.language_hints_of([hinted.id, plain.id, hinted.id, "b-missing"])
    assert hints == {plain.id: LanguageHints(), hinted.id: strict}
    both = [plain.id, hinted.id, "b-missing"]
    assert await store.language_hints_in_use(both) == {hinted.id: strict}
    assert await store.language_hints_in_use([plain.id]) == {}, "only the batches asked about"
    await store.cancel_batch(hinted.id, NOW)
    assert await store.language_hints_in_use(both) == {}, "only open batches"
    assert await store.language_hints_of([]) == {}


async def test_counts_for_the_metrics_page(store: Store) -> None:
    assert await store.count_jobs_by_state_and_provider() == {}
    assert await store.count_batches_by_state() == {}
    done, _ = await batch_with(store, new_link("https://x/a"))
    await batch_with(store, new_link("https://x/b"))
    _, (running,) = await batch_with(store, new_link("https://x/c"), provider="soket")
    (done_job,) = await store.jobs_of(done.id)
    await store.fail_jobs([done_job.id], FAILURE, NOW)
    await store.record_reply(done.id, "1.0", NOW)
    await store.mark_submission_sent([running.id], NOW)
    # A link goes straight to the provider.
    submission = Submission(running.id, "r-2", None, eta_at=None, poll_at=LATER)
    await store.record_submissions([submission], {}, NOW)

    assert await store.count_jobs_by_state_and_provider() == {
        ("failed", "soniox"): 1,
        ("queued", "soniox"): 1,
        ("submitted", "soket"): 1,
    }
    assert await store.count_batches_by_state() == {"delivered": 1, "open": 2}
    assert await store.count_unfinished_jobs() == 2
    assert await store.count_in_flight() == {"soket": 1}


async def test_old_transcripts_and_event_ids_are_purged(store: Store) -> None:
    old = await batch_at(store, BatchState.DELIVERED)
    still_open, (open_job,) = await batch_with(store)
    await move_job(store, open_job, JobState.COMPLETED)
    assert await store.remember_event("Ev-old", NOW)
    assert await store.remember_event("Ev-new", LATER)

    cutoff = NOW + timedelta(seconds=1)
    assert await store.purge_transcripts_before(cutoff, LATER) == 1
    (purged,) = await store.jobs_of(old.id)
    assert (purged.transcript, purged.raw_result) == (None, None)
    assert (purged.state, purged.filename) == (JobState.COMPLETED, "F1.wav"), "bookkeeping stays"
    (kept,) = await store.jobs_of(still_open.id)
    assert kept.transcript == {"text": "hi"}, "a batch not finished keeps its transcript"
    assert await store.remember_event("Ev-old", LATER), "its id was forgotten"
    assert not await store.remember_event("Ev-new", LATER)
    assert await store.purge_transcripts_before(cutoff, LATER) == 0
    recent = await batch_at(store, BatchState.DELIVERED)
    assert await store.purge_transcripts_before(NOW, LATER) == 0, f"{recent.id} is too recent"


async def test_every_way_a_job_finishes_makes_its_reply_and_progress_due(store: Store) -> None:
    after, every = timedelta(seconds=5), timedelta(seconds=3)
    shown_at, finished = NOW + timedelta(seconds=5), NOW + timedelta(seconds=6)
    late = finished + every

    async def completed(job: Job) -> None:
        job = await move_job(store, job, JobState.PROCESSING)
        assert await store.complete_job(job.id, transcript={"text": "hi"}, raw={}, now=finished)

    async def failed(job: Job) -> None:
        assert await store.fail_jobs([job.id], FAILURE, finished) == {job.id}

    async def skipped(job: Job) -> None:
        assert await store.skip_job(job.id, finished)

    async def upload_refused(job: Job) -> None:
        job = await move_job(store, job, JobState.UPLOADING)
        await store.mark_upload_sent([job.id], finished)
        assert await store.record_uploads([], {job.id: FAILURE}, finished) == {job.id}

    async def submission_refused(job: Job) -> None:
        job = await move_job(store, job, JobState.UPLOADED)
        await store.mark_submission_sent([job.id], finished)
        assert await store.record_submissions([], {job.id: FAILURE}, finished) == {job.id}

    ways = [completed, failed, skipped, upload_refused, submission_refused]
    batches = []
    for index, way in enumerate(ways):
        batch, (job,) = await batch_with(store, now=NOW + timedelta(milliseconds=index))
        await store.record_progress_shown([ProgressShown(batch.id, "0 of 1", "1.2")], shown_at)
        assert [batch.id for batch in await store.batches_to_deliver(late)] == batches
        progress = await store.batches_needing_progress(
            late, after=after, every=every, held_note="||"
        )
        assert [batch.id for batch in progress] == batches, f"{way.__name__}: nothing yet"
        await way(job)
        batches.append(batch.id)
        delivered = await store.batches_to_deliver(late)
        assert [batch.id for batch in delivered] == batches, f"{way.__name__}: reply due"
        progress = await store.batches_needing_progress(
            late, after=after, every=every, held_note="||"
        )
        assert [batch.id for batch in progress] == batches, f"{way.__name__}: progress due"
    for batch_id in batches:
        assert await store.begin_delivery(batch_id, late)
        assert await store.record_reply(batch_id, "9.9", late)
    assert await store.batches_to_deliver(late) == []

    ts = next_ts()
    refused = NewJob(kind=JobKind.SLACK_FILE, filename="huge.mp4", refused_reason="too big")
    made = await store.create_batch(new_batch(ts), [refused], NOW)
    assert made is not None
    assert [batch.id for batch in await store.batches_to_deliver(NOW)] == [made.id], (
        "a file refused at once"
    )


async def test_a_progress_message_naming_a_long_file_is_recorded(store: Store) -> None:
    rng = random.Random(7)
    name = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(4000))
    batch, _ = await batch_with(store, new_link(f"https://example.com/{name}.mp3"))
    text = f":hourglass_flowing_sand: Transcribing *{name}.mp3*…"
    shown = [ProgressShown(batch.id, text, message_ts="1767225600.000001")]
    assert await store.record_progress_shown(shown, NOW) == 1
    found = await store.get_batch(batch.id)
    assert found is not None and found.status_text == text
