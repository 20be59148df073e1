"""The poll cycle asks Soniox about all its running transcriptions in one listing."""

from __future__ import annotations

from typing import Any

import httpx

from bot.app import Runtime, running_bot
from storage.models import JobState
from tests.conftest import ManualClock, SettingsFactory, SlackSender, cycles, final_replies
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox

#: More than the longest wait between two polls of a running transcription.
EVERY_POLL = 61


async def share_files(
    fake_slack: FakeSlack, fake_soniox: FakeSoniox, runtime: Runtime, count: int
) -> list[dict[str, Any]]:
    """``count`` messages with a file each, followed until Soniox is transcribing them all."""
    sender = SlackSender(fake_slack, runtime)
    events = []
    for n in range(count):
        file = fake_slack.add_file(name=f"call-{n}.wav", content=silent_wav())
        event = fake_slack.message_event(files=[file])
        assert (await sender.event(event)).status_code == 200
        events.append(event)
    await fake_soniox.wait_for(lambda: len(fake_soniox.create_bodies) == count)
    await runtime.engine.drain()
    return events


def soniox_calls(fake: FakeSoniox, since: int) -> list[tuple[str, str]]:
    return [(request.method, request.path) for request in fake.requests[since:]]


async def test_running_transcriptions_cost_one_listing_per_cycle(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.polls_until_complete = 10**6
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        events = await share_files(fake_slack, fake_soniox, runtime, 5)

        for _ in range(3):
            before = len(fake_soniox.requests)
            await cycles(runtime, clock, 1, seconds=EVERY_POLL)
            assert soniox_calls(fake_soniox, before) == [("GET", "/v1/transcriptions")]
        assert {job.state for job in await runtime.store.unfinished_jobs()} == {JobState.PROCESSING}

        await fake_soniox.complete_all()
        before = len(fake_soniox.requests)
        await cycles(runtime, clock, 1, seconds=EVERY_POLL)
        made = soniox_calls(fake_soniox, before)
        assert made.count(("GET", "/v1/transcriptions")) == 1
        assert len([call for call in made if call[1].endswith("/transcript")]) == 5
        for n, event in enumerate(events):
            (reply,) = await fake_slack.wait_for(lambda e=event: final_replies(fake_slack, e))
            assert f"Hello from call-{n}.wav." in reply["text"]


async def test_a_transcription_missing_from_the_listing_is_asked_about_alone(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.polls_until_complete = 10**6
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        kept_event, gone_event = await share_files(fake_slack, fake_soniox, runtime, 2)
        by_name = {
            fake_soniox.files[public["file_id"]]["filename"]: transcription_id
            for transcription_id, public in fake_soniox.transcriptions.items()
        }
        kept, gone = by_name["call-0.wav"], by_name["call-1.wav"]
        # A finished transcription deleted by someone else (the console's "delete all
        # transcriptions") is in no listing; only its own GET can say what became of it.
        await fake_soniox.complete(gone)
        async with httpx.AsyncClient() as console:
            deleted = await console.delete(
                f"{fake_soniox.api_url}/transcriptions/{gone}",
                headers={"Authorization": f"Bearer {fake_soniox.api_key}"},
            )
        assert deleted.status_code == 204
        before = len(fake_soniox.requests)

        await cycles(runtime, clock, 1, seconds=EVERY_POLL)

        assert soniox_calls(fake_soniox, before)[:2] == [
            ("GET", "/v1/transcriptions"),
            ("GET", f"/v1/transcriptions/{gone}"),
        ]
        (failed,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, gone_event))
        assert "Soniox no longer has this file." in failed["text"]
        assert final_replies(fake_slack, kept_event) == []

        await fake_soniox.complete(kept)
        await cycles(runtime, clock, 1, seconds=EVERY_POLL)
        (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, kept_event))
        assert "Hello from call-0.wav." in reply["text"]


async def test_a_failed_listing_is_retried_like_a_failed_poll_of_each(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.polls_until_complete = 10**6
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        events = await share_files(fake_slack, fake_soniox, runtime, 3)
        fake_soniox.inject(r"^/v1/transcriptions$", method="GET", status=503, body="unavailable")

        await cycles(runtime, clock, 1, seconds=EVERY_POLL)

        jobs = await runtime.store.unfinished_jobs()
        assert len(jobs) == 3
        for job in jobs:
            assert job.state is JobState.SUBMITTED, "a passing fault fails nothing"
            assert job.attempts == 1
            assert job.next_attempt_at is not None and job.next_attempt_at > clock.now
            assert "503" in (job.error_detail or "")

        await fake_soniox.complete_all()
        await cycles(runtime, clock, 1, seconds=EVERY_POLL)
        for event in events:
            await fake_slack.wait_for(lambda e=event: final_replies(fake_slack, e))
