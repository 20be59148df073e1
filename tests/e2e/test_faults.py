"""Faults injected through the loopback fakes: nothing is lost, nothing is done twice."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from bot.app import Runtime, running_bot
from storage.models import JobState
from tests.conftest import ManualClock, SettingsFactory, SlackSender, final_replies
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox


def soniox_error(status: int, error_type: str, message: str) -> dict[str, Any]:
    """Soniox's documented error body."""
    return {
        "status_code": status,
        "error_type": error_type,
        "message": message,
        "validation_errors": [],
        "request_id": "req-test",
        "more_info": "https://soniox.com/docs/api-reference/errors",
    }


replies = final_replies


async def share(fake: FakeSlack, sender: SlackSender, name: str = "memo.wav") -> dict[str, Any]:
    event = fake.message_event(files=[fake.add_file(name=name, content=silent_wav())])
    assert (await sender.event(event)).status_code == 200
    return event


async def advance_until(
    clock: ManualClock, runtime: Runtime, done: Any, *, step_seconds: float, limit: int = 200
) -> None:
    """Move the clock one step at a time, running a cycle after each, until ``done()``."""
    for _ in range(limit):
        if done():
            return
        clock.advance(seconds=step_seconds)
        await runtime.engine.run_cycle()
        await runtime.engine.drain()
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_provider_outage_of_several_minutes_is_waited_out(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    for _ in range(8):  # about eight minutes of 503s with the backoff schedule
        fake_soniox.inject(
            r"^/v1/files$", status=503, body=soniox_error(500, "internal_error", "down")
        )
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        event = await share(fake_slack, SlackSender(fake_slack, runtime))
        await advance_until(clock, runtime, lambda: replies(fake_slack, event), step_seconds=30)

        (reply,) = replies(fake_slack, event)
        assert "Hello from memo.wav." in reply["text"]
        # Every call met the outage until it passed (uploads, and the listings that check
        # whether a failed upload had arrived after all); in the end one file, one transcription.
        assert len(fake_soniox.requests_to(r"^/v1/files$")) >= 9
        await fake_soniox.wait_for(lambda: fake_soniox.deleted_files)
        assert len(fake_soniox.deleted_files) == 1 and fake_soniox.files == {}
        assert len(fake_soniox.create_bodies) == 1


async def test_rate_limit_honours_retry_after(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.inject(
        r"^/v1/transcriptions$",
        method="POST",
        status=429,
        headers={"Retry-After": "120"},
        body=soniox_error(429, "limit_exceeded", "Too many pending transcriptions."),
    )
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        await share(fake_slack, SlackSender(fake_slack, runtime))
        await fake_soniox.wait_for(lambda: fake_soniox.requests_to(r"^/v1/transcriptions$", "POST"))
        await runtime.engine.drain()
        (job,) = await runtime.store.unfinished_jobs()
        assert job.state is JobState.UPLOADED, "a 429 waits; it does not fail the job"
        assert job.next_attempt_at is not None
        assert (job.next_attempt_at - clock.now).total_seconds() == 120

        clock.advance(seconds=121)
        await runtime.engine.run_cycle()
        assert len(fake_soniox.create_bodies) == 1


async def test_dropped_connection_and_timeout_while_polling_are_retried(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.inject(r"^/v1/transcriptions/[^/]+$", method="GET", drop=True)
    fake_soniox.inject(r"^/v1/transcriptions/[^/]+$", method="GET", status=502, body="bad gateway")
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        event = await share(fake_slack, SlackSender(fake_slack, runtime))
        await advance_until(clock, runtime, lambda: replies(fake_slack, event), step_seconds=10)
    assert "Hello from memo.wav." in replies(fake_slack, event)[0]["text"]
    assert len(fake_soniox.create_bodies) == 1


async def test_job_failing_past_its_maximum_age_is_reported(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    for _ in range(200):
        fake_soniox.inject(
            r"^/v1/files$", status=500, body=soniox_error(500, "internal_error", "x")
        )
    settings = make_settings(job_max_age_hours=1)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        event = await share(fake_slack, SlackSender(fake_slack, runtime))
        await advance_until(clock, runtime, lambda: replies(fake_slack, event), step_seconds=300)
    (reply,) = replies(fake_slack, event)
    assert "Gave up after 1 hours of trying" in reply["text"]
    assert fake_slack.reactions[("C0GENERAL", event["ts"])] == ["warning"]


async def test_soniox_pending_limit_is_never_reached(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.max_pending = 3
    fake_soniox.polls_until_complete = 10**6
    async with running_bot(make_settings(soniox_max_pending=3), host="127.0.0.1") as runtime:
        sender = SlackSender(fake_slack, runtime)
        events = [await share(fake_slack, sender, f"call-{i}.wav") for i in range(7)]
        await fake_soniox.wait_for(lambda: fake_soniox.pending_count == 3)
        await asyncio.sleep(0.5)  # a few more cycles: nothing more may be submitted
        assert len(fake_soniox.create_bodies) == 3

        fake_soniox.polls_until_complete = 0
        await fake_slack.wait_for(lambda: all(replies(fake_slack, e) for e in events), timeout=20)

    assert fake_soniox.peak_pending == 3
    assert not [
        r
        for r in fake_soniox.requests
        if r.path == "/v1/transcriptions" and r.method == "POST" and r.headers.get("x-fault")
    ]
    assert len(fake_soniox.create_bodies) == 7


async def test_slack_rate_limit_on_posting_still_gives_one_reply(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    fake_slack.inject_rate_limit("chat.postMessage", retry_after=1)
    event = await share(fake_slack, slack_sender)
    await fake_slack.wait_for(lambda: replies(fake_slack, event), timeout=15)
    await bot.engine.run_cycle()
    assert len(replies(fake_slack, event)) == 1
    assert len(fake_slack.api_calls("chat.postMessage")) == 2


async def test_slack_server_error_on_download_is_retried(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_slack.inject(r"^/files-pri/", status=503, body="upstream unavailable")
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        event = await share(fake_slack, SlackSender(fake_slack, runtime))
        await advance_until(clock, runtime, lambda: replies(fake_slack, event), step_seconds=5)
    assert "Hello from memo.wav." in replies(fake_slack, event)[0]["text"]
    assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 1


async def test_bad_http_requests_get_4xx_and_cause_no_work(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    url = slack_sender.url
    garbage = "{not json"
    oversized = json.dumps({"type": "event_callback", "pad": "x" * (2 * 1024 * 1024)})
    async with httpx.AsyncClient() as client:
        answers = {
            "signed garbage": await client.post(
                url, content=garbage, headers=fake_slack.signed_headers(garbage)
            ),
            "oversized": await client.post(
                url, content=oversized, headers=fake_slack.signed_headers(oversized)
            ),
            "bad signature header": await client.post(
                url,
                content="{}",
                headers={"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=zz"},
            ),
            "wrong method": await client.get(url),
        }
    for name, answer in answers.items():
        assert 400 <= answer.status_code < 500, (name, answer.status_code)
    await bot.engine.run_cycle()
    assert await bot.store.unfinished_jobs() == []
    assert fake_slack.messages == []
    # And the bot still serves.
    event = await share(fake_slack, slack_sender)
    await fake_slack.wait_for(lambda: replies(fake_slack, event))
