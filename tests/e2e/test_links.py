"""Links to audio pasted in a channel: handed to the provider, which fetches them itself; the bot
never fetches a pasted link and never sends a token with one."""

from __future__ import annotations

from typing import Any

from bot.app import Runtime
from tests.conftest import SlackSender
from tests.fakes.slack import FakeSlack
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE


def transcripts_in(fake: FakeSlack, thread_ts: str) -> list[dict[str, Any]]:
    return [m for m in fake.messages if m.get("thread_ts") == thread_ts and "Hello" in m["text"]]


async def test_pasted_audio_link_goes_to_soniox_as_audio_url(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    message = fake_slack.message_event(
        text="Yesterday's call: <https://media.example.com/rec/standup.mp3?sig=a1&amp;exp=9>",
        subtype=None,
    )

    assert (await slack_sender.event(message)).status_code == 200
    (reply,) = await fake_slack.wait_for(lambda: transcripts_in(fake_slack, message["ts"]))

    assert "Hello from standup.mp3." in reply["text"]
    (create,) = fake_soniox.create_bodies
    # As written by the person: Slack's &amp; escaping is undone, nothing is added.
    assert create["audio_url"] == "https://media.example.com/rec/standup.mp3?sig=a1&exp=9"
    assert "file_id" not in create
    assert not fake_soniox.requests_to(r"^/v1/files$", "POST"), "nothing was uploaded"
    assert fake_slack.downloads == []
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", message["ts"])) == ["white_check_mark"]
    )
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)
    assert batch.source == "link"


async def test_labelled_links_in_a_thread_reply_are_answered_in_that_thread(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    parent = fake_slack.message_event(text="Interviews", subtype=None)
    message = fake_slack.message_event(
        text=(
            "<https://cdn.example.net/a/first.m4a|first> and "
            "<https://cdn.example.net/a/second.WAV|second>, notes at <https://example.com/notes>"
        ),
        thread_ts=parent["ts"],
        subtype=None,
    )

    await slack_sender.event(message)
    (reply,) = await fake_slack.wait_for(lambda: transcripts_in(fake_slack, parent["ts"]))

    assert "Hello from first.m4a." in reply["text"] and "Hello from second.WAV." in reply["text"]
    assert sorted(b["audio_url"] for b in fake_soniox.create_bodies) == [
        "https://cdn.example.net/a/first.m4a",
        "https://cdn.example.net/a/second.WAV",
    ]
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", message["ts"])) == ["white_check_mark"]
    )


async def test_links_that_are_not_audio_are_left_alone(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    message = fake_slack.message_event(
        text="Slides: <https://example.com/deck.pdf> and <https://example.com/watch?v=mp3>",
        subtype=None,
    )

    await slack_sender.event(message)
    await bot.engine.run_cycle()

    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []
    assert fake_soniox.create_bodies == [] and fake_slack.messages == []


async def test_redelivered_link_message_is_transcribed_once(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    message = fake_slack.message_event(text="<https://media.example.com/x.ogg>", subtype=None)

    await slack_sender.event(message)
    await slack_sender.event(message, **{"X-Slack-Retry-Num": "1"})
    await fake_slack.wait_for(lambda: transcripts_in(fake_slack, message["ts"]))
    await bot.engine.run_cycle()

    assert len(transcripts_in(fake_slack, message["ts"])) == 1
    assert len(fake_soniox.create_bodies) == 1


async def test_pasted_link_goes_to_soket_as_a_url_source(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soket: FakeSoket
) -> None:
    fake_soket.estimated_completion_seconds = 0.1  # the first status check comes at once
    settings = await bot.store.channel_settings(FAKE_WORKSPACE, "C0GENERAL")
    settings.provider = "soket"
    await bot.store.save_channel_settings(FAKE_WORKSPACE, settings, bot.clock())
    message = fake_slack.message_event(text="<https://media.example.com/q3.flac>", subtype=None)

    await slack_sender.event(message)
    (reply,) = await fake_slack.wait_for(lambda: transcripts_in(fake_slack, message["ts"]))

    assert "q3.flac" in reply["text"]
    sources = [s for body in fake_soket.batch_bodies for s in body.get("sources") or []]
    assert [s["url"] for s in sources] == ["https://media.example.com/q3.flac"]
    assert not fake_soket.uploads
