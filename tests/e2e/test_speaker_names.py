"""Naming a transcript's speakers: the *Name speakers* button and its form, and
``@threadscribe speakers 1=@alice 2=@bob``, over signed requests; only members of the channel may,
and a form's answer must match the batch it was opened for."""

from __future__ import annotations

import json
from typing import Any

import httpx

from bot.app import Runtime
from storage.models import Batch
from tests.conftest import SlackSender, final_replies
from tests.e2e.test_commands import share_file
from tests.fakes.slack import FORM_CONTENT_TYPE, FakeSlack
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

SENTENCE = "We went through the quarterly numbers line by line. "


async def interact(sender: SlackSender, payload: dict[str, Any]) -> httpx.Response:
    """Send an interactivity payload, signed as Slack signs it."""
    fake = sender.fake
    body = fake.interactive_body(payload)
    return await sender.post(body, fake.signed_headers(body, content_type=FORM_CONTENT_TYPE))


async def transcribed(
    bot: Runtime,
    sender: SlackSender,
    *,
    name: str = "standup.wav",
    channel: str = "C0GENERAL",
    **file: Any,
) -> tuple[dict[str, Any], Batch]:
    """A shared file's reply, once posted, and its batch."""
    event = await share_file(sender, name=name, channel=channel, **file)
    (reply,) = await sender.fake.wait_for(lambda: final_replies(sender.fake, event))
    (batch,) = [
        b for b in await bot.store.finished_batches(FAKE_WORKSPACE, channel, 10) if b.reply_ts
    ]
    assert batch.reply_ts == reply["ts"]
    return reply, batch


async def open_form(
    sender: SlackSender, reply: dict[str, Any], *, user: str = "U0ALICE"
) -> dict[str, Any]:
    """Press *Name speakers* under ``reply``; the form Slack opened."""
    fake = sender.fake
    opened = len(fake.views)
    press = fake.block_action(reply["channel"], reply["ts"], "name_speakers", user=user)
    ack = await interact(sender, press)
    assert (ack.status_code, ack.text) == (200, "")
    views: list[dict[str, Any]] = await fake.wait_for(lambda: fake.views[opened:])
    return views[0]


def pickers(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {block["block_id"]: block for block in view["blocks"] if block["type"] == "input"}


async def renamed(fake: FakeSlack, reply: dict[str, Any]) -> dict[str, Any]:
    """The reply's message once ``chat.update`` edited it with names."""
    edits: list[dict[str, Any]] = await fake.wait_for(
        lambda: [
            edit
            for edit in fake.message_edits
            if edit["ts"] == reply["ts"] and "Speaker 1" not in str(edit["blocks"])
        ]
    )
    return edits[-1]


# -- the button and its form ---------------------------------------------------------------------


async def test_name_speakers_opens_a_form_with_a_picker_per_speaker(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    reply, batch = await transcribed(bot, slack_sender)
    (button,) = [block for block in reply["blocks"] if block["type"] == "actions"]
    assert button["elements"][0]["value"] == batch.id

    view = await open_form(slack_sender, reply)

    assert view["callback_id"] == "name_speakers" and view["user"] == "U0ALICE"
    assert json.loads(view["private_metadata"]) == {
        "batch": batch.id,
        "channel": "C0GENERAL",
        "thread": batch.thread_ts,
    }
    (first, second) = pickers(view).values()
    assert first["label"]["text"] == "Speaker 1" and second["label"]["text"] == "Speaker 2"
    assert first["element"]["type"] == "users_select" and "initial_user" not in first["element"]
    assert "Hello from standup.wav." in first["hint"]["text"], "what they said first"


async def test_saving_the_form_names_the_speakers_in_the_reply(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    reply, _ = await transcribed(bot, slack_sender)
    view = await open_form(slack_sender, reply)
    first, second = pickers(view)

    submitted = fake_slack.view_submission(view["id"], {first: "U0BOB", second: "U0ALICE"})
    ack = await interact(slack_sender, submitted)

    assert (ack.status_code, ack.text) == (200, ""), "an empty answer closes the form"
    edit = await renamed(fake_slack, reply)
    assert "*<@U0BOB>* [00:00]  Hello from standup.wav." in str(edit["blocks"])
    assert "*<@U0ALICE>* [00:00]  Thanks, that is clear." in str(edit["blocks"])
    assert "Bob [00:00]: Hello from standup.wav." in edit["text"], "names in the notification"
    assert [b["type"] for b in edit["blocks"]][-1] == "actions", "the button stays"
    assert len(fake_slack.message_edits) == 1 + sum(
        1 for e in fake_slack.message_edits if e["ts"] != reply["ts"]
    ), "the reply was edited once"
    # Pressed again, the form shows who they are now.
    again = pickers(await open_form(slack_sender, reply))
    assert again[first]["element"]["initial_user"] == "U0BOB"
    assert again[second]["element"]["initial_user"] == "U0ALICE"


async def test_saving_the_form_replaces_the_attached_transcript_and_subtitles(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.set_transcript("all-hands.mp4", [("1", SENTENCE * 80), ("2", SENTENCE * 20)])
    reply, batch = await transcribed(
        bot, slack_sender, name="all-hands.mp4", mimetype="video/mp4", filetype="mp4"
    )
    first = fake_slack.files_in_thread("C0GENERAL", batch.thread_ts)
    assert sorted(f["name"] for f in first) == [
        "all-hands-transcript.srt",
        "all-hands-transcript.txt",
    ]
    view = await open_form(slack_sender, reply)

    speaker_1, _ = pickers(view)
    await interact(slack_sender, fake_slack.view_submission(view["id"], {speaker_1: "U0ALICE"}))

    await fake_slack.wait_for(lambda: len(fake_slack.deleted_files) == 2)
    files = {f["name"]: f for f in fake_slack.files_in_thread("C0GENERAL", batch.thread_ts)}
    assert sorted(files) == ["all-hands-transcript.srt", "all-hands-transcript.txt"]
    assert sorted(fake_slack.deleted_files) == sorted(f["id"] for f in first)
    text = files["all-hands-transcript.txt"]["content"].decode()
    assert text.startswith("Alice [00:00]: We went through")
    assert "\nSpeaker 2 [" in text, "a speaker left unnamed keeps their number"
    assert "[Alice] We went through" in files["all-hands-transcript.srt"]["content"].decode()
    edit = await renamed(fake_slack, reply)
    assert "&gt;Alice [00:00]: We went through" in str(edit["blocks"]), "the preview"
    assert "all-hands-transcript.txt" in str(edit["blocks"])


# -- in words --------------------------------------------------------------------------------------


async def test_the_mention_form_names_the_speakers_of_the_threads_latest_transcript(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    reply, batch = await transcribed(bot, slack_sender)
    mention = fake_slack.app_mention_event(
        fake_slack.mention("speakers 1=<@U0CAROL> 2=<@U0DAVE>"), thread_ts=batch.thread_ts
    )

    assert (await slack_sender.event(mention)).status_code == 200

    edit = await renamed(fake_slack, reply)
    assert "*<@U0CAROL>* [00:00]" in str(edit["blocks"])
    assert "*<@U0DAVE>* [00:00]" in str(edit["blocks"])
    assert "Carol Clark [00:00]" in edit["text"], "no display name: the full name"
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", mention["ts"])) == ["white_check_mark"]
    )
    naming = await bot.store.speaker_naming(batch.id)
    assert naming is not None and list(naming.names.values()) == [{"1": "U0CAROL", "2": "U0DAVE"}]

    # Naming one speaker again keeps the other's name.
    await slack_sender.event(
        fake_slack.app_mention_event(
            fake_slack.mention("speakers 2=<@U0ALICE>"), thread_ts=batch.thread_ts
        )
    )
    await fake_slack.wait_for(
        lambda: "*<@U0ALICE>* [00:00]" in str(fake_slack.message(reply["channel"], reply["ts"]))
    )
    shown = str(fake_slack.message(reply["channel"], reply["ts"]))
    assert "*<@U0CAROL>* [00:00]" in shown and "U0DAVE" not in shown


async def test_the_mention_form_explains_unknown_speakers_and_what_it_cannot_read(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    _, batch = await transcribed(bot, slack_sender)
    thread = batch.thread_ts
    expected = {
        "speakers 3=<@U0CAROL>": "This transcript has no speaker 3; its speakers are 1 and 2.",
        "speakers 1=alice": "I could not read `1=alice`.",
        "speakers": "write `@threadscribe speakers 1=@alice 2=@bob`",
    }
    for said, answer in expected.items():
        await slack_sender.event(
            fake_slack.app_mention_event(fake_slack.mention(said), thread_ts=thread)
        )
        await fake_slack.wait_for(
            lambda answer=answer: [
                m for m in fake_slack.replies_in("C0GENERAL", thread) if answer in m["text"]
            ]
        )
    assert await bot.store.speaker_naming(batch.id) is None


# -- who may, and what is checked ----------------------------------------------------------------


async def test_only_members_of_the_channel_can_name_speakers(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    fake_slack.set_members("C0GENERAL", ["U0ALICE"])
    reply, batch = await transcribed(bot, slack_sender)

    press = fake_slack.block_action("C0GENERAL", reply["ts"], "name_speakers", user="U0MALLORY")
    assert (await interact(slack_sender, press)).status_code == 200
    (answer,) = await fake_slack.wait_for(lambda: fake_slack.responses)
    assert answer["response_type"] == "ephemeral"
    assert "Only members of this channel" in answer["text"]
    assert fake_slack.views == []

    mention = fake_slack.app_mention_event(
        fake_slack.mention("speakers 1=<@U0MALLORY>"), user="U0MALLORY", thread_ts=batch.thread_ts
    )
    await slack_sender.event(mention)
    await fake_slack.wait_for(lambda: any("Only members" in m["text"] for m in fake_slack.messages))

    view = await open_form(slack_sender, reply, user="U0ALICE")
    first = next(iter(pickers(view)))
    forged = fake_slack.view_submission(view["id"], {first: "U0MALLORY"}, user="U0MALLORY")
    ack = await interact(slack_sender, forged)
    assert ack.json() == {
        "response_action": "errors",
        "errors": {first: "Only members of the transcript's channel can name its speakers."},
    }
    assert await bot.store.speaker_naming(batch.id) is None
    assert [e for e in fake_slack.message_edits if e["ts"] == reply["ts"]] == []


async def test_a_form_answer_for_another_batch_or_other_speakers_is_refused(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.set_transcript("solo.wav", [("1", "Just me today.")])
    reply, batch = await transcribed(bot, slack_sender)
    _, elsewhere = await transcribed(bot, slack_sender, name="other.wav", channel="C0OTHER")
    _, solo = await transcribed(bot, slack_sender, name="solo.wav", channel="C0THIRD")
    view = await open_form(slack_sender, reply)
    first, second = pickers(view)
    chosen = {first: "U0BOB", second: "U0ALICE"}

    def metadata(of: Batch, channel: str | None = None) -> str:
        return json.dumps(
            {"batch": of.id, "channel": channel or of.channel_id, "thread": of.thread_ts}
        )

    forgeries = {
        "another channel's batch": metadata(elsewhere, channel="C0GENERAL"),
        "an unknown batch": metadata(batch).replace(batch.id, "b-000000000000"),
        "not JSON": "b-" + batch.id,
        "a batch with other speakers": metadata(solo),
    }
    for what, forged in forgeries.items():
        ack = await interact(
            slack_sender, fake_slack.view_submission(view["id"], chosen, private_metadata=forged)
        )
        assert ack.status_code == 200, what
        assert ack.json()["response_action"] == "errors", what
        assert "does not match the transcript" in ack.json()["errors"][first], what
    # The batch of another channel whose members the person is not among, named consistently.
    fake_slack.set_members("C0OTHER", ["U0BOB"])
    ack = await interact(
        slack_sender,
        fake_slack.view_submission(view["id"], chosen, private_metadata=metadata(elsewhere)),
    )
    assert "Only members" in ack.json()["errors"][first]

    for each in (batch, elsewhere, solo):
        assert await bot.store.speaker_naming(each.id) is None
    assert fake_slack.message_edits == []


# -- text from outside ---------------------------------------------------------------------------


async def test_names_and_what_was_typed_are_escaped(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    fake_slack.add_person("U0EVIL", name="evil", display_name="<!channel> *boss* <https://x.io|y>")
    fake_slack.set_members("C0GENERAL", ["U0ALICE", "U0EVIL"])
    reply, batch = await transcribed(bot, slack_sender)
    thread = batch.thread_ts

    # Typing "@channel" after the number makes Slack send <!channel>.
    await slack_sender.event(
        fake_slack.app_mention_event(fake_slack.mention("speakers 1=<!channel>"), thread_ts=thread)
    )
    (answer,) = await fake_slack.wait_for(
        lambda: [m for m in fake_slack.messages if "could not read" in m["text"]]
    )
    assert "`1=&lt;!channel&gt;`" in answer["text"] and "<!channel>" not in answer["text"]

    view = await open_form(slack_sender, reply)
    first = next(iter(pickers(view)))
    forged = fake_slack.view_submission(
        view["id"], values={first: {"person": {"type": "users_select", "selected_user": "<!here>"}}}
    )
    assert "does not match" in (await interact(slack_sender, forged)).json()["errors"][first]

    await interact(slack_sender, fake_slack.view_submission(view["id"], {first: "U0EVIL"}))
    edit = await renamed(fake_slack, reply)
    assert "*<@U0EVIL>*" in str(edit["blocks"])
    assert "&lt;!channel&gt; *boss* &lt;https://x.io|y&gt; [00:00]" in edit["text"]
    assert "<!channel>" not in str(edit) and "<https://x.io" not in str(edit)


async def test_another_workspace_cannot_name_the_speakers_of_a_shared_channels_transcript(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    """Slack Connect: the channel is in a second workspace too; its people see the reply, but
    the transcript is the first workspace's."""
    reply, batch = await transcribed(bot, slack_sender)
    neighbour = fake_slack.add_workspace("T0NEIGHBOUR")

    press = fake_slack.block_action("C0GENERAL", reply["ts"], "name_speakers", user="U0ALICE")
    press["team"] = {"id": neighbour.team_id, "domain": neighbour.domain}
    press["user"]["team_id"] = neighbour.team_id
    assert (await interact(slack_sender, press)).status_code == 200
    (answer,) = await fake_slack.wait_for(lambda: fake_slack.responses)
    assert "can no longer be changed" in answer["text"]
    assert fake_slack.views == []

    mention = fake_slack.app_mention_event(
        fake_slack.mention("speakers 1=<@U0ALICE>"), thread_ts=batch.thread_ts
    )
    body = json.dumps(fake_slack.event_callback(mention, workspace=neighbour))
    assert (await slack_sender.post(body, fake_slack.signed_headers(body))).status_code == 200
    await fake_slack.wait_for(
        lambda: any("no transcript in this thread" in m["text"] for m in fake_slack.messages)
    )

    view = await open_form(slack_sender, reply, user="U0ALICE")
    first = next(iter(pickers(view)))
    forged = fake_slack.view_submission(view["id"], {first: "U0ALICE"}, user="U0ALICE")
    forged["team"] = {"id": neighbour.team_id, "domain": neighbour.domain}
    forged["user"]["team_id"] = neighbour.team_id
    ack = await interact(slack_sender, forged)
    assert ack.status_code == 200 and "errors" in ack.json()
    assert await bot.store.speaker_naming(batch.id) is None
