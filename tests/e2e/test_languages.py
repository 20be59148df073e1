"""Languages: Soniox identifies the languages spoken, the reply names them, and a channel can make
its language hints strict."""

from __future__ import annotations

from typing import Any

from bot.app import Runtime
from tests.conftest import SlackSender, final_replies
from tests.e2e.test_commands import command_answer, share_file
from tests.fakes.slack import FakeSlack
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE


def context_texts(reply: dict[str, Any]) -> list[str]:
    return [
        element["text"]
        for block in reply["blocks"]
        if block["type"] == "context"
        for element in block["elements"]
    ]


async def test_the_reply_names_the_languages_spoken(
    slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.set_transcript(
        "standup.wav",
        [("1", "Aaj ka kaam ho gaya, kal milte hain sab log."), ("2", "Thanks, see you.")],
        languages=["hi", "en"],
    )
    event = await share_file(slack_sender, name="standup.wav")
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    (body,) = fake_soniox.create_bodies
    assert body["enable_language_identification"] is True
    assert "language_hints_strict" not in body
    # Most spoken first, named as people say them, on one line of its own.
    assert context_texts(reply) == ["Languages: Hindi, English"]


async def test_strict_hints_reach_soniox_and_every_answer_shows_them(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    assert "add `strict`" in await command_answer(slack_sender, "help")
    assert "keeps to the languages you name" in await command_answer(
        slack_sender, "language strict"
    )
    set_text = await command_answer(slack_sender, "language en,HI strict")
    assert "now `en`, `hi`, strict: Soniox keeps to these languages" in set_text
    assert "`en`, `hi`, strict" in await command_answer(slack_sender, "language")
    status = await command_answer(slack_sender, "status")
    assert "Language hints for new work: `en`, `hi` (strict)" in status

    fake_soniox.set_transcript("meeting.wav", [("1", "Hola a todos, empezamos.")], ["es"])
    event = await share_file(slack_sender, name="meeting.wav")
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
    body = fake_soniox.create_bodies[-1]
    assert body["language_hints"] == ["en", "hi"]
    assert body["language_hints_strict"] is True
    # Held to the hints, Soniox labels the Spanish words with a hinted language.
    assert context_texts(reply) == ["Language: English"]
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 1)
    assert (batch.language_hints, batch.language_hints_strict) == (["en", "hi"], True)

    # `auto` clears the hints and their strictness: hints set later lean, they do not hold.
    assert "now off" in await command_answer(slack_sender, "language auto")
    assert "Language hints" not in await command_answer(slack_sender, "status")
    assert "leans towards these languages" in await command_answer(slack_sender, "language en")
    again = await share_file(slack_sender, name="later.wav")
    await fake_slack.wait_for(lambda: final_replies(fake_slack, again))
    assert fake_soniox.create_bodies[-1]["language_hints"] == ["en"]
    assert "language_hints_strict" not in fake_soniox.create_bodies[-1]
