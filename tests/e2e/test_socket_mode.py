"""The same upload path over Socket Mode: envelopes in, acks out, reply in the thread."""

from __future__ import annotations

from bot.app import running_bot
from tests.conftest import SettingsFactory, final_replies, on_both_backends
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox


@on_both_backends
async def test_socket_mode_upload_gets_transcript_reply(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    settings = make_settings(slack_app_token=fake_slack.app_token, slack_signing_secret=None)
    assert settings.socket_mode

    async with running_bot(settings, host="127.0.0.1"):
        file = fake_slack.add_file(
            name="voice-memo.webm", mimetype="audio/webm", filetype="webm", content=silent_wav()
        )
        event = fake_slack.message_event(files=[file], subtype="file_share")
        envelope_id = await fake_slack.send_envelope(fake_slack.event_callback(event))

        ack = await fake_slack.wait_for_ack(envelope_id)
        assert ack["envelope_id"] == envelope_id

        replies = await fake_slack.wait_for(
            lambda: [m for m in fake_slack.replies_in("C0GENERAL", event["ts"]) if m.get("blocks")]
        )
        assert "Hello from voice-memo.webm." in replies[0]["text"]
        await fake_soniox.wait_for(lambda: fake_soniox.deleted_files)


async def test_redelivered_envelope_is_answered_once(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    settings = make_settings(slack_app_token=fake_slack.app_token, slack_signing_secret=None)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        payload = fake_slack.event_callback(event)
        first = await fake_slack.send_envelope(payload)
        await fake_slack.wait_for_ack(first)
        # Slack retries with the same event, and also sends it again in a new envelope.
        again = await fake_slack.send_envelope(payload, retry_attempt=1, retry_reason="timeout")
        await fake_slack.wait_for_ack(again)
        other = await fake_slack.send_envelope(fake_slack.event_callback(event))
        await fake_slack.wait_for_ack(other)

        await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
        await runtime.engine.run_cycle()

    assert len(final_replies(fake_slack, event)) == 1
    assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 1
