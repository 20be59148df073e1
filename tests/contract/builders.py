"""Batches and jobs put in a given state through the store's own verbs, as the bot would."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from storage.models import (
    Batch,
    BatchState,
    Failure,
    Job,
    JobKind,
    JobState,
    NewBatch,
    NewJob,
    StillRunning,
    Submission,
    Upload,
    Workspace,
)
from storage.store import Store
from tests.workspaces import T1

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
FAILURE = Failure(message="It could not be done.", detail="provider said no")

_messages = itertools.count(1)


def next_ts() -> str:
    """A message ts no other batch of the test has."""
    return f"1767225600.{next(_messages):06d}"


def new_batch(
    ts: str = "1.0",
    *,
    channel: str = "C1",
    provider: str = "soniox",
    hints: list[str] | None = None,
    workspace: Workspace = T1,
) -> NewBatch:
    return NewBatch(
        team_id=workspace.team_id or None,
        enterprise_id=workspace.enterprise_id,
        channel_id=channel,
        message_ts=ts,
        thread_ts=ts,
        user_id="U1",
        provider=provider,
        source="upload",
        language_hints=hints or [],
    )


def new_job(file_id: str, ts: str = "1.0", *, size: int | None = None) -> NewJob:
    return NewJob(
        kind=JobKind.SLACK_FILE,
        filename=f"{file_id}.wav",
        slack_file_id=file_id,
        download_url=f"https://files.slack.com/{file_id}",
        size_bytes=size,
        dedupe_key=f"T1:C1:{ts}:{file_id}",
    )


def new_link(url: str) -> NewJob:
    return NewJob(kind=JobKind.URL, filename=url.rsplit("/", 1)[-1], url=url)


async def batch_with(
    store: Store,
    *jobs: NewJob,
    channel: str = "C1",
    provider: str = "soniox",
    now: datetime = NOW,
    workspace: Workspace = T1,
) -> tuple[Batch, list[Job]]:
    """A new open batch of its own message holding ``jobs`` (one Slack file if none given)."""
    ts = next_ts()
    batch = await store.create_batch(
        new_batch(ts, channel=channel, provider=provider, workspace=workspace),
        list(jobs) or [new_job("F1", ts)],
        now,
    )
    assert batch is not None
    return batch, await store.jobs_of(batch.id)


#: How a Slack file's job reaches each state: the path of verbs from ``queued``.
_PATH = {
    JobState.DOWNLOADING: JobState.QUEUED,
    JobState.UPLOADING: JobState.DOWNLOADING,
    JobState.UPLOADED: JobState.UPLOADING,
    JobState.SUBMITTED: JobState.UPLOADED,
    JobState.PROCESSING: JobState.SUBMITTED,
    JobState.COMPLETED: JobState.PROCESSING,
    JobState.FAILED: JobState.QUEUED,
    JobState.SKIPPED: JobState.QUEUED,
}


async def job_at(
    store: Store, state: JobState, *, channel: str = "C1", workspace: Workspace = T1
) -> Job:
    """A Slack file's job, alone in a new batch, moved to ``state`` by the store's verbs."""
    _, (job,) = await batch_with(store, channel=channel, workspace=workspace)
    return await move_job(store, job, state)


async def move_job(store: Store, job: Job, state: JobState) -> Job:
    """``job`` moved on from where it stands (on the way from ``queued``) to ``state``."""
    if job.state is state:
        return job
    job = await move_job(store, job, _PATH[state])
    assert await _step(store, job, state), f"could not move {job.state} -> {state}"
    found = await store.get_job(job.id)
    assert found is not None and found.state is state
    return found


async def _step(store: Store, job: Job, state: JobState) -> bool:
    """Move ``job`` one step, to ``state``, as the bot does."""
    if state is JobState.DOWNLOADING:
        return await store.start_download(job.id, NOW)
    if state is JobState.UPLOADING:
        return await store.record_download(
            job.id, spool_path=f"/spool/{job.id}", size_bytes=100, now=NOW
        )
    if state is JobState.UPLOADED:
        await store.mark_upload_sent([job.id], NOW)
        return job.id in await store.record_uploads([Upload(job.id, f"file-{job.id}")], {}, NOW)
    if state is JobState.SUBMITTED:
        await store.mark_submission_sent([job.id], NOW)
        submission = Submission(job.id, f"tr-{job.id}", None, eta_at=None, poll_at=LATER)
        return job.id in await store.record_submissions([submission], {}, NOW)
    if state is JobState.PROCESSING:
        polled = StillRunning(job.id, job.state, job.updated_at, poll_at=LATER)
        return await store.record_still_running([polled], NOW) == 1
    if state is JobState.COMPLETED:
        return await store.complete_job(job.id, transcript={"text": "hi"}, raw={"r": 1}, now=NOW)
    if state is JobState.FAILED:
        return job.id in await store.fail_jobs([job.id], FAILURE, NOW)
    assert state is JobState.SKIPPED
    return await store.skip_job(job.id, NOW)


async def batch_at(
    store: Store,
    state: BatchState,
    *,
    channel: str = "C1",
    created: datetime = NOW,
    workspace: Workspace = T1,
) -> Batch:
    """A batch with one completed job, moved to ``state`` by the store's verbs."""
    batch, (job,) = await batch_with(store, channel=channel, now=created, workspace=workspace)
    await move_job(store, job, JobState.COMPLETED)
    if state is BatchState.DELIVERING:
        assert await store.begin_delivery(batch.id, NOW)
    elif state is BatchState.DELIVERED:
        assert await store.record_reply(batch.id, "1767225600.999999", NOW)
    elif state is BatchState.UNDELIVERABLE:
        assert await store.mark_undeliverable(batch.id, NOW)
    elif state is BatchState.CANCELLED:
        assert await store.cancel_batch(batch.id, NOW)
    found = await store.get_batch(batch.id)
    assert found is not None and found.state is state
    return found
