"""A running batch shows its progress in the thread, and that message becomes the reply."""

from __future__ import annotations

import asyncio

from bot.app import running_bot
from tests.conftest import ManualClock, SettingsFactory, SlackSender, cycles, final_replies
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE


async def test_progress_message_is_updated_then_becomes_the_reply(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**6
    settings = make_settings(progress_after_seconds=0)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        files = [
            fake_slack.add_file(name="a.wav", content=silent_wav()),
            fake_slack.add_file(name="b.wav", content=silent_wav()),
        ]
        event = fake_slack.message_event(files=files)
        await SlackSender(fake_slack, runtime).event(event)

        def thread() -> list[dict[str, object]]:
            return fake_slack.replies_in("C0GENERAL", event["ts"])

        (progress,) = await fake_slack.wait_for(thread)
        assert progress["text"] == ":hourglass_flowing_sand: Transcribing 2 files… 0 of 2 done"

        # One file finishes first: the same message says so.
        await fake_soniox.wait_for(lambda: len(fake_soniox.create_bodies) == 2)
        first = next(iter(fake_soniox.transcriptions))
        await fake_soniox.complete(first)
        await fake_slack.wait_for(lambda: "1 of 2 done" in str(thread()), timeout=15)

        fake_soniox.polls_until_complete = 0
        (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    assert reply["ts"] == progress["ts"], "the progress message became the reply"
    assert len(thread()) == 1, "no stale progress text left in the thread"
    assert "Hello from a.wav." in reply["text"] and "Hello from b.wav." in reply["text"]
    assert fake_slack.api_calls("chat.update")


async def test_long_video_transcript_comes_with_subtitles(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.set_transcript("demo.mp4", [("1", "This is the product demo. " * 150)])
    async with running_bot(make_settings(), host="127.0.0.1") as runtime:
        file = fake_slack.add_file(
            name="demo.mp4", mimetype="video/mp4", filetype="mp4", content=silent_wav()
        )
        event = fake_slack.message_event(files=[file])
        await SlackSender(fake_slack, runtime).event(event)
        await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    names = sorted(upload["filename"] for upload in fake_slack.uploads)
    assert names == ["demo-transcript.srt", "demo-transcript.txt"]
    srt = next(u for u in fake_slack.uploads if u["filename"].endswith(".srt"))["content"].decode()
    first_cue = srt.split("\n\n")[0].splitlines()
    assert first_cue[0] == "1"
    assert first_cue[1].startswith("00:00:00,000 --> 00:00:")
    assert first_cue[2].startswith("[Speaker 1] This is the product demo.")


async def test_cancelled_batch_progress_message_says_so_and_nothing_is_posted(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:

    fake_soniox.polls_until_complete = 10**6
    async with running_bot(make_settings(progress_after_seconds=0), host="127.0.0.1") as runtime:
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        (progress,) = await fake_slack.wait_for(
            lambda: fake_slack.replies_in("C0GENERAL", event["ts"])
        )
        await fake_soniox.wait_for(lambda: fake_soniox.create_bodies)
        batch_id = progress["metadata"]["event_payload"]["batch_id"]
        assert await runtime.store.cancel_batch(batch_id, runtime.clock())
        await fake_slack.wait_for(
            lambda: "cancelled" in fake_slack.replies_in("C0GENERAL", event["ts"])[0]["text"]
        )
        fake_soniox.polls_until_complete = 0
        await asyncio.sleep(0.6)  # several cycles: nothing more may appear

    (only,) = fake_slack.replies_in("C0GENERAL", event["ts"])
    assert "Transcription cancelled" in only["text"]
    assert final_replies(fake_slack, event) == [only]
    assert "Hello from" not in str(fake_slack.messages)


async def test_a_progress_message_that_failed_to_post_is_posted_once_later(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**9
    clock = ManualClock()
    settings = make_settings(poll_interval_seconds=3600)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        await asyncio.sleep(0.1)  # let the start-up cycle pass
        sender = SlackSender(fake_slack, runtime)
        events = [
            fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
            for _ in range(3)
        ]
        for event in events:
            await sender.event(event)
        await cycles(runtime, clock, 1, seconds=1)  # uploaded and submitted; too early to show
        fake_slack.inject(
            r"chat\.postMessage", status=200, body={"ok": False, "error": "internal_error"}
        )
        await cycles(runtime, clock, 3, seconds=10)
        shown = [fake_slack.replies_in("C0GENERAL", event["ts"]) for event in events]
        assert [len(thread) for thread in shown] == [1, 1, 1]
        assert len(fake_slack.api_calls("chat.postMessage")) == 4, "3 posts and the failed one"

        await fake_soniox.complete_all()
        await cycles(runtime, clock, 2, hours=1)
    for event, thread in zip(events, shown, strict=True):
        (reply,) = final_replies(fake_slack, event)
        assert reply["ts"] == thread[0]["ts"], "each progress message became its reply"


async def test_a_progress_message_posted_just_before_a_crash_is_not_posted_again(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**9
    clock = ManualClock()
    settings = make_settings(poll_interval_seconds=3600)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        await asyncio.sleep(0.1)
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await SlackSender(fake_slack, runtime).event(event)
        await cycles(runtime, clock, 2, seconds=10)
        (progress,) = fake_slack.replies_in("C0GENERAL", event["ts"])
        (batch,) = await runtime.store.running_batches(FAKE_WORKSPACE, "C0GENERAL")
        # As the database stands when the process dies after the post, before recording it.
        await runtime.store.mark_progress_pending([batch.id], clock())

        await cycles(runtime, clock, 2, seconds=10)
        assert fake_slack.replies_in("C0GENERAL", event["ts"]) == [progress]
        found = await runtime.store.get_batch(batch.id)
        assert found is not None and found.status_ts == progress["ts"]

        await fake_soniox.complete_all()
        await cycles(runtime, clock, 2, hours=1)
    (reply,) = final_replies(fake_slack, event)
    assert reply["ts"] == progress["ts"]
    assert len(fake_slack.api_calls("chat.postMessage")) == 1
