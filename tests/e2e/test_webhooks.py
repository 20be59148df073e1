"""Soniox webhooks: a finished transcription is delivered at once instead of at the next poll."""

from __future__ import annotations

import httpx

from bot.app import running_bot
from tests.bot_process import free_port
from tests.conftest import SettingsFactory, SlackSender, final_replies
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
