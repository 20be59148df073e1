"""Files shared in Slack go to Soket as one batch per message and come back as one thread reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from bot.app import Runtime, running_bot
from bot.work.retry import MAX_RESUBMISSIONS
from storage.models import Batch, ChannelSettings, Job, JobState
from tests.conftest import ManualClock, SettingsFactory, SlackSender, cycles, final_replies
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import DECODE_ERROR_MESSAGE, FakeSoniox
from tests.workspaces import FAKE_WORKSPACE


@pytest.fixture
async def soket_bot(
    make_settings: SettingsFactory, fake_soket: FakeSoket
) -> AsyncIterator[Runtime]:
    """The bot in HTTP mode with Soket as the default provider."""
    # Soket's estimate sets the first poll; keep it under the test poll interval.
    fake_soket.estimated_completion_seconds = 0.1
    settings = make_settings(transcribe_provider="soket")
    async with running_bot(settings, host="127.0.0.1") as runtime:
        yield runtime


@pytest.fixture
def soket_sender(fake_slack: FakeSlack, soket_bot: Runtime) -> SlackSender:
    return SlackSender(fake_slack, soket_bot)


async def reply_to(fake_slack: FakeSlack, channel: str, ts: str) -> dict[str, Any]:
    replies = await fake_slack.wait_for(
        lambda: [m for m in fake_slack.replies_in(channel, ts) if m.get("blocks")]
    )
    assert len(replies) == 1
    reply: dict[str, Any] = replies[0]
    return reply


async def jobs_behind(runtime: Runtime, reply: dict[str, Any]) -> tuple[Batch, list[Job]]:
    """The batch a reply answered (its id travels in the reply's metadata) and its jobs."""
    batch_id = reply["metadata"]["event_payload"]["batch_id"]
    batch = await runtime.store.get_batch(batch_id)
    assert batch is not None
    return batch, await runtime.store.jobs_of(batch_id)


async def test_three_files_make_one_upload_one_batch_and_one_reply(
    soket_bot: Runtime,
    fake_slack: FakeSlack,
    fake_soket: FakeSoket,
    soket_sender: SlackSender,
) -> None:
    names = ["standup.wav", "retro.wav", "planning.wav"]
    files = [fake_slack.add_file(name=name, content=silent_wav()) for name in names]
    event = fake_slack.message_event(files=files)

    assert (await soket_sender.event(event)).status_code == 200
    reply = await reply_to(fake_slack, "C0GENERAL", event["ts"])

    for name in names:
        assert f"Speaker 1 [00:00]: Hello from {name}." in reply["text"]
    assert reply["text"].count("Speaker 2") == 3
    assert len(fake_soket.requests_to(r"/files/upload$", "POST")) == 1
    assert len(fake_soket.requests_to(r"/batch$", "POST")) == 1
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["white_check_mark"]
    )

    # Once the reply is up, Soket is told to drop every file of the batch, in one call.
    batch, jobs = await jobs_behind(soket_bot, reply)
    assert batch.provider == "soket"
    file_ids = {job.provider_file_id for job in jobs}
    assert len(file_ids) == 3 and None not in file_ids
    assert len({job.provider_job_id for job in jobs}) == 1
    await fake_soket.wait_for(lambda: fake_soket.requests_to(r"/files$", "DELETE"))
    (delete,) = fake_soket.requests_to(r"/files$", "DELETE")
    assert set(delete.body["file_ids"]) == file_ids
    assert not fake_soket.files


async def test_a_corrupt_file_fails_alone_in_plain_words(
    soket_bot: Runtime,
    fake_slack: FakeSlack,
    fake_soket: FakeSoket,
    soket_sender: SlackSender,
) -> None:
    good = fake_slack.add_file(name="good.wav", content=silent_wav())
    corrupt = fake_slack.add_file(name="broken.wav", content=b"CORRUPT" + silent_wav())
    event = fake_slack.message_event(files=[good, corrupt])

    assert (await soket_sender.event(event)).status_code == 200
    reply = await reply_to(fake_slack, "C0GENERAL", event["ts"])

    assert "Hello from good.wav." in reply["text"]
    assert (
        f"broken.wav: Soket could not transcribe this file: {DECODE_ERROR_MESSAGE}"
        in (reply["text"])
    )
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["warning"]
    )
    assert len(fake_soket.requests_to(r"/batch$", "POST")) == 1
    _, jobs = await jobs_behind(soket_bot, reply)
    failed = next(job for job in jobs if job.filename == "broken.wav")
    assert failed.raw_result["errors"] == [{"message": DECODE_ERROR_MESSAGE}]
    await fake_soket.wait_for(lambda: len(fake_soket.deleted_files) == 2)


async def test_channel_setting_routes_a_channel_to_soket_while_the_default_stays_soniox(
    bot: Runtime,
    fake_slack: FakeSlack,
    fake_soniox: FakeSoniox,
    fake_soket: FakeSoket,
    slack_sender: SlackSender,
) -> None:
    fake_soket.estimated_completion_seconds = 0.1
    assert bot.settings.transcribe_provider.value == "soniox"
    await bot.store.save_channel_settings(
        FAKE_WORKSPACE, ChannelSettings(channel_id="C0SOKET", provider="soket"), bot.clock()
    )
    to_soket = fake_slack.message_event(
        files=[fake_slack.add_file(name="soket.wav", content=silent_wav())], channel="C0SOKET"
    )
    to_default = fake_slack.message_event(
        files=[fake_slack.add_file(name="default.wav", content=silent_wav())]
    )

    assert (await slack_sender.event(to_soket)).status_code == 200
    assert (await slack_sender.event(to_default)).status_code == 200

    soket_reply = await reply_to(fake_slack, "C0SOKET", to_soket["ts"])
    default_reply = await reply_to(fake_slack, "C0GENERAL", to_default["ts"])
    assert "Hello from soket.wav." in soket_reply["text"]
    assert "Hello from default.wav." in default_reply["text"]

    soket_batch, soket_jobs = await jobs_behind(bot, soket_reply)
    default_batch, default_jobs = await jobs_behind(bot, default_reply)
    assert soket_batch.provider == "soket" and [j.provider for j in soket_jobs] == ["soket"]
    assert default_batch.provider == "soniox" and [j.provider for j in default_jobs] == ["soniox"]
    assert len(fake_soket.requests_to(r"/files/upload$", "POST")) == 1
    assert fake_soket.batch_bodies == [{"file_ids": [soket_jobs[0].provider_file_id]}]
    assert len(fake_soniox.create_bodies) == 1
    assert fake_soniox.create_bodies[0]["file_id"] == default_jobs[0].provider_file_id


async def test_a_file_missing_from_the_upload_status_is_transcribed_once_soket_takes_it(
    soket_bot: Runtime,
    fake_slack: FakeSlack,
    fake_soket: FakeSoket,
    soket_sender: SlackSender,
) -> None:
    # Soket's upload-status answer never lists this file, and it is still moving to storage
    # for the first two reads: the submission's 409 says when it can go.
    fake_soket.unlisted_in_upload_status = {"unlisted.wav"}
    fake_soket.upload_polls_until_complete = 3
    event = fake_slack.message_event(
        files=[fake_slack.add_file(name="unlisted.wav", content=silent_wav())]
    )

    assert (await soket_sender.event(event)).status_code == 200
    reply = await reply_to(fake_slack, "C0GENERAL", event["ts"])

    assert "Hello from unlisted.wav." in reply["text"]
    submissions = fake_soket.requests_to(r"/batch$", "POST")
    assert len(submissions) >= 2, "409 while the upload was still moving, then accepted"
    assert len(fake_soket.batch_bodies) == 1
    assert len(fake_soket.requests_to(r"/files/upload$", "POST")) == 1


async def test_a_batch_soket_lost_is_submitted_again_and_answered_once(
    soket_bot: Runtime,
    fake_slack: FakeSlack,
    fake_soket: FakeSoket,
    soket_sender: SlackSender,
) -> None:
    # Soket answers the lost batch with its error body and a 200, which once read as "still
    # running" until the age limit.
    fake_soket.missing_batch_status = 200
    fake_soket.batches_to_lose = 1
    event = fake_slack.message_event(
        files=[fake_slack.add_file(name="standup.wav", content=silent_wav())],
        text="and <https://audio.example/retro.mp3>",
    )

    assert (await soket_sender.event(event)).status_code == 200
    reply = await reply_to(fake_slack, "C0GENERAL", event["ts"])

    assert "Hello from standup.wav." in reply["text"]
    assert "Hello from retro.mp3." in reply["text"]
    first, second = fake_soket.batch_bodies
    # The stored upload is used again (nothing is downloaded or uploaded twice); the link is
    # handed over again.
    assert second["file_ids"] == first["file_ids"]
    assert second["sources"] == first["sources"]
    assert len(fake_soket.requests_to(r"/files/upload$", "POST")) == 1
    assert len(fake_slack.downloads) == 1
    _, jobs = await jobs_behind(soket_bot, reply)
    assert [job.resubmissions for job in jobs] == [1, 1]
    assert {job.provider_job_id for job in jobs} == set(fake_soket.batches)
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["white_check_mark"]
    )
    await soket_bot.engine.run_cycle()
    assert len(final_replies(fake_slack, event)) == 1


async def test_a_batch_soket_keeps_losing_fails_within_minutes_saying_why(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soket: FakeSoket
) -> None:
    fake_soket.estimated_completion_seconds = 0.1
    fake_soket.missing_batch_status = 404
    fake_soket.batches_to_lose = MAX_RESUBMISSIONS + 5
    clock = ManualClock()
    settings = make_settings(transcribe_provider="soket", poll_interval_seconds=30)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        event = fake_slack.message_event(
            files=[fake_slack.add_file(name="standup.wav", content=silent_wav())]
        )
        await SlackSender(fake_slack, runtime).event(event)
        started = clock.now
        for _ in range(20):
            await cycles(runtime, clock, 1, seconds=30)
            if final_replies(fake_slack, event):
                break
        (reply,) = final_replies(fake_slack, event)
        (job,) = await runtime.store.jobs_of(reply["metadata"]["event_payload"]["batch_id"])

    assert clock.now - started <= timedelta(minutes=5)
    assert (
        "standup.wav: Soket lost this transcription. It was sent again twice and lost each time; "
        "share the file again later to retry." in reply["text"]
    )
    assert len(fake_soket.batch_bodies) == 1 + MAX_RESUBMISSIONS
    assert len(fake_soket.lost_batches) == 1 + MAX_RESUBMISSIONS
    assert job.state is JobState.FAILED and job.resubmissions == MAX_RESUBMISSIONS
    assert len(fake_soket.requests_to(r"/files/upload$", "POST")) == 1
    # Nothing is left at Soket.
    assert fake_soket.deleted_files == [job.provider_file_id]


async def test_a_file_and_a_link_of_one_message_go_to_soket_in_one_batch(
    soket_bot: Runtime,
    fake_slack: FakeSlack,
    fake_soket: FakeSoket,
    soket_sender: SlackSender,
) -> None:
    event = fake_slack.message_event(
        files=[fake_slack.add_file(name="standup.wav", content=silent_wav())],
        text="and <https://audio.example/retro.mp3>",
    )

    assert (await soket_sender.event(event)).status_code == 200
    reply = await reply_to(fake_slack, "C0GENERAL", event["ts"])

    assert "Hello from standup.wav." in reply["text"]
    assert "Hello from retro.mp3." in reply["text"]
    (body,) = fake_soket.batch_bodies
    assert len(body["file_ids"]) == 1
    assert body["sources"] == [{"url": "https://audio.example/retro.mp3", "filename": "retro.mp3"}]
    assert len(fake_slack.downloads) == 1


async def test_sending_a_lost_batch_again_is_counted_before_it_goes_out(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soket: FakeSoket
) -> None:
    fake_soket.estimated_completion_seconds = 0.1
    fake_soket.batches_to_lose = 1
    clock = ManualClock()
    settings = make_settings(transcribe_provider="soket", poll_interval_seconds=30)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        event = fake_slack.message_event(
            files=[fake_slack.add_file(name="standup.wav", content=silent_wav())]
        )
        await SlackSender(fake_slack, runtime).event(event)
        await cycles(runtime, clock, 2, seconds=1)
        assert len(fake_soket.lost_batches) == 1
        # A gateway fails the second submission: retrying it must not count as sending again.
        fake_soket.inject(r"/batch$", method="POST", status=502, body={"error": "bad gateway"})

        await cycles(runtime, clock, 1, seconds=30)
        (job,) = await runtime.store.unfinished_jobs()
        assert (job.state, job.resubmissions, job.provider_job_id) == (JobState.UPLOADED, 1, None)

        await cycles(runtime, clock, 1, seconds=1)
        (job,) = await runtime.store.unfinished_jobs()
        assert job.sent_at is not None and job.resubmissions == 1

        for _ in range(5):
            await cycles(runtime, clock, 1, seconds=30)
            if final_replies(fake_slack, event):
                break
        (reply,) = final_replies(fake_slack, event)
        (job,) = await runtime.store.jobs_of(reply["metadata"]["event_payload"]["batch_id"])

    assert "Hello from standup.wav." in reply["text"]
    assert job.resubmissions == 1, "a retried submission is not another resubmission"
    assert len(fake_soket.requests_to(r"/batch$", "POST")) == 3
