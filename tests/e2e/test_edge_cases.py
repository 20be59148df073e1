"""Edge cases that once lost or repeated work: each test names the situation it guards."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx

from bot.app import Runtime, running_bot
from storage.models import BatchState, ChannelSettings, JobState
from tests.conftest import ManualClock, SettingsFactory, SlackSender, cycles, final_replies
from tests.e2e.test_faults import soniox_error
from tests.fakes.slack import FORM_CONTENT_TYPE, FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE


async def test_a_transcription_that_never_finishes_fails_at_the_age_limit(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**9
    clock = ManualClock()
    settings = make_settings(job_max_age_hours=1, poll_interval_seconds=3600)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await cycles(runtime, clock, 30, minutes=5)
    (reply,) = final_replies(fake_slack, event)
    assert "had not finished after 1 hours" in reply["text"]


async def test_a_malformed_link_beside_a_file_does_not_lose_the_file(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    file = fake_slack.add_file(name="memo.wav", content=silent_wav())
    event = fake_slack.message_event(files=[file], text="notes <https://a.com]/x.mp3>")
    assert (await slack_sender.event(event)).status_code == 200
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
    assert "Hello from memo.wav." in reply["text"]


async def test_a_malformed_link_in_the_command_gets_a_clear_answer(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    body = fake_slack.slash_command_body("https://[oops")
    answer = await slack_sender.post(
        body, fake_slack.signed_headers(body, content_type=FORM_CONTENT_TYPE)
    )
    assert answer.status_code == 200
    await bot.engine.run_cycle()
    assert await bot.store.unfinished_jobs() == []


async def test_work_that_waited_long_still_gets_its_retries(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    settings = make_settings(poll_interval_seconds=3600)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        await asyncio.sleep(0.1)  # let the start-up cycle pass
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        clock.advance(hours=7)  # the bot was down overnight, say
        fake_soniox.inject(
            r"^/v1/files$", status=503, body=soniox_error(503, "internal_error", "x")
        )
        await cycles(runtime, clock, 1, seconds=0)
        (job,) = await runtime.store.unfinished_jobs()
        assert job.state is not JobState.FAILED, "one passing error after a long wait is retried"
        await cycles(runtime, clock, 6, minutes=30)
        assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 2
    assert "Hello from memo.wav." in final_replies(fake_slack, event)[0]["text"]


async def test_a_deleted_progress_message_does_not_lose_the_reply(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**9
    clock = ManualClock()
    settings = make_settings(poll_interval_seconds=3600)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        await asyncio.sleep(0.1)
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await cycles(runtime, clock, 3, seconds=10)
        (batch,) = await runtime.store.running_batches(FAKE_WORKSPACE, "C0GENERAL")
        assert batch.status_ts not in (None, "pending")
        # Someone deleted the progress message.
        fake_slack.inject(
            r"chat\.update", status=200, body={"ok": False, "error": "message_not_found"}
        )
        await fake_soniox.complete_all()
        await cycles(runtime, clock, 3, minutes=30)
        done = await runtime.store.get_batch(batch.id)
    assert done is not None and done.state is BatchState.DELIVERED
    (reply,) = final_replies(fake_slack, event)
    assert reply["ts"] != batch.status_ts
    assert "Hello from memo.wav." in reply["text"]


async def test_two_shortcuts_at_once_start_one_batch(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    await bot.store.save_channel_settings(
        FAKE_WORKSPACE, ChannelSettings("C0GENERAL", auto=False), bot.clock()
    )
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    body = fake_slack.interactive_body(fake_slack.message_shortcut("C0GENERAL", event["ts"]))
    headers = fake_slack.signed_headers(body, content_type=FORM_CONTENT_TYPE)

    answers = await asyncio.gather(*(slack_sender.post(body, headers) for _ in range(3)))

    assert [answer.status_code for answer in answers] == [200, 200, 200]
    await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
    await bot.engine.run_cycle()
    assert len(final_replies(fake_slack, event)) == 1


async def test_cancelling_mid_transfer_leaves_no_spool_file(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox, tmp_path: Path
) -> None:
    clock = ManualClock()
    fake_soniox.inject(r"^/v1/files$", status=503, body=soniox_error(503, "internal_error", "x"))
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await fake_soniox.wait_for(lambda: fake_soniox.requests_to(r"^/v1/files$", "POST"))
        await runtime.engine.drain()
        (job,) = await runtime.store.unfinished_jobs()
        assert job.state is JobState.UPLOADING and job.spool_path
        assert await runtime.store.cancel_batch(job.batch_id, clock())
        await cycles(runtime, clock, 2, seconds=1)
    assert list((tmp_path / "spool").glob("*")) == []
    assert final_replies(fake_slack, event) == []


async def test_a_transfer_started_from_a_stale_snapshot_does_nothing(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox, slack_sender: SlackSender
) -> None:
    fake_soniox.polls_until_complete = 10**9
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    await slack_sender.event(event)
    await fake_soniox.wait_for(lambda: fake_soniox.create_bodies)
    (job,) = await bot.store.unfinished_jobs()
    # What a cycle that read the job just before its transfer finished would hold.
    stale = dataclasses.replace(job, state=JobState.UPLOADING, spool_path="/nonexistent")

    await bot.engine.transfers.transfer([stale])

    assert len(fake_slack.downloads) == 1
    assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 1
    (now,) = await bot.store.unfinished_jobs()
    assert now.state is job.state and now.provider_file_id == job.provider_file_id


async def test_a_failed_transfer_waits_for_its_retry_after(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()  # frozen: only the scheduler's real ticks and kicks run cycles
    fake_soniox.inject(
        r"^/v1/files$",
        method="POST",
        status=429,
        headers={"Retry-After": "20"},
        body=soniox_error(429, "limit_exceeded", "slow down"),
    )
    settings = make_settings(poll_interval_seconds=60)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await fake_soniox.wait_for(lambda: fake_soniox.requests_to(r"^/v1/files$", "POST"))
        await asyncio.sleep(1.0)  # the finished transfer kicks more cycles meanwhile
        assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 1
        clock.advance(seconds=21)
        await runtime.engine.run_cycle()
        await runtime.engine.drain()
        await fake_soniox.wait_for(
            lambda: len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 2
        )


async def test_a_progress_message_of_a_batch_with_nothing_to_transcribe_says_so(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    # A Slack Connect stub that turns out to be a PDF, slowly: files.info fails once first.
    fake_slack.inject(r"files\.info", status=200, body={"ok": False, "error": "fatal_error"})
    async with running_bot(make_settings(progress_after_seconds=0), host="127.0.0.1") as runtime:
        stub = fake_slack.add_file(
            name="agenda.pdf",
            mimetype="application/pdf",
            filetype="pdf",
            content=b"%PDF",
            stub=True,
        )
        event = fake_slack.message_event(files=[stub])
        await SlackSender(fake_slack, runtime).event(event)
        (progress,) = await fake_slack.wait_for(
            lambda: fake_slack.replies_in("C0GENERAL", event["ts"])
        )
        assert "Transcribing" in progress["text"]
        await fake_slack.wait_for(
            lambda: (
                "Nothing here to transcribe"
                in fake_slack.replies_in("C0GENERAL", event["ts"])[0]["text"]
            ),
            timeout=15,
        )
    assert ("C0GENERAL", event["ts"]) not in fake_slack.reactions or fake_slack.reactions[
        ("C0GENERAL", event["ts"])
    ] == []


async def test_a_cancelled_job_whose_answer_was_lost_leaves_nothing_at_soniox(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.inject(r"^/v1/transcriptions$", method="POST", status=502, body="bad gateway")
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await fake_soniox.wait_for(lambda: fake_soniox.requests_to(r"^/v1/transcriptions$", "POST"))
        await runtime.engine.drain()
        (job,) = await runtime.store.unfinished_jobs()
        assert job.sent_at is not None
        # The 502 came from a gateway; Soniox had started the transcription all the same.
        async with httpx.AsyncClient() as client:
            await client.post(
                f"{fake_soniox.api_url}/transcriptions",
                headers={"Authorization": f"Bearer {fake_soniox.api_key}"},
                json={"model": "stt-async-v5", "file_id": job.provider_file_id,
                      "client_reference_id": job.id},
            )  # fmt: skip
        assert await runtime.store.cancel_batch(job.batch_id, clock())
        await fake_soniox.complete_all()
        for _ in range(3):
            await cycles(runtime, clock, 1, seconds=120)
        await fake_soniox.wait_for(lambda: fake_soniox.deleted_transcriptions)
    assert fake_soniox.transcriptions == {} or all(
        t["id"] in fake_soniox.deleted_transcriptions for t in fake_soniox.transcriptions.values()
    )
    assert fake_soniox.deleted_files, "the uploaded file went too"
