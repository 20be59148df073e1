"""A call the provider carried out whose answer the bot never recorded (a crash, a timeout, a 5xx
sent after the work was done): the bot finds what was created instead of creating it again."""

from __future__ import annotations

from pathlib import Path

import httpx

from bot.app import running_bot
from storage.models import JobState
from tests.bot_process import BotProcess, bot_environment, run_again
from tests.conftest import ManualClock, SettingsFactory, SlackSender, cycles, final_replies
from tests.e2e.test_faults import soniox_error
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox


async def test_an_upload_whose_answer_was_lost_is_not_repeated(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.inject(r"^/v1/files$", status=504, body=soniox_error(504, "internal_error", "x"))
    async with running_bot(
        make_settings(poll_interval_seconds=3600), clock=clock, host="127.0.0.1"
    ) as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await fake_soniox.wait_for(lambda: fake_soniox.requests_to(r"^/v1/files$", "POST"))
        await runtime.engine.drain()
        (job,) = await runtime.store.unfinished_jobs()
        assert job.state is JobState.UPLOADING and job.sent_at is not None
        # The gateway timed out, but Soniox had stored the file under our job id.
        async with httpx.AsyncClient() as client:
            stored = await client.post(
                f"{fake_soniox.api_url}/files",
                headers={"Authorization": f"Bearer {fake_soniox.api_key}"},
                files={"file": ("memo.wav", silent_wav(), "audio/wav")},
                data={"client_reference_id": job.id},
            )
        file_id = stored.json()["id"]

        await cycles(runtime, clock, 1, seconds=60)
        (after,) = await runtime.store.unfinished_jobs()
        assert after.provider_file_id == file_id
        assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 2, "no upload of our own"
        await cycles(runtime, clock, 1, seconds=3600)
        await cycles(runtime, clock, 1, seconds=3600)
    assert "Hello from memo.wav." in final_replies(fake_slack, event)[0]["text"]
    assert fake_soniox.create_bodies[0]["file_id"] == file_id


async def test_a_submission_whose_answer_was_lost_is_adopted(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.inject(
        r"^/v1/transcriptions$", method="POST", status=502, body=soniox_error(502, "x", "x")
    )
    async with running_bot(
        make_settings(poll_interval_seconds=3600), clock=clock, host="127.0.0.1"
    ) as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await fake_soniox.wait_for(lambda: fake_soniox.requests_to(r"^/v1/transcriptions$", "POST"))
        await runtime.engine.drain()
        (job,) = await runtime.store.unfinished_jobs()
        assert job.state is JobState.UPLOADED and job.sent_at is not None
        async with httpx.AsyncClient() as client:
            created = await client.post(
                f"{fake_soniox.api_url}/transcriptions",
                headers={"Authorization": f"Bearer {fake_soniox.api_key}"},
                json={
                    "model": "stt-async-v5",
                    "file_id": job.provider_file_id,
                    "client_reference_id": job.id,
                },
            )
        transcription_id = created.json()["id"]

        await cycles(runtime, clock, 1, seconds=60)
        (after,) = await runtime.store.unfinished_jobs()
        assert after.provider_job_id == transcription_id
        await cycles(runtime, clock, 1, seconds=3600)
        await cycles(runtime, clock, 1, seconds=3600)
    assert len(fake_soniox.create_bodies) == 1, "the bot never created a second transcription"
    assert "Hello from memo.wav." in final_replies(fake_slack, event)[0]["text"]
    assert transcription_id in fake_soniox.deleted_transcriptions


async def test_sigkill_while_the_create_call_is_in_flight(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    # Soniox takes its time answering; the process dies before the answer arrives, but the
    # transcription is created all the same.
    fake_soniox.inject(r"^/v1/transcriptions$", method="POST", delay=1.0, status=0)
    env = bot_environment(tmp_path, fake_slack, fake_soniox)
    first = BotProcess(env, tmp_path, tmp_path / "first.log")
    await first.start()
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    body_sender = SlackSender.__new__(SlackSender)
    body_sender.fake, body_sender.url = fake_slack, f"{first.url}/slack/events"
    await body_sender.event(event)
    await fake_soniox.wait_for(lambda: fake_soniox.requests_to(r"^/v1/transcriptions$", "POST"))
    await first.kill()
    await fake_soniox.wait_for(lambda: fake_soniox.create_bodies, timeout=5)

    await run_again(
        env,
        tmp_path,
        lambda: fake_slack.wait_for(lambda: final_replies(fake_slack, event), timeout=20),
    )
    assert len(fake_soniox.create_bodies) == 1
    assert len(final_replies(fake_slack, event)) == 1
