"""What a channel asks of its transcripts besides their languages, from the command to the reply:
a vocabulary and a context sentence sent to Soniox, a translation shown turn by turn, doubtful
words marked. A channel on Soket.ai, which documents none of these, is told so plainly."""

from __future__ import annotations

from typing import Any

from bot.app import Runtime
from storage.models import ChannelSettings, TranscriptionOptions
from tests.conftest import SlackSender, final_replies, on_both_backends
from tests.e2e.test_commands import command_answer, share_file
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

CHANNEL = "C0GENERAL"


async def delivered(fake_slack: FakeSlack, event: dict[str, Any]) -> None:
    """Wait until the batch of ``event`` has finished: its message is marked done."""
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get((CHANNEL, event["ts"])) == ["white_check_mark"]
    )


def shown(reply: dict[str, Any]) -> str:
    """The text of a reply's blocks, as Slack shows it, block after block."""
    return "\n".join(
        str(block["text"]["text"]) for block in reply["blocks"] if block["type"] == "section"
    )


@on_both_backends
async def test_vocabulary_and_context_reach_soniox_with_each_new_file(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    empty = await command_answer(slack_sender, "vocabulary")
    assert "no vocabulary" in empty and "vocabulary add Kubernetes, Priya Raman" in empty
    added = await command_answer(slack_sender, "vocabulary add Kubernetes, Anthropic, Priya Raman")
    assert "Added `Kubernetes`, `Anthropic`, `Priya Raman`" in added
    # Words from outside are shown as typed, never as Slack markup.
    again = await command_answer(slack_sender, "vocabulary add kubernetes,  <!channel>")
    assert "Already in it: `kubernetes`" in again
    assert "`&lt;!channel&gt;`" in again and "<!channel>" not in again
    removed = await command_answer(slack_sender, "vocabulary remove <!channel>, Anthropic, Nope")
    assert "Removed `Anthropic`, `&lt;!channel&gt;`" in removed and "Not in it: `Nope`" in removed
    listed = await command_answer(slack_sender, "vocabulary list")
    assert "(2 terms, sent to Soniox with each new file): `Kubernetes`, `Priya Raman`" in listed
    said = await command_answer(slack_sender, "context Weekly platform stand-up with Priya & Sam")
    assert "now “Weekly platform stand-up with Priya &amp; Sam”" in said

    # Over Soniox's limit (10,000 characters of vocabulary and context together): refused,
    # and nothing changes.
    refused = await command_answer(slack_sender, "context " + "word " * 2100)
    assert "takes at most 10,000" in refused and "Nothing was changed" in refused
    status = await command_answer(slack_sender, "status")
    assert "Vocabulary for new work: `Kubernetes`, `Priya Raman`" in status
    assert "Context for new work: “Weekly platform stand-up with Priya &amp; Sam”" in status

    event = await share_file(slack_sender, name="standup.wav")
    await delivered(fake_slack, event)
    (body,) = fake_soniox.create_bodies
    assert body["context"] == {
        "terms": ["Kubernetes", "Priya Raman"],
        "text": "Weekly platform stand-up with Priya & Sam",
    }
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, CHANNEL, 1)
    recorded = await bot.store.transcription_options_of([batch.id])
    assert recorded[batch.id] == TranscriptionOptions(
        terms=("Kubernetes", "Priya Raman"), context="Weekly platform stand-up with Priya & Sam"
    )

    assert "vocabulary is now empty" in await command_answer(slack_sender, "vocabulary clear")
    assert "now no context" in await command_answer(slack_sender, "context clear")
    later = await share_file(slack_sender, name="later.wav")
    await fake_slack.wait_for(lambda: final_replies(fake_slack, later))
    assert "context" not in fake_soniox.create_bodies[-1]


async def test_a_one_way_translation_follows_each_turn(
    slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    unknown = await command_answer(slack_sender, "translate xx")
    assert "`xx` is not a language code Soniox translates" in unknown and "`de`" in unknown
    assert "two different languages" in await command_answer(slack_sender, "translate en:EN")
    assert "not translated" in await command_answer(slack_sender, "translate")
    chosen = await command_answer(slack_sender, "translate DE")
    assert "now translated into *German* (`de`)" in chosen
    assert "Translation for new work: into German" in await command_answer(slack_sender, "status")

    fake_soniox.set_transcript(
        "call.wav",
        [("1", "Hello everyone, let us start."), ("2", "Thanks, that is clear.")],
        ["en", "en"],
        translations=["Hallo zusammen, fangen wir an.", "Danke, das ist klar."],
    )
    event = await share_file(slack_sender, name="call.wav")
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    body = fake_soniox.create_bodies[-1]
    assert body["translation"] == {"type": "one_way", "target_language": "de"}
    text = shown(reply)
    assert (
        "*Speaker 1* [00:00]  Hello everyone, let us start.\n&gt; German: Hallo zusammen, "
        "fangen wir an."
    ) in text
    assert "Thanks, that is clear.\n&gt; German: Danke, das ist klar." in text
    # The translation is not a language spoken.
    assert "Language: English" in str(reply["blocks"])
    assert "Hallo zusammen" in reply["text"], "the notification text has it too"

    assert "now not translated" in await command_answer(slack_sender, "translate off")
    later = await share_file(slack_sender, name="later.wav")
    await fake_slack.wait_for(lambda: final_replies(fake_slack, later))
    assert "translation" not in fake_soniox.create_bodies[-1]


async def test_a_two_way_translation_puts_each_turn_into_the_other_language(
    slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    chosen = await command_answer(slack_sender, "translate en:es")
    assert "translated between *English* and *Spanish* (`en:es`)" in chosen
    fake_soniox.set_transcript(
        "bilingual.wav",
        [("1", "Good morning, how are you?"), ("2", "Muy bien, gracias.")],
        ["en", "es"],
        translations=["Buenos días, ¿cómo estás?", "Very well, thank you."],
    )
    # A long conversation goes into the attached file, translations and all.
    long_turns = [("1", "We went through the quarterly numbers. " * 60), ("2", "Vale. " * 40)]
    fake_soniox.set_transcript(
        "long.wav",
        long_turns,
        ["en", "es"],
        translations=["Revisamos las cifras. " * 60, "Okay. " * 40],
    )
    event = fake_slack.message_event(
        files=[
            fake_slack.add_file(name="bilingual.wav", content=silent_wav()),
            fake_slack.add_file(name="long.wav", content=silent_wav()),
        ]
    )
    assert (await slack_sender.event(event)).status_code == 200
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    assert fake_soniox.create_bodies[-1]["translation"] == {
        "type": "two_way",
        "language_a": "en",
        "language_b": "es",
    }
    text = shown(reply)
    assert "Good morning, how are you?\n&gt; Spanish: Buenos días, ¿cómo estás?" in text
    assert "Muy bien, gracias.\n&gt; English: Very well, thank you." in text
    (upload,) = fake_slack.uploads
    content = upload["content"].decode()
    assert content.startswith("Speaker 1 [00:00]: We went through the quarterly numbers.")
    assert "\n    → Spanish: Revisamos las cifras." in content
    assert "\nSpeaker 2 [" in content and "\n    → English: Okay." in content


async def test_doubtful_words_are_marked_in_the_message_and_plain_in_the_file(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    assert "*not marked*" in await command_answer(slack_sender, "confidence")
    assert "takes `on` or `off`" in await command_answer(slack_sender, "confidence maybe")
    marked = await command_answer(slack_sender, "confidence on")
    assert "now *marked*" in marked and "less than 50% sure of" in marked
    assert "Doubtful words are marked in new work." in await command_answer(slack_sender, "status")

    fake_soniox.set_transcript(
        "short.wav",
        [("1", "Deploy Kubernetes on Friday, said Priya."), ("2", "Fine <by> me.")],
        unsure=["Kubernetes", "Priya", "<by>"],
    )
    sentence = "The Kubernetes rollout went fine this week. "
    fake_soniox.set_transcript("long.wav", [("1", sentence * 80)], unsure=["Kubernetes"])
    event = fake_slack.message_event(
        files=[
            fake_slack.add_file(name="short.wav", content=silent_wav()),
            fake_slack.add_file(name="long.wav", content=silent_wav()),
        ]
    )
    assert (await slack_sender.event(event)).status_code == 200
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    text = shown(reply)
    # Italics around the word, its punctuation upright; outside text escaped all the same.
    assert "Deploy _Kubernetes_ on Friday, said _Priya_." in text
    assert "Fine &lt;_by_&gt; me." in text
    (upload,) = fake_slack.uploads
    content = upload["content"].decode()
    assert "The Kubernetes rollout" in content and "_" not in content
    assert "_" not in reply["text"], "the notification text is plain too"

    assert "now *not marked*" in await command_answer(slack_sender, "confidence off")
    later = fake_slack.message_event(files=[fake_slack.add_file(name="short.wav")])
    assert (await slack_sender.event(later)).status_code == 200
    await delivered(fake_slack, later)
    (plain,) = final_replies(fake_slack, later)
    assert "Deploy Kubernetes on Friday, said Priya." in shown(plain)
    batches = await bot.store.finished_batches(FAKE_WORKSPACE, CHANNEL, 2)
    options = await bot.store.transcription_options_of([batch.id for batch in batches])
    assert sorted(option.mark_doubtful for option in options.values()) == [False, True]


async def test_a_soket_channel_is_told_plainly_and_nothing_changes(
    bot: Runtime, slack_sender: SlackSender
) -> None:
    await command_answer(slack_sender, "provider soket")
    before = await bot.store.channel_settings(FAKE_WORKSPACE, CHANNEL)
    switch = "Soniox does: `/transcribe provider soniox` switches this channel to it."
    for command, feature in [
        ("vocabulary add Kubernetes", "a vocabulary"),
        ("vocabulary", "a vocabulary"),
        ("context Weekly stand-up", "a context"),
        ("translate de", "translation"),
        ("confidence on", "marking doubtful words"),
    ]:
        answer = await command_answer(slack_sender, command)
        assert answer == (
            f"Soket.ai (this channel's provider) does not support {feature}, so nothing was "
            f"changed. {switch}"
        )
    assert (
        await bot.store.channel_settings(FAKE_WORKSPACE, CHANNEL)
        == before
        == ChannelSettings(channel_id=CHANNEL, provider="soket")
    )
    assert "Vocabulary" not in await command_answer(slack_sender, "status")
