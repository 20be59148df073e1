"""Every verb that changes a state moves a row only along its move of :mod:`storage.states`, only
from that move's sources, and says whether it moved it: from every state, for every verb."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from storage.models import (
    Batch,
    BatchState,
    Job,
    JobState,
    Resubmission,
    StillRunning,
    Submission,
    Upload,
)
from storage.states import BATCH_MOVES, JOB_MOVES, BatchMoves, JobMoves, Move
from storage.store import Store
from tests.contract.builders import FAILURE, LATER, NOW, batch_at, job_at

JobVerb = Callable[[Store, Job], Awaitable[bool]]
BatchVerb = Callable[[Store, Batch], Awaitable[bool]]


async def _upload(store: Store, job: Job) -> bool:
    return job.id in await store.record_uploads([Upload(job.id, "file-9")], {}, NOW)


async def _upload_refused(store: Store, job: Job) -> bool:
    return job.id in await store.record_uploads([], {job.id: FAILURE}, NOW)


async def _submit(store: Store, job: Job) -> bool:
    submission = Submission(job.id, "tr-9", "file-9", eta_at=None, poll_at=LATER)
    return job.id in await store.record_submissions([submission], {}, NOW)


async def _submission_refused(store: Store, job: Job) -> bool:
    return job.id in await store.record_submissions([], {job.id: FAILURE}, NOW)


async def _still_running(store: Store, job: Job) -> bool:
    polled = StillRunning(job.id, job.state, job.updated_at, poll_at=LATER)
    return await store.record_still_running([polled], NOW) == 1


async def _resubmit_stored(store: Store, job: Job) -> bool:
    lost = Resubmission(job.id, file_id="file-9", detail="lost")
    return job.id in await store.record_work_lost([lost], {}, NOW)


async def _resubmit_from_start(store: Store, job: Job) -> bool:
    lost = Resubmission(job.id, file_id=None, detail="lost")
    return job.id in await store.record_work_lost([lost], {}, NOW)


async def _lost_for_good(store: Store, job: Job) -> bool:
    return job.id in await store.record_work_lost([], {job.id: FAILURE}, NOW)


async def _fail(store: Store, job: Job) -> bool:
    return job.id in await store.fail_jobs([job.id], FAILURE, NOW)


JOB_VERBS: dict[str, tuple[Move[JobState], JobVerb]] = {
    "start_download": (
        JobMoves.START_DOWNLOAD,
        lambda store, job: store.start_download(job.id, NOW),
    ),
    "skip_job": (JobMoves.SKIP, lambda store, job: store.skip_job(job.id, NOW)),
    "record_download": (
        JobMoves.FINISH_DOWNLOAD,
        lambda store, job: store.record_download(
            job.id, spool_path="/spool/x", size_bytes=1, now=NOW
        ),
    ),
    "download_again": (
        JobMoves.DOWNLOAD_AGAIN,
        lambda store, job: store.download_again(job.id, NOW),
    ),
    "record_uploads": (JobMoves.FINISH_UPLOAD, _upload),
    "record_uploads (refused)": (JobMoves.FAIL, _upload_refused),
    "record_submissions": (JobMoves.SUBMIT, _submit),
    "record_submissions (refused)": (JobMoves.FAIL, _submission_refused),
    "record_still_running": (JobMoves.KEEP_RUNNING, _still_running),
    "complete_job": (
        JobMoves.COMPLETE,
        lambda store, job: store.complete_job(job.id, transcript={"text": "x"}, raw=None, now=NOW),
    ),
    "record_work_lost (stored)": (JobMoves.RESUBMIT_STORED, _resubmit_stored),
    "record_work_lost (from start)": (JobMoves.RESUBMIT_FROM_START, _resubmit_from_start),
    "record_work_lost (refused)": (JobMoves.FAIL, _lost_for_good),
    "fail_jobs": (JobMoves.FAIL, _fail),
}

BATCH_VERBS: dict[str, tuple[Move[BatchState], BatchVerb]] = {
    "begin_delivery": (
        BatchMoves.BEGIN_DELIVERY,
        lambda store, batch: store.begin_delivery(batch.id, NOW),
    ),
    "record_reply": (
        BatchMoves.DELIVER,
        lambda store, batch: store.record_reply(batch.id, "1767225600.000042", NOW),
    ),
    "record_no_reply": (
        BatchMoves.DELIVER,
        lambda store, batch: store.record_no_reply(batch.id, NOW),
    ),
    "mark_undeliverable": (
        BatchMoves.GIVE_UP,
        lambda store, batch: store.mark_undeliverable(batch.id, NOW),
    ),
    "cancel_batch": (BatchMoves.CANCEL, lambda store, batch: store.cancel_batch(batch.id, NOW)),
}


def test_every_move_has_a_verb() -> None:
    assert {move for move, _ in JOB_VERBS.values()} == set(JOB_MOVES)
    assert {move for move, _ in BATCH_VERBS.values()} == set(BATCH_MOVES)


@pytest.mark.parametrize("verb", sorted(JOB_VERBS))
async def test_a_job_moves_only_from_the_sources_of_its_move(store: Store, verb: str) -> None:
    move, call = JOB_VERBS[verb]
    for state in JobState:
        job = await job_at(store, state)
        moved = await call(store, job)
        after = await store.get_job(job.id)
        assert after is not None
        assert moved is (state in move.sources), f"{verb} from {state}"
        assert after.state is (move.target if moved else state), f"{verb} from {state}"
        if not moved:
            assert after == job, f"{verb} from {state} changed the job all the same"


@pytest.mark.parametrize("verb", sorted(BATCH_VERBS))
async def test_a_batch_moves_only_from_the_sources_of_its_move(store: Store, verb: str) -> None:
    move, call = BATCH_VERBS[verb]
    for state in BatchState:
        batch = await batch_at(store, state)
        moved = await call(store, batch)
        after = await store.get_batch(batch.id)
        assert after is not None
        assert moved is (state in move.sources), f"{verb} from {state}"
        assert after.state is (move.target if moved else state), f"{verb} from {state}"
        if not moved:
            assert after == batch, f"{verb} from {state} changed the batch all the same"


async def test_verbs_given_an_unknown_id_move_nothing(store: Store) -> None:
    ghost = await job_at(store, JobState.QUEUED)
    ghost.id = "no-such-job"
    for verb, (_, call) in JOB_VERBS.items():
        assert await call(store, ghost) is False, verb
    phantom = await batch_at(store, BatchState.OPEN)
    phantom.id = "b-000000000000"
    for verb, (_, batch_call) in BATCH_VERBS.items():
        assert await batch_call(store, phantom) is False, verb


async def test_a_cancel_racing_a_delivery_cannot_both_win(store: Store) -> None:
    for _ in range(5):
        batch = await batch_at(store, BatchState.OPEN)
        cancelled, delivering = await asyncio.gather(
            store.cancel_batch(batch.id, NOW), store.begin_delivery(batch.id, NOW)
        )
        assert cancelled is not delivering
        after = await store.get_batch(batch.id)
        assert after is not None
        assert after.state is (BatchState.CANCELLED if cancelled else BatchState.DELIVERING)
