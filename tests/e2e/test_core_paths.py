"""The core upload path under the conditions a real workspace produces: restarts, long
transcripts, Slack Connect stubs, oversized files, missing scopes, redelivered events."""

from __future__ import annotations

from typing import Any

from bot.app import Runtime, running_bot
from storage.models import BatchState
from storage.sqlite import SQLiteStore
from tests.conftest import SettingsFactory, SlackSender, final_replies, on_both_backends
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

bot_replies = final_replies


@on_both_backends
async def test_restart_resumes_work_in_flight_without_repeating_it(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    settings = make_settings()
    fake_soniox.polls_until_complete = 10**6  # stays "processing" while the first bot runs
    file = fake_slack.add_file(name="interview.wav", content=silent_wav())
    event = fake_slack.message_event(files=[file])

    async with running_bot(settings, host="127.0.0.1") as first:
        sender = SlackSender(fake_slack, first)
        assert (await sender.event(event)).status_code == 200
        await fake_soniox.wait_for(lambda: fake_soniox.create_bodies)
    assert bot_replies(fake_slack, event) == []

    fake_soniox.polls_until_complete = 0
    async with running_bot(settings, host="127.0.0.1"):
        await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))
        await fake_soniox.wait_for(lambda: fake_soniox.deleted_files)

    assert len(bot_replies(fake_slack, event)) == 1
    assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 1, "uploaded once"
    assert len(fake_soniox.create_bodies) == 1, "the transcription was created once"
    assert len(fake_slack.downloads) == 1, "the file was downloaded once"


async def test_reply_posted_before_a_crash_is_not_posted_again(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    await slack_sender.event(event)
    await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))
    (batch,) = [b for b in await _all_batches(bot) if b.message_ts == event["ts"]]
    await bot.engine.run_cycle()
    assert (await bot.store.get_batch(batch.id)).state is BatchState.DELIVERED  # type: ignore[union-attr]

    # As if the process died after chat.postMessage but before recording it.
    await _as_left_by_a_crash_while_delivering(bot, batch.id)
    await bot.engine.run_cycle()

    assert len(bot_replies(fake_slack, event)) == 1
    assert fake_slack.api_calls("conversations.replies"), "the thread was checked"
    after = await bot.store.get_batch(batch.id)
    assert after is not None and after.state is BatchState.DELIVERED


async def test_long_transcript_is_uploaded_as_a_text_file_with_a_preview(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox, slack_sender: SlackSender
) -> None:
    sentence = "We went through the quarterly numbers line by line. "
    fake_soniox.set_transcript("all-hands.mp3", [("1", sentence * 80), ("2", sentence * 20)])
    file = fake_slack.add_file(
        name="all-hands.mp3", mimetype="audio/mpeg", filetype="mp3", content=silent_wav()
    )
    event = fake_slack.message_event(files=[file])

    await slack_sender.event(event)
    await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))

    (upload,) = fake_slack.uploads
    assert upload["filename"] == "all-hands-transcript.txt"
    assert upload["thread_ts"] == event["ts"]
    content = upload["content"].decode()
    assert content.startswith("Speaker 1 [00:00]: We went through")
    assert content.count("quarterly numbers") == 100
    (reply,) = bot_replies(fake_slack, event)
    assert "all-hands-transcript.txt" in str(reply["blocks"])
    assert len(reply["text"]) < 3000


async def test_without_files_write_a_long_transcript_is_posted_at_once_with_the_reason(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox, slack_sender: SlackSender
) -> None:
    fake_slack.scopes.remove("files:write")
    sentence = "We went through the quarterly numbers line by line. "
    fake_soniox.set_transcript("all-hands.mp3", [("1", sentence * 100)])
    file = fake_slack.add_file(
        name="all-hands.mp3", mimetype="audio/mpeg", filetype="mp3", content=silent_wav()
    )
    event = fake_slack.message_event(files=[file])

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))

    assert fake_slack.uploads == []
    assert "We went through the quarterly numbers" in str(reply["blocks"]), "the preview"
    assert "`files:write` scope is missing" in str(reply["blocks"][-1])
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", limit=1)
    assert batch.state is BatchState.DELIVERED


async def test_slack_connect_stub_is_resolved_with_files_info(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    stub = fake_slack.add_file(name="partner-call.wav", content=silent_wav(), stub=True)
    assert stub["file_access"] == "check_file_info"
    event = fake_slack.message_event(files=[stub])

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))

    assert "Hello from partner-call.wav." in reply["text"]
    assert fake_slack.api_args("files.info")[0]["file"] == stub["id"]


async def test_file_over_the_size_limit_is_refused_before_any_download(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    async with running_bot(make_settings(max_file_mb=1), host="127.0.0.1") as runtime:
        big = fake_slack.add_file(
            name="webinar.mp4", mimetype="video/mp4", filetype="mp4", size=3 * 1024 * 1024
        )
        event = fake_slack.message_event(files=[big])
        await SlackSender(fake_slack, runtime).event(event)
        (reply,) = await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))
        await fake_slack.wait_for(
            lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["warning"]
        )

    assert "webinar.mp4" in reply["text"]
    assert "limit of this app is 1 MB" in reply["text"]
    assert fake_slack.downloads == []
    assert not fake_soniox.requests_to(r"^/v1/files$")


async def test_sign_in_page_instead_of_the_file_explains_the_missing_scope(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox, slack_sender: SlackSender
) -> None:
    fake_slack.scopes.remove("files:read")
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))

    assert "files:read" in reply["text"]
    assert "reinstall" in reply["text"]
    assert not fake_soniox.requests_to(r"^/v1/files$"), "an HTML page never goes to the provider"


@on_both_backends
async def test_redelivered_event_is_answered_once(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox, slack_sender: SlackSender
) -> None:
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])

    first = await slack_sender.event(event)
    retry = await slack_sender.event(
        event, **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    )
    assert (first.status_code, retry.status_code) == (200, 200)
    await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))
    await bot.engine.run_cycle()

    assert len(bot_replies(fake_slack, event)) == 1
    assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 1


@on_both_backends
async def test_several_files_in_one_message_make_one_reply(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    files = [
        fake_slack.add_file(name="part-1.wav", content=silent_wav()),
        fake_slack.add_file(
            name="slides.pdf", mimetype="application/pdf", filetype="pdf", content=b"%PDF"
        ),
        fake_slack.add_file(
            name="part-2.ogg", mimetype="audio/ogg", filetype="ogg", content=silent_wav()
        ),
    ]
    event = fake_slack.message_event(files=files)

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))

    assert "Hello from part-1.wav." in reply["text"]
    assert "Hello from part-2.ogg." in reply["text"]
    assert "slides.pdf" not in reply["text"]


@on_both_backends
async def test_provider_failure_is_reported_in_plain_words(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    files = [
        fake_slack.add_file(name="good.wav", content=silent_wav()),
        fake_slack.add_file(name="broken.wav", content=b"CORRUPT" + b"\0" * 64),
    ]
    event = fake_slack.message_event(files=files)

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: bot_replies(fake_slack, event))
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["warning"]
    )

    assert "Hello from good.wav." in reply["text"]
    assert "broken.wav: Soniox could not transcribe this file" in reply["text"]
    assert "Traceback" not in reply["text"]


async def _all_batches(runtime: Runtime) -> list[Any]:
    return [
        *await runtime.store.running_batches(FAKE_WORKSPACE, "C0GENERAL"),
        *await runtime.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 100),
    ]


async def _as_left_by_a_crash_while_delivering(runtime: Runtime, batch_id: str) -> None:
    """Put a delivered batch back to ``delivering``. Only a crash leaves a batch there with its
    reply in the thread, and no store verb moves a batch backwards: this writes the state into
    the SQLite database the bot runs on."""
    store = runtime.store
    assert isinstance(store, SQLiteStore)
    async with store._database.transaction() as db:
        await db.execute(
            "UPDATE batches SET state = ? WHERE id = ?", (BatchState.DELIVERING.value, batch_id)
        )
