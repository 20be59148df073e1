"""Text from outside (file names, links, providers' messages, transcripts, progress notes) is
hostile: whatever characters it holds, the write succeeds and the text comes back. A NUL
character, which PostgreSQL's text cannot hold, may come back as U+FFFD; nothing else changes."""

from __future__ import annotations

from typing import Any

from storage.models import Failure, JobKind, JobState, NewJob, ProgressShown
from storage.store import Store
from tests.contract.builders import NOW, batch_with, move_job, new_batch

HOSTILE = 'a\x00b <!channel> "q" \\u0000 \\\\u0000 \u202e é'


def kept(value: Any) -> Any:
    """What a store may give back for ``value``: itself, or with NUL as U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {kept(key): kept(item) for key, item in value.items()}
    if isinstance(value, list):
        return [kept(item) for item in value]
    return value


def same(read: Any, written: Any) -> bool:
    return read in (written, kept(written))


async def test_hostile_text_is_kept_wherever_it_is_written(store: Store) -> None:
    job = NewJob(
        kind=JobKind.URL,
        filename=HOSTILE,
        url=f"https://x.test/{HOSTILE}",
        mimetype=HOSTILE,
        dedupe_key=HOSTILE,
    )
    batch = await store.create_batch(new_batch(hints=[HOSTILE]), [job], NOW)
    assert batch is not None
    (read,) = await store.jobs_of(batch.id)
    assert same(read.filename, HOSTILE) and same(read.url, job.url)
    assert same(read.mimetype, HOSTILE)
    again = await store.get_batch(batch.id)
    assert again is not None and same(again.language_hints, [HOSTILE])

    running = await move_job(store, read, JobState.PROCESSING)
    transcript = {"text": HOSTILE, "tokens": [{"text": HOSTILE}]}
    assert await store.complete_job(running.id, transcript=transcript, raw=[HOSTILE], now=NOW)
    done = await store.get_job(running.id)
    assert done is not None
    assert same(done.transcript, transcript) and same(done.raw_result, [HOSTILE])

    assert await store.record_progress_shown([ProgressShown(batch.id, HOSTILE, "1.5")], NOW) == 1
    shown = await store.get_batch(batch.id)
    assert shown is not None and same(shown.status_text, HOSTILE)


async def test_a_hostile_failure_is_kept(store: Store) -> None:
    _, (job,) = await batch_with(store)
    failure = Failure(message=HOSTILE, detail=HOSTILE, provider_answer={"error": HOSTILE})
    assert job.id in await store.fail_jobs([job.id], failure, NOW)
    failed = await store.get_job(job.id)
    assert failed is not None and same(failed.error, HOSTILE)
    assert same(failed.error_detail, HOSTILE) and same(failed.raw_result, {"error": HOSTILE})
