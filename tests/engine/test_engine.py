"""The engine's stages over a real store, with the provider and Slack in memory: each step once,
a crash at any point repeating nothing, and a reply that Slack refuses retried or given up."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.errors import AccountProblem, TemporaryError
from bot.messages import REACTION_DONE
from storage.models import BatchState, JobState
from tests.engine.conftest import World
from tests.engine.doubles import Message, slack_error


def call_names(world: World) -> list[str]:
    return [name for name, _ in world.provider.calls]


def replies(world: World, thread_ts: str) -> list[Message]:
    return [message for message in world.slack.thread(thread_ts) if message.final]


async def test_a_file_goes_from_slack_to_its_reply_one_call_per_step(world: World) -> None:
    batch = await world.share("memo.wav")

    await world.cycle()
    (job,) = await world.jobs(batch)
    assert job.state is JobState.UPLOADED and job.provider_file_id in world.provider.files
    assert job.spool_path is None, "the provider has the file: the spool copy is dropped"
    await world.cycle()
    (job,) = await world.jobs(batch)
    assert job.state is JobState.SUBMITTED and job.sent_at is None
    await world.until(lambda: replies(world, batch.thread_ts))

    assert call_names(world) == ["upload", "submit", "poll", "clean_up"]
    assert world.downloader.downloads == [job.download_url]
    (reply,) = world.slack.thread(batch.thread_ts)  # the progress message became the reply
    assert reply.final and "Hello from memo.wav." in reply.text
    assert world.slack.reactions == {(batch.channel_id, batch.message_ts, REACTION_DONE)}
    assert (await world.batch(batch)).state is BatchState.DELIVERED
    (done,) = await world.jobs(batch)
    assert done.state is JobState.COMPLETED and done.cleaned_up
    assert world.provider.files == {} and world.provider.transcriptions == {}


async def test_a_new_engine_over_the_same_store_repeats_no_step(world: World) -> None:
    batch = await world.share("memo.wav")
    await world.cycle()
    await world.cycle()
    world.new_engine()  # the process restarts between the submission and the first poll

    await world.until(lambda: replies(world, batch.thread_ts))
    assert call_names(world) == ["upload", "submit", "poll", "clean_up"]
    assert len(world.downloader.downloads) == 1


@pytest.mark.parametrize(
    ("call", "left_in", "calls"),
    [
        ("upload", JobState.UPLOADING, ["upload", "find_uploaded", "submit", "poll", "clean_up"]),
        ("submit", JobState.UPLOADED, ["upload", "submit", "find_submitted", "poll", "clean_up"]),
    ],
)
async def test_a_call_whose_answer_died_with_the_process_is_found_not_repeated(
    world: World, call: str, left_in: JobState, calls: list[str]
) -> None:
    world.provider.failures.crash_after.add(call)
    batch = await world.share("memo.wav")
    await world.crash()
    (job,) = await world.jobs(batch)
    assert job.state is left_in and job.sent_at is not None

    await world.until(lambda: replies(world, batch.thread_ts))
    assert call_names(world) == calls
    assert len(world.downloader.downloads) == 1, "the spool file was still there"
    assert len(replies(world, batch.thread_ts)) == 1


async def test_the_progress_message_is_posted_once_even_across_a_crash(world: World) -> None:
    world.provider.polls_until_done = 10**6
    world.slack.failures.crash_after.add("post_reply")
    batch = await world.share("memo.wav")
    await world.crash()
    (posted,) = world.slack.thread(batch.thread_ts)
    assert not posted.final and "memo.wav" in posted.text

    for _ in range(5):
        await world.cycle()
    assert world.slack.thread(batch.thread_ts) == [posted], "found in the thread, not posted again"
    assert world.slack.count("post_reply") == 1
    assert (await world.batch(batch)).status_ts == posted.ts

    world.provider.polls_until_done = 0
    await world.until(lambda: replies(world, batch.thread_ts))
    assert world.slack.thread(batch.thread_ts) == [posted] and posted.final


async def test_a_reply_slack_fails_to_take_is_posted_on_a_later_cycle(world: World) -> None:
    world.new_engine(progress_after=timedelta(hours=1))  # no progress message: a fresh post
    world.slack.failures.add("post_reply", slack_error("internal_error"))
    batch = await world.share("memo.wav")
    await world.until(lambda: world.slack.count("post_reply"))
    failed = await world.batch(batch)
    assert failed.state is BatchState.DELIVERING and failed.attempts == 1
    assert failed.failing_since is not None

    await world.cycle(2)
    (reply,) = replies(world, batch.thread_ts)
    assert "Hello from memo.wav." in reply.text
    assert (await world.batch(batch)).state is BatchState.DELIVERED
    assert world.slack.count("post_reply") == 2


async def test_a_reply_slack_refuses_for_good_is_given_up_at_once(world: World) -> None:
    world.new_engine(progress_after=timedelta(hours=1))
    world.slack.failures.add("post_reply", slack_error("is_archived"))
    batch = await world.share("memo.wav")
    await world.until(lambda: world.slack.count("post_reply"))
    await world.cycle()

    assert (await world.batch(batch)).state is BatchState.UNDELIVERABLE
    assert world.slack.count("post_reply") == 1
    assert (batch.channel_id, batch.message_ts, REACTION_DONE) not in world.slack.reactions


async def test_a_reply_that_keeps_failing_is_given_up_at_the_age_limit(world: World) -> None:
    world.new_engine(progress_after=timedelta(hours=1))
    world.slack.failures.add("post_reply", *[slack_error("internal_error")] * 20)
    batch = await world.share("memo.wav")
    await world.until(lambda: world.slack.count("post_reply"))

    await world.until(
        lambda: world.slack.count("post_reply") >= 8, seconds=timedelta(hours=1).total_seconds()
    )
    assert (await world.batch(batch)).state is BatchState.UNDELIVERABLE
    assert world.slack.count("post_reply") == 8, "tried each hour for six hours, then no more"
    assert replies(world, batch.thread_ts) == []


async def test_an_upload_without_room_at_the_provider_waits_without_asking_it(
    world: World,
) -> None:
    world.provider.max_stored_files = 1
    held = await world.share("held.wav")
    await world.cycle()
    (uploaded,) = await world.jobs(held)
    assert uploaded.provider_file_id is not None
    waiting = await world.share("waiting.wav")
    (job,) = await world.jobs(waiting)

    # A transfer that the cycle let go, when another took the room first.
    await world.engine.transfers.transfer([job])

    (job,) = await world.jobs(waiting)
    assert job.state is JobState.UPLOADING and job.sent_at is None
    assert job.next_attempt_at is None, "nothing written: it keeps its place in the queue"
    assert job.stalled_since is None, "waiting for room uses none of the age allowance"
    assert world.provider.calls_to("upload") == [[uploaded.id]]
    assert world.provider.calls_to("find_uploaded") == []


async def test_an_upload_that_failed_is_not_sent_again_before_its_retry_time(
    world: World,
) -> None:
    world.provider.failures.add("upload", TemporaryError("upload: server error 504"))
    batch = await world.share("memo.wav")
    (seen,) = await world.jobs(batch)  # a cycle's reading, made before the upload failed
    await world.cycle(0)
    (failed,) = await world.jobs(batch)
    assert failed.state is JobState.UPLOADING and failed.sent_at is not None
    assert failed.next_attempt_at is not None and failed.next_attempt_at > world.clock()

    # That cycle lets a transfer go on its reading once the first transfer has ended.
    await world.engine.transfers.transfer([seen])

    assert world.provider.calls_to("upload") == [[failed.id]], "not before its retry time"
    assert world.provider.calls_to("find_uploaded") == []
    assert await world.jobs(batch) == [failed]
    await world.until(lambda: replies(world, batch.thread_ts))
    assert world.provider.calls_to("find_uploaded") == [[failed.id]]
    assert len(world.provider.calls_to("upload")) == 2


async def test_work_held_for_the_account_goes_on_after_one_probe_per_minute(
    world: World,
) -> None:
    refusal = AccountProblem("402", provider="memory", reason="balance", user_message="Top up.")
    world.provider.failures.add("submit", *[refusal] * 3)
    first, second = await world.share("a.wav"), await world.share("b.wav")
    await world.cycle()
    await world.cycle()  # both submitted at once, both refused
    jobs = [*(await world.jobs(first)), *(await world.jobs(second))]
    assert all(job.held_by == "memory" and job.sent_at is None for job in jobs)
    assert len(world.provider.calls_to("submit")) == 2

    for _ in range(11):  # not asked again for a minute
        await world.cycle()
    assert len(world.provider.calls_to("submit")) == 2
    await world.cycle()
    assert len(world.provider.calls_to("submit")) == 3, "one probe, refused again"
    await world.until(lambda: replies(world, first.thread_ts) and replies(world, second.thread_ts))
    assert len(world.provider.calls_to("submit")) == 5, "a probe that goes through, then the other"
    assert world.provider.calls_to("find_submitted") == [], "a refusal is an answer"


async def test_a_large_file_refused_for_room_is_not_overtaken_by_a_smaller_one_shared_later(
    world: World,
) -> None:
    # Slack gave no sizes: the cycle lets the large file go, and the byte cap refuses it once its
    # size is known. It keeps its place at the head of the queue all the same.
    world.provider.max_stored_bytes = 2_000
    world.provider.polls_until_done = 10**6
    held = await world.share("held.wav")  # 804 bytes
    await world.cycle(1)
    (holding,) = await world.jobs(held)
    large = await world.share("large-meeting.wav")  # 1,704 bytes: not beside the first
    await world.cycle(1)
    (waiting,) = await world.jobs(large)
    assert waiting.state is JobState.UPLOADING and waiting.sent_at is None
    assert world.provider.calls_to("upload") == [[holding.id]], "refused here, not by the provider"

    # The first file is given up on and deleted at the provider, which frees the room; then a
    # smaller file is shared, which would fit too.
    assert await world.store.cancel_batch(held.id, world.clock())
    await world.until(lambda: not world.provider.files, seconds=1)
    small = await world.share("small.wav")  # 904 bytes
    await world.cycle(1)

    (waiting,) = await world.jobs(large)
    (later,) = await world.jobs(small)
    assert waiting.provider_file_id is not None, "the large file went first"
    assert later.state is JobState.UPLOADING and later.sent_at is None, "the smaller one waits"


async def test_a_workspace_flooding_files_does_not_keep_anothers_file_waiting(
    world: World,
) -> None:
    # Two transfers at a time, two transcriptions at the provider at a time, none finishing.
    world.new_engine(max_concurrent_transfers=2)
    world.provider.max_in_flight = 2
    world.provider.polls_until_done = 10**6
    flood = []
    for index in range(12):
        flood.append(await world.share(f"flood-{index}.wav"))
        world.clock.advance(seconds=1)
    single = await world.share("single.wav", team="T2")

    await world.cycle(1)
    (waiting,) = await world.jobs(single)
    (oldest,) = await world.jobs(flood[0])
    first = world.downloader.downloads[:2]
    assert first == [oldest.download_url, waiting.download_url], (
        "the other workspace's file takes the second transfer, not the thirteenth"
    )
    await world.cycle(1)
    submitted = [job_id for ids in world.provider.calls_to("submit") for job_id in ids]
    assert sorted(submitted) == sorted([oldest.id, waiting.id]), "and a provider slot"
