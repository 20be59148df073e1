"""Soniox webhooks: a finished transcription is delivered at once instead of at the next poll."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.app import running_bot
from tests.bot_process import free_port
from tests.conftest import ManualClock, SettingsFactory, SlackSender, cycles, final_replies
from tests.e2e.test_health_metrics import sample, scrape
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox


async def test_webhook_delivers_without_waiting_for_the_next_poll(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    port = free_port()
    settings = make_settings(
        port=port, public_url=f"http://127.0.0.1:{port}", poll_interval_seconds=30
    )
    fake_soniox.polls_until_complete = 10**6
    async with running_bot(settings, host="127.0.0.1") as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        (create,) = await fake_soniox.wait_for(lambda: fake_soniox.create_bodies)
        assert create["webhook_url"] == f"http://127.0.0.1:{port}/webhooks/soniox"
        assert create["webhook_auth_header_name"] == "X-Threadscribe-Webhook-Token"
        assert settings.slack_signing_secret is not None
        assert settings.slack_signing_secret.get_secret_value() not in str(create)

        (transcription_id,) = fake_soniox.transcriptions
        await fake_soniox.complete(transcription_id)
        (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event), timeout=5)

    assert "Hello from memo.wav." in reply["text"]
    assert [d.get("status") for d in fake_soniox.webhook_deliveries] == [200]


async def test_forged_or_malformed_webhook_is_refused(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    port = free_port()
    settings = make_settings(port=port, public_url="https://bot.example.com")
    webhook = settings.soniox_webhook
    assert webhook is not None
    async with running_bot(settings, host="127.0.0.1"):
        url = f"http://127.0.0.1:{port}/webhooks/soniox"
        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url, json={"id": "x", "status": "completed"}, headers={webhook.header_name: "guess"}
            )
            unsigned = await client.post(url, json={"id": "x", "status": "completed"})
            malformed = await client.post(
                url, content="{", headers={webhook.header_name: webhook.header_value}
            )
            unknown = await client.post(
                url,
                json={"id": "not-ours", "status": "completed"},
                headers={webhook.header_name: webhook.header_value},
            )
    assert (forged.status_code, unsigned.status_code, malformed.status_code) == (401, 401, 400)
    assert unknown.status_code == 200


async def test_no_webhook_in_socket_mode_or_without_public_url(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    assert make_settings().soniox_webhook is None
    socket = make_settings(
        slack_app_token=fake_slack.app_token,
        slack_signing_secret=None,
        public_url="https://bot.example.com",
    )
    assert socket.soniox_webhook is None


async def test_with_webhooks_polls_are_a_rare_fallback_that_still_delivers(
    make_settings: SettingsFactory,
    fake_slack: FakeSlack,
    fake_soniox: FakeSoniox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    unreachable = free_port()  # nothing listens there: every webhook is lost
    clock = ManualClock()
    settings = make_settings(public_url=f"http://127.0.0.1:{unreachable}", poll_interval_seconds=5)
    fake_soniox.polls_until_complete = 10**6
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        await asyncio.sleep(0.1)  # let the start-up cycle pass
        before = await scrape(runtime)
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await cycles(runtime, clock, 2, seconds=1)
        (transcription_id,) = fake_soniox.transcriptions

        def status_polls() -> int:
            return len(fake_soniox.requests_to(rf"^/v1/transcriptions/{transcription_id}$", "GET"))

        # Without webhooks a job this young is polled every interval; with them, not yet.
        await cycles(runtime, clock, 5, seconds=10)
        assert status_polls() == 0

        await fake_soniox.complete(transcription_id)
        await fake_soniox.wait_for(lambda: fake_soniox.webhook_deliveries)
        assert "error" in fake_soniox.webhook_deliveries[0], "the webhook was lost"
        await cycles(runtime, clock, 1, seconds=10)
        (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
        after = await scrape(runtime)

    assert "Hello from memo.wav." in reply["text"]
    assert status_polls() == 1
    missed = "threadscribe_webhooks_missed_total"
    assert sample(after, missed, provider="soniox") - sample(before, missed, provider="soniox") == 1
    assert "no webhook arrived" in caplog.text


async def test_a_webhook_that_comes_before_its_submission_is_recorded_still_counts(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    port = free_port()
    clock = ManualClock()
    settings = make_settings(
        port=port, public_url=f"http://127.0.0.1:{port}", poll_interval_seconds=5
    )
    fake_soniox.polls_until_complete = 10**6
    # Soniox creates the transcription at once; its answer reaches the bot a second later.
    fake_soniox.inject(r"^/v1/transcriptions$", method="POST", status=0, answer_delay=1.0)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        await asyncio.sleep(0.1)  # let the start-up cycle pass
        before = await scrape(runtime)
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        submitting = asyncio.create_task(cycles(runtime, clock, 2, seconds=1))
        (transcription_id,) = await fake_soniox.wait_for(lambda: list(fake_soniox.transcriptions))
        await fake_soniox.complete(transcription_id)  # a short clip: done already
        await fake_soniox.wait_for(lambda: fake_soniox.webhook_deliveries)
        await submitting
        assert fake_soniox.webhook_deliveries[0]["status"] == 200

        await cycles(runtime, clock, 1, seconds=1)  # far sooner than the fallback poll
        (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
        after = await scrape(runtime)
    assert "Hello from memo.wav." in reply["text"]
    missed = "threadscribe_webhooks_missed_total"
    assert sample(after, missed, provider="soniox") == sample(before, missed, provider="soniox")
