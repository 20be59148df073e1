"""``/transcribe`` and every subcommand, sent as Slack sends them (signed form posts), answered
through the ``response_url`` or in a thread of the fake Slack."""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.app import Runtime, running_bot
from storage.models import BatchState, ChannelSettings
from tests.conftest import SettingsFactory, SlackSender, on_both_backends
from tests.fakes.slack import FORM_CONTENT_TYPE, FakeSlack, silent_wav
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

SUBCOMMANDS = (
    "help",
    "status",
    "provider",
    "auto",
    "language",
    "vocabulary",
    "context",
    "translate",
    "confidence",
    "retry",
    "cancel",
)


async def send_command(
    sender: SlackSender, text: str, **fields: Any
) -> tuple[httpx.Response, dict[str, Any]]:
    """Send ``/transcribe text`` signed, as Slack does; the ack and the ephemeral answer."""
    fake = sender.fake
    form = fake.slash_command(text, **fields)
    body = urlencode(form)
    ack = await sender.post(body, fake.signed_headers(body, content_type=FORM_CONTENT_TYPE))
    assert ack.status_code == 200, ack.text
    response_id = form["response_url"].rsplit("/", 1)[1]
    answer: dict[str, Any] = await fake.wait_for(
        lambda: next((r for r in fake.responses if r["response_id"] == response_id), None)
    )
    assert answer["response_type"] == "ephemeral"
    return ack, answer


async def command_answer(sender: SlackSender, text: str, **fields: Any) -> str:
    _, answer = await send_command(sender, text, **fields)
    return str(answer["text"])


def thread_replies(fake: FakeSlack, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    """The app's replies in a thread that carry a transcript or a failure."""
    return [
        m
        for m in fake.messages
        if m["channel"] == channel
        and m.get("thread_ts") == thread_ts
        and ("Hello from" in m["text"] or "transcribe" in m["text"].lower())
    ]


async def share_file(
    sender: SlackSender, *, name: str = "memo.wav", channel: str = "C0GENERAL", **kw: Any
) -> dict[str, Any]:
    fake = sender.fake
    event = fake.message_event(
        files=[fake.add_file(name=name, content=kw.pop("content", silent_wav()), **kw)],
        channel=channel,
    )
    assert (await sender.event(event)).status_code == 200
    return event


# -- help and unknown ----------------------------------------------------------------------------


async def test_help_lists_every_subcommand_with_an_example(slack_sender: SlackSender) -> None:
    ack, answer = await send_command(slack_sender, "help")

    assert ack.text == ""  # the answer comes through the response_url
    for subcommand in SUBCOMMANDS:
        assert f"/transcribe {subcommand}" in answer["text"]
    assert "/transcribe https://" in answer["text"]
    assert "Transcribe" in answer["text"] and "@threadscribe transcribe" in answer["text"]
    assert await command_answer(slack_sender, "") == answer["text"]


async def test_unknown_subcommand_is_named_and_help_follows(
    slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    text = await command_answer(slack_sender, "transcribble now")

    assert "`transcribble`" in text
    assert "/transcribe status" in text
    assert fake_slack.messages == []


async def test_unsigned_command_is_refused_and_changes_nothing(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    body = fake_slack.slash_command_body("auto off")
    forged = await slack_sender.post(
        body, fake_slack.signed_headers(body, secret="wrong", content_type=FORM_CONTENT_TYPE)
    )

    assert forged.status_code == 401
    assert (await bot.store.channel_settings(FAKE_WORKSPACE, "C0GENERAL")).auto is True
    assert fake_slack.responses == []


# -- status --------------------------------------------------------------------------------------


@on_both_backends
async def test_status_shows_running_and_finished_work_of_this_channel_only(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soket: FakeSoket
) -> None:
    done = await share_file(slack_sender, name="weekly.wav")
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", done["ts"])) == ["white_check_mark"]
    )
    # Soket says how long it expects to take: that is the estimate status shows.
    fake_soket.estimated_completion_seconds = 270
    await command_answer(slack_sender, "provider soket")
    running = await share_file(slack_sender, name="all-hands.mp4", mimetype="video/mp4")
    await share_file(slack_sender, name="elsewhere.wav", channel="C0OTHER")
    (batch,) = await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL")

    async def eta_known() -> bool:
        (job,) = await bot.store.jobs_of(batch.id)
        return job.provider_eta_at is not None

    for _ in range(200):  # the submission is committed just after the fake Soket answers it
        if await eta_known():
            break
        await asyncio.sleep(0.05)

    text = await command_answer(slack_sender, "status")

    running_part, finished_part = text.split("*Last 10 finished*")
    assert batch.id in running_part
    assert "*all-hands.mp4* (submitted)" in running_part
    assert "shared by <@U0ALICE>" in running_part
    assert re.search(r"started \d+ s ago", running_part)
    assert "Soket.ai expects it in about 4 min" in running_part
    assert "weekly.wav" in finished_part and "transcribed" in finished_part
    (finished,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)
    assert finished.reply_ts is not None
    # Slack's own link (chat.getPermalink), whose host is not always the team's subdomain.
    link = (
        "https://fake-org.enterprise.slack.com/archives/C0GENERAL/"
        f"p{finished.reply_ts.replace('.', '')}?thread_ts={done['ts']}&amp;cid=C0GENERAL"
    )
    assert f"<{link}|{finished.id}>" in finished_part
    assert "elsewhere.wav" not in text
    assert running["ts"] not in finished_part


async def test_status_of_a_quiet_channel(slack_sender: SlackSender) -> None:
    text = await command_answer(slack_sender, "status")
    assert "Nothing right now." in text and "Nothing yet." in text


# -- links ---------------------------------------------------------------------------------------


async def test_links_get_a_visible_message_and_the_transcripts_in_its_thread(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    links = ["https://media.example.com/calls/KickOff.mp3", "https://example.org/stream?id=7"]

    answer = await command_answer(slack_sender, " ".join(links))

    (parent,) = [m for m in fake_slack.messages if m.get("thread_ts") is None]
    assert parent["channel"] == "C0GENERAL"
    assert parent["text"].startswith("Transcribing 2 links for <@U0ALICE>")
    assert "Started `b-" in answer
    (reply,) = await fake_slack.wait_for(
        lambda: [
            m
            for m in thread_replies(fake_slack, "C0GENERAL", parent["ts"])
            if "Hello from stream" in m["text"]
        ]
    )
    assert "Hello from KickOff.mp3." in reply["text"]
    assert sorted(body["audio_url"] for body in fake_soniox.create_bodies) == sorted(links)
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", parent["ts"])) == ["white_check_mark"]
    )
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)
    assert (batch.source, batch.thread_ts, batch.message_ts) == (
        "command",
        parent["ts"],
        parent["ts"],
    )
    assert fake_slack.downloads == [], "links go to the provider, never through the bot"


async def test_too_many_or_malformed_links_are_refused(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    six = " ".join(f"https://media.example.com/{n}.mp3" for n in range(6))
    assert "at most 5" in await command_answer(slack_sender, six)
    mixed = await command_answer(slack_sender, "https://media.example.com/a.mp3 ftp://x/b.mp3")
    assert "`ftp://x/b.mp3` is not an http or https link" in mixed

    assert fake_slack.messages == []
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


async def test_links_in_a_channel_the_app_cannot_post_in_are_explained(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    fake_slack.inject(
        r"^/api/chat\.postMessage$", status=200, body={"ok": False, "error": "not_in_channel"}
    )

    text = await command_answer(slack_sender, "https://media.example.com/a.mp3")

    assert "/invite @threadscribe" in text
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


# -- provider ------------------------------------------------------------------------------------


@on_both_backends
async def test_provider_is_shown_set_and_used_for_new_uploads(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soket: FakeSoket
) -> None:
    fake_soket.estimated_completion_seconds = 0.1
    shown = await command_answer(slack_sender, "provider")
    assert "*Soniox* (the app's default)" in shown
    assert "`soket`" in shown and "`soniox`" in shown

    assert "now uses *Soket.ai*" in await command_answer(slack_sender, "provider soket")
    assert "*Soket.ai* (chosen for this channel)" in await command_answer(slack_sender, "provider")
    assert "no provider called `whisper`" in await command_answer(slack_sender, "provider whisper")

    event = await share_file(slack_sender, name="standup.wav")
    await fake_slack.wait_for(lambda: thread_replies(fake_slack, "C0GENERAL", event["ts"]))
    assert fake_soket.uploads, "the upload went to Soket"


async def test_a_provider_without_credentials_is_refused(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    async with running_bot(make_settings(soket_api_token=None), host="127.0.0.1") as runtime:
        sender = SlackSender(fake_slack, runtime)
        text = await command_answer(sender, "provider soket")
        shown = await command_answer(sender, "provider")
        settings = await runtime.store.channel_settings(FAKE_WORKSPACE, "C0GENERAL")
        # A channel that chose Soket while it was set up hears that it no longer is.
        await runtime.store.save_channel_settings(
            FAKE_WORKSPACE, ChannelSettings(channel_id="C0OTHER", provider="soket"), runtime.clock()
        )
        stale = await command_answer(sender, "provider", channel="C0OTHER")

    assert "Soket.ai is not set up on this app (SOKET_API_TOKEN is missing)" in text
    assert "Available: `soniox`." in text
    assert settings.provider is None
    assert "`soket`" not in shown
    assert "uses *Soket.ai* (chosen for this channel). It is not set up on this app any more" in (
        stale
    )


# -- auto ----------------------------------------------------------------------------------------


async def test_auto_off_leaves_uploads_and_links_alone_until_switched_back_on(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    assert "is *on*" in await command_answer(slack_sender, "auto")
    assert "is now *off*" in await command_answer(slack_sender, "auto off")

    upload = await share_file(slack_sender, name="ignored.wav")
    link = fake_slack.message_event(text="<https://media.example.com/ignored.mp3>", subtype=None)
    assert (await slack_sender.event(link)).status_code == 200
    await bot.engine.run_cycle()

    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []
    assert ("C0GENERAL", upload["ts"]) not in fake_slack.reactions
    assert fake_slack.downloads == [] and fake_soniox.create_bodies == []
    assert "is *off*" in await command_answer(slack_sender, "auto")
    assert "`auto` takes `on` or `off`" in await command_answer(slack_sender, "auto maybe")

    assert "is now *on*" in await command_answer(slack_sender, "auto on")
    again = await share_file(slack_sender, name="heard.wav")
    await fake_slack.wait_for(lambda: thread_replies(fake_slack, "C0GENERAL", again["ts"]))


# -- language ------------------------------------------------------------------------------------


async def test_language_hints_reach_the_provider(
    slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    assert "provider detects the language" in await command_answer(slack_sender, "language")
    set_text = await command_answer(slack_sender, "language EN, hi")
    assert "now `en`, `hi`" in set_text

    event = await share_file(slack_sender, name="bilingual.wav")
    await fake_slack.wait_for(lambda: thread_replies(fake_slack, "C0GENERAL", event["ts"]))

    assert fake_soniox.create_bodies[0]["language_hints"] == ["en", "hi"]
    bad = await command_answer(slack_sender, "language en,xx,english")
    assert "`xx`, `english` are not ISO 639-1 language codes" in bad
    assert "`en`, `hi`" in await command_answer(slack_sender, "language")
    assert "now off" in await command_answer(slack_sender, "language auto")


# -- retry ---------------------------------------------------------------------------------------


@on_both_backends
async def test_retry_resubmits_the_failed_file_and_the_new_batch_succeeds(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    assert "Nothing to retry" in await command_answer(slack_sender, "retry")
    fake_soniox.inject(
        r"^/v1/transcriptions$",
        method="POST",
        status=400,
        body={
            "status_code": 400,
            "error_type": "invalid_request",
            "message": "Audio format is not supported.",
            "validation_errors": [],
            "request_id": "r-1",
            "more_info": "",
        },
    )
    event = await share_file(slack_sender, name="flaky.wav")
    (failure,) = await fake_slack.wait_for(
        lambda: thread_replies(fake_slack, "C0GENERAL", event["ts"])
    )
    assert "Hello from" not in failure["text"]
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["warning"]
    )
    (failed,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)

    text = await command_answer(slack_sender, "retry")

    assert f"Resubmitted 1 file of `{failed.id}` as `b-" in text
    assert "flaky.wav" in text and "Soniox" in text
    replies = await fake_slack.wait_for(
        lambda: [
            m
            for m in thread_replies(fake_slack, "C0GENERAL", event["ts"])
            if "Hello from flaky.wav." in m["text"]
        ]
    )
    assert len(replies) == 1
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["white_check_mark"]
    )
    newest, oldest = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)
    assert oldest.id == failed.id
    assert (newest.source, newest.thread_ts, newest.state) == (
        "retry",
        failed.thread_ts,
        BatchState.DELIVERED,
    )
    assert len(fake_slack.downloads) == 2, "the file was fetched again for the new batch"
    # The failure has been dealt with: retrying again finds nothing.
    assert "Nothing to retry" in await command_answer(slack_sender, "retry")
    assert "has no failed files" in await command_answer(slack_sender, f"retry {newest.id}")


async def test_retry_and_cancel_refuse_a_batch_of_another_channel(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    event = await share_file(slack_sender, name="private.wav", channel="C0OTHER")
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0OTHER", event["ts"])) == ["white_check_mark"]
    )
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0OTHER", 10)

    assert f"no batch `{batch.id}` in this channel" in await command_answer(
        slack_sender, f"retry {batch.id}"
    )
    assert f"no batch `{batch.id}` in this channel" in await command_answer(
        slack_sender, f"cancel {batch.id}"
    )
    assert "is not a batch id" in await command_answer(slack_sender, "cancel 42")


# -- cancel --------------------------------------------------------------------------------------


@on_both_backends
async def test_cancel_stops_a_running_batch_and_nothing_is_posted(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    assert "Nothing is running" in await command_answer(slack_sender, "cancel")
    fake_soniox.polls_until_complete = 10**6
    event = await share_file(slack_sender, name="long-meeting.wav")
    await fake_soniox.wait_for(lambda: fake_soniox.create_bodies)
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["hourglass_flowing_sand"]
    )
    (batch,) = await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL")
    posted_before = len(fake_slack.messages)

    text = await command_answer(slack_sender, "cancel")

    assert f"Cancelled `{batch.id}` (*long-meeting.wav*)" in text
    await fake_slack.wait_for(lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == [])
    fake_soniox.polls_until_complete = 0
    await fake_soniox.complete_all()
    for _ in range(3):
        await bot.engine.run_cycle()
        await bot.engine.drain()

    assert len(fake_slack.messages) == posted_before
    assert not [m for m in fake_slack.messages if "Hello from" in m["text"]]
    assert fake_slack.message_edits == []
    cancelled = await bot.store.get_batch(batch.id)
    assert cancelled is not None and cancelled.state is BatchState.CANCELLED
    await fake_soniox.wait_for(lambda: fake_soniox.deleted_files)  # cleaned up at the provider
    again = await command_answer(slack_sender, f"cancel {batch.id}")
    assert "already finished (it was cancelled)" in again
    assert "was cancelled" in await command_answer(slack_sender, f"retry {batch.id}")


# -- Socket Mode -----------------------------------------------------------------------------------


async def test_command_over_socket_mode_is_acked_and_answered(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    settings = make_settings(slack_app_token=fake_slack.app_token, slack_signing_secret=None)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        payload = fake_slack.slash_command("auto off")
        envelope_id = await fake_slack.send_envelope(payload, type="slash_commands")
        ack = await fake_slack.wait_for_ack(envelope_id)
        (answer,) = await fake_slack.wait_for(lambda: fake_slack.responses)
        stored = await runtime.store.channel_settings(FAKE_WORKSPACE, "C0GENERAL")

    assert ack["envelope_id"] == envelope_id
    assert payload["response_url"].endswith(answer["response_id"])
    assert "now *off*" in answer["text"]
    assert stored.auto is False
