"""Text from outside never acts as markup in Slack.

File names, transcripts, provider messages and command arguments here are full of Slack control
sequences (``<!channel>``, ``<@U…>``, ``<#C…>``, disguised links). Each test drives some kinds of
message the bot sends, then reads every field the fake Slack received (Web API arguments, blocks,
upload names and titles, ``response_url`` answers): the only control sequences allowed are the
ones the bot means, a mention of the person who asked and links to what they gave or to Slack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from bot.app import Runtime, running_bot
from storage.models import ChannelSettings
from tests.conftest import SettingsFactory, SlackSender, final_replies
from tests.fakes.slack import FORM_CONTENT_TYPE, FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

ASKER = "U0ALICE"
HOSTILE = (
    "<!channel> <!here> <!everyone> <@U0EVIL> <#C0EVIL> <!subteam^S0EVIL> "
    "<https://evil.example/login|Quarterly report> & <https://evil.example>"
)
HOSTILE_NAME = "<!channel> <@U0EVIL> <https://evil.example|minutes.pdf>.wav"

_SEQUENCE = re.compile(r"<[^<>]*>?")
_LINK = re.compile(r"<(https?://[^\s<>|]+)\|[^<>]*>")


def strings_sent_to_slack(fake: FakeSlack) -> Iterator[tuple[str, str]]:
    """``(path, text)`` for every string the bot sent to Slack: Web API arguments, with the ones
    sent as JSON (``blocks``, ``files``) decoded, and ``response_url`` answers. What went to an
    upload URL is a file's content, which Slack shows as a file and never parses."""
    for request in fake.requests:
        if request.path.startswith(("/api/", "/response/")):
            yield from _strings(request.path, request.query)
            yield from _strings(request.path, request.body)


def _strings(path: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(path, item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(path, item)
    elif isinstance(value, str):
        if value.strip()[:1] in ("[", "{"):
            try:
                decoded = json.loads(value)
            except ValueError:
                pass
            else:
                yield from _strings(path, decoded)
                return
        yield path, value


def unintended_sequences(fake: FakeSlack, links: frozenset[str] = frozenset()) -> list[str]:
    """Control sequences Slack would act on that the bot did not mean: anything but a mention of
    the asker and a link to Slack or to one of ``links`` (those given to ``/transcribe``)."""
    given = {unquote(link) for link in links}
    found: list[str] = []
    for path, text in strings_sent_to_slack(fake):
        for match in _SEQUENCE.finditer(text):
            sequence = match.group()
            if sequence == f"<@{ASKER}>":
                continue
            link = _LINK.fullmatch(sequence)
            if link is not None:
                address = unquote(link.group(1).replace("&amp;", "&"))
                host = urlsplit(address).hostname or ""
                if address in given or host == "127.0.0.1" or host.endswith(".slack.com"):
                    continue
            found.append(f"{path}: {sequence}")
    return found


async def answer(sender: SlackSender, text: str) -> str:
    """``/transcribe text``, signed as Slack sends it; the ephemeral answer's text."""
    fake = sender.fake
    form = fake.slash_command(text, user=ASKER)
    body = urlencode(form)
    ack = await sender.post(body, fake.signed_headers(body, content_type=FORM_CONTENT_TYPE))
    assert ack.status_code == 200, ack.text
    response_id = form["response_url"].rsplit("/", 1)[1]
    found: dict[str, Any] = await fake.wait_for(
        lambda: next((r for r in fake.responses if r["response_id"] == response_id), None)
    )
    return str(found["text"])


def hostile_turns(repeat: int = 1) -> list[tuple[str, str]]:
    return [("1", f"Please read {HOSTILE} now. " * repeat), ("2", f"Sure: {HOSTILE}")]


# -- thread replies ------------------------------------------------------------------------------


async def test_transcript_replies_and_their_attachments_carry_no_control_sequence(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    video = "<!here> <#C0EVIL> <https://evil.example|demo>.mp4"
    fake_soniox.set_transcript(HOSTILE_NAME, hostile_turns())
    fake_soniox.set_transcript(video, hostile_turns(repeat=40))  # long: attached as files
    files = [
        fake_slack.add_file(name=HOSTILE_NAME, content=silent_wav()),
        fake_slack.add_file(name=video, mimetype="video/mp4", filetype="mp4", content=silent_wav()),
    ]
    event = fake_slack.message_event(files=files, text=HOSTILE, user=ASKER)

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    assert unintended_sequences(fake_slack) == []
    assert "Please read" in reply["text"] and "Please read" in str(reply["blocks"])
    titles = sorted(upload["title"] for upload in fake_slack.uploads)
    shown = "\u2039!here\u203a \u2039#C0EVIL\u203a \u2039https://evil.example|demo\u203a.mp4"
    assert titles == [f"Subtitles for {shown}", f"Transcript of {shown}"]


async def test_failure_replies_and_retry_answers_carry_no_control_sequence(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.inject(
        r"^/v1/transcriptions$",
        method="POST",
        status=400,
        body={
            "status_code": 400,
            "error_type": "invalid_request",
            "message": HOSTILE,
            "validation_errors": [],
            "request_id": "r-1",
            "more_info": "",
        },
    )
    event = fake_slack.message_event(
        files=[fake_slack.add_file(name=HOSTILE_NAME, content=silent_wav())], user=ASKER
    )

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
    retried = await answer(slack_sender, "retry")

    assert "Soniox could not accept this file" in reply["text"]
    assert "evil.example" in reply["text"], "the provider's words are shown, as text"
    assert "Resubmitted 1 file" in retried and "evil.example" in retried
    await fake_slack.wait_for(lambda: len(final_replies(fake_slack, event)) == 2)
    assert unintended_sequences(fake_slack) == []


async def test_progress_status_and_cancel_carry_no_control_sequence(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**6
    async with running_bot(make_settings(progress_after_seconds=0), host="127.0.0.1") as runtime:
        sender = SlackSender(fake_slack, runtime)
        event = fake_slack.message_event(
            files=[fake_slack.add_file(name=HOSTILE_NAME, content=silent_wav())], user=ASKER
        )
        await sender.event(event)
        (progress,) = await fake_slack.wait_for(
            lambda: fake_slack.replies_in("C0GENERAL", event["ts"])
        )
        shown = str(progress["text"])  # before the cancel changes it
        running = await answer(sender, "status")
        cancelled = await answer(sender, "cancel")
        await fake_slack.wait_for(lambda: fake_slack.message_edits)
        finished = await answer(sender, "status")

    assert "Transcribing *" in shown and "evil.example" in shown
    assert "evil.example" in running and f"<@{ASKER}>" in running
    assert "Cancelled `b-" in cancelled and "evil.example" in cancelled
    assert "cancelled" in finished and "evil.example" in finished
    assert "cancelled" in fake_slack.message_edits[-1]["text"]
    assert unintended_sequences(fake_slack) == []


# -- commands, the shortcut and mentions ---------------------------------------------------------


async def test_command_answers_carry_no_control_sequence_from_what_was_typed(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    answers = [
        await answer(slack_sender, "<!channel> please"),
        await answer(slack_sender, "<@U0EVIL>"),
        await answer(slack_sender, "provider <!here>"),
        await answer(slack_sender, "provider soniox <!here>"),
        await answer(slack_sender, "language <!channel>,<#C0EVIL>"),
        await answer(slack_sender, "language en <https://evil.example|en>"),
        await answer(slack_sender, "auto <!everyone>"),
        await answer(slack_sender, "retry <!subteam^S0EVIL>"),
        await answer(slack_sender, "cancel <https://evil.example|b-1a2b3c4d5e6f>"),
        await answer(slack_sender, "https://media.example/a.mp3 <!channel>"),
        await answer(slack_sender, "provider <soniox>"),
        await answer(slack_sender, "Q&A"),
        await answer(slack_sender, "cancel &lt;b-1a2b3c4d5e6f&gt;"),
    ]

    # What was typed is shown once, as typed: Slack's own encoding of it is undone first.
    assert "I don't know the subcommand `&lt;!channel&gt;`" in answers[0]
    assert "no provider called `&lt;!here&gt;`" in answers[2]
    assert "`&lt;!channel&gt;`, `&lt;#c0evil&gt;` are not ISO 639-1" in answers[4]
    assert "`&lt;!subteam^S0EVIL&gt;` is not a batch id" in answers[7]
    assert "There is no provider called `&lt;soniox&gt;`" in answers[10]
    assert "I don't know the subcommand `Q&amp;A`" in answers[11]
    assert "`&amp;lt;b-1a2b3c4d5e6f&amp;gt;` is not a batch id" in answers[12]
    assert not [text for text in answers[:12] if "&amp;lt;" in text or "&amp;amp;" in text]
    assert unintended_sequences(fake_slack) == []


async def test_link_command_message_shows_links_without_breaking_out_of_them(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    links = [
        # A name that is a disguised link once decoded, and a query with Slack's link separator.
        "https://media.example/%3C!channel%3E%3Chttps:%2F%2Fevil.example%7Cok%3E.mp3",
        "https://media.example/talk.mp3?from=|https://evil.example/|<!here>",
    ]

    started = await answer(slack_sender, " ".join(links))

    assert "Started `b-" in started
    (message,) = [m for m in fake_slack.messages if m.get("thread_ts") is None]
    assert message["text"].startswith(f"Transcribing 2 links for <@{ASKER}>")
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", message["ts"])) == ["white_check_mark"]
    )
    assert unintended_sequences(fake_slack, frozenset(links)) == []


async def test_shortcut_and_mention_notes_carry_no_control_sequence(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    await bot.store.save_channel_settings(
        FAKE_WORKSPACE, ChannelSettings(channel_id="C0GENERAL", auto=False), bot.clock()
    )
    parent = fake_slack.message_event(
        files=[fake_slack.add_file(name=HOSTILE_NAME, content=silent_wav())],
        text=HOSTILE,
        user=ASKER,
    )
    await slack_sender.event(parent)
    plain = fake_slack.message_event(text=HOSTILE, subtype=None, user=ASKER)
    await slack_sender.event(plain)

    payload = fake_slack.message_shortcut("C0GENERAL", plain["ts"], user=ASKER)
    body = fake_slack.interactive_body(payload)
    await slack_sender.post(body, fake_slack.signed_headers(body, content_type=FORM_CONTENT_TYPE))
    await fake_slack.wait_for(lambda: fake_slack.responses)
    for words in (f"transcribe {HOSTILE}", "transcribe"):
        mention = fake_slack.app_mention_event(
            fake_slack.mention(words), thread_ts=parent["ts"], user=ASKER
        )
        await slack_sender.event(mention)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, parent))

    notes = [m["text"] for m in fake_slack.messages if m.get("thread_ts") == parent["ts"]]
    assert any("mention me" in note for note in notes), "the help for an unclear mention"
    assert "no audio, video or audio link" in fake_slack.responses[0]["text"]
    assert "evil.example" in reply["text"]
    assert unintended_sequences(fake_slack) == []
