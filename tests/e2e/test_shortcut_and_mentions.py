"""Transcribing on request: the *Transcribe* message shortcut and ``@threadscribe transcribe`` in
a thread, both working when the channel has automatic transcription off."""

from __future__ import annotations

import json
from typing import Any

import httpx

from bot.app import Runtime, running_bot
from storage.models import ChannelSettings
from tests.conftest import SettingsFactory, SlackSender
from tests.fakes.slack import FORM_CONTENT_TYPE, FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE


async def auto_off(runtime: Runtime, channel: str = "C0GENERAL") -> None:
    await runtime.store.save_channel_settings(
        FAKE_WORKSPACE, ChannelSettings(channel_id=channel, auto=False), runtime.clock()
    )


async def send_shortcut(
    sender: SlackSender, channel: str, ts: str, **fields: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    """Run the message shortcut on a message, signed as Slack signs interactivity requests."""
    fake = sender.fake
    payload = fake.message_shortcut(channel, ts, **fields)
    body = fake.interactive_body(payload)
    ack = await sender.post(body, fake.signed_headers(body, content_type=FORM_CONTENT_TYPE))
    return ack, payload


def transcripts_in(fake: FakeSlack, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    return [
        m
        for m in fake.messages
        if m["channel"] == channel and m.get("thread_ts") == thread_ts and "Hello from" in m["text"]
    ]


def said_in(fake: FakeSlack, channel: str, thread_ts: str) -> list[str]:
    return [
        m["text"]
        for m in fake.messages
        if m["channel"] == channel and m.get("thread_ts") == thread_ts
    ]


# -- the message shortcut ------------------------------------------------------------------------


async def test_shortcut_on_a_reply_in_a_thread_answers_in_that_thread_with_auto_off(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    await auto_off(bot)
    parent = fake_slack.message_event(text="Recordings from today", subtype=None)
    file = fake_slack.add_file(
        name="call.m4a", mimetype="audio/mp4", filetype="m4a", content=silent_wav()
    )
    reply = fake_slack.message_event(files=[file], thread_ts=parent["ts"])
    assert (await slack_sender.event(reply)).status_code == 200
    await bot.engine.run_cycle()
    assert fake_slack.downloads == [], "auto is off: the upload alone starts nothing"

    ack, _ = await send_shortcut(slack_sender, "C0GENERAL", reply["ts"])

    assert (ack.status_code, ack.text) == (200, "")
    (answer,) = await fake_slack.wait_for(
        lambda: transcripts_in(fake_slack, "C0GENERAL", parent["ts"])
    )
    assert "Hello from call.m4a." in answer["text"]
    # The reaction marks the message the shortcut was run on.
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", reply["ts"])) == ["white_check_mark"]
    )
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)
    assert (batch.source, batch.message_ts, batch.thread_ts) == (
        "shortcut",
        reply["ts"],
        parent["ts"],
    )
    assert fake_slack.responses == [], "success needs no words: the reaction says it"


async def test_shortcut_transcribes_an_audio_link_of_the_message(
    slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    message = fake_slack.message_event(
        text="Listen: <https://media.example.com/pod/ep-12.mp3|episode 12>", subtype=None
    )

    await send_shortcut(slack_sender, "C0GENERAL", message["ts"])
    await fake_slack.wait_for(lambda: transcripts_in(fake_slack, "C0GENERAL", message["ts"]))

    # Auto is on, but the message event was never sent: only the shortcut started this.
    assert [body["audio_url"] for body in fake_soniox.create_bodies] == [
        "https://media.example.com/pod/ep-12.mp3"
    ]


async def test_shortcut_on_a_message_without_media_explains_privately(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    message = fake_slack.message_event(
        text="See <https://example.com/agenda|the agenda>", subtype=None
    )

    ack, payload = await send_shortcut(slack_sender, "C0GENERAL", message["ts"])

    assert ack.status_code == 200
    (answer,) = await fake_slack.wait_for(lambda: fake_slack.responses)
    assert payload["response_url"].endswith(answer["response_id"])
    assert answer["response_type"] == "ephemeral"
    assert "no audio, video or audio link" in answer["text"]
    assert fake_slack.messages == []
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


async def test_shortcut_twice_on_a_message_being_transcribed_starts_one_batch(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    await auto_off(bot)
    fake_soniox.polls_until_complete = 10**6
    message = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])

    await send_shortcut(slack_sender, "C0GENERAL", message["ts"])
    await send_shortcut(slack_sender, "C0GENERAL", message["ts"])

    (answer,) = await fake_slack.wait_for(lambda: fake_slack.responses)
    (batch,) = await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL")
    assert f"Already on it: `{batch.id}`" in answer["text"]


async def test_unsigned_shortcut_is_refused(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    message = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    body = fake_slack.interactive_body(fake_slack.message_shortcut("C0GENERAL", message["ts"]))

    forged = await slack_sender.post(body, {"Content-Type": FORM_CONTENT_TYPE})

    assert forged.status_code == 401
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


# -- mentions ------------------------------------------------------------------------------------


async def test_mention_in_a_thread_transcribes_the_parent_once_even_if_redelivered(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    await auto_off(bot)
    parent = fake_slack.message_event(
        files=[fake_slack.add_file(name="board-meeting.wav", content=silent_wav())]
    )
    mention = fake_slack.app_mention_event(
        fake_slack.mention("transcribe"), thread_ts=parent["ts"], user="U0BOB"
    )
    body = json.dumps(fake_slack.event_callback(mention, event_id="Ev0MENTION1"))

    first = await slack_sender.post(body, fake_slack.signed_headers(body))
    redelivered = await slack_sender.post(
        body,
        {**fake_slack.signed_headers(body), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "x"},
    )

    assert (first.status_code, redelivered.status_code) == (200, 200)
    (answer,) = await fake_slack.wait_for(
        lambda: transcripts_in(fake_slack, "C0GENERAL", parent["ts"])
    )
    assert "Hello from board-meeting.wav." in answer["text"]
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", parent["ts"])) == ["white_check_mark"]
    )
    await bot.engine.run_cycle()
    assert len(transcripts_in(fake_slack, "C0GENERAL", parent["ts"])) == 1
    assert len(fake_soniox.create_bodies) == 1
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)
    assert (batch.source, batch.user_id) == ("mention", "U0BOB")
    assert fake_slack.api_args("conversations.replies")[0]["ts"] == parent["ts"]
    assert fake_slack.downloads[0]["authorized"] is True


async def test_mention_outside_a_thread_gets_a_short_pointer(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    mention = fake_slack.app_mention_event(fake_slack.mention("transcribe"))

    await slack_sender.event(mention)

    (text,) = await fake_slack.wait_for(lambda: said_in(fake_slack, "C0GENERAL", mention["ts"]))
    assert "*in its thread*" in text and "@threadscribe transcribe" in text
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


async def test_mention_with_other_words_gets_a_short_pointer(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    parent = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    await auto_off(bot)
    mention = fake_slack.app_mention_event(
        fake_slack.mention("what can you do?"), thread_ts=parent["ts"]
    )

    await slack_sender.event(mention)

    (text,) = await fake_slack.wait_for(lambda: said_in(fake_slack, "C0GENERAL", parent["ts"]))
    assert "@threadscribe transcribe" in text
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


async def test_mention_in_a_thread_whose_parent_has_no_media(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    parent = fake_slack.message_event(text="Shall we meet at 3?", subtype=None)
    mention = fake_slack.app_mention_event(
        fake_slack.mention("Transcribe, please!"), thread_ts=parent["ts"]
    )

    await slack_sender.event(mention)

    (text,) = await fake_slack.wait_for(lambda: said_in(fake_slack, "C0GENERAL", parent["ts"]))
    assert "first message of this thread has no audio" in text
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


async def test_shortcut_over_socket_mode(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    settings = make_settings(slack_app_token=fake_slack.app_token, slack_signing_secret=None)
    async with running_bot(settings, host="127.0.0.1"):
        message = fake_slack.message_event(
            files=[fake_slack.add_file(name="clip.webm", mimetype="audio/webm", filetype="webm")]
        )
        envelope_id = await fake_slack.send_envelope(
            fake_slack.message_shortcut("C0GENERAL", message["ts"]), type="interactive"
        )
        await fake_slack.wait_for_ack(envelope_id)
        (reply,) = await fake_slack.wait_for(
            lambda: transcripts_in(fake_slack, "C0GENERAL", message["ts"])
        )

    assert "Hello from clip.webm." in reply["text"]
