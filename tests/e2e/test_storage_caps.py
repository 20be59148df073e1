"""Soniox keeps at most so many files and bytes per account (1,000 and 10 GB by default): the bot
keeps its uploads within ``SONIOX_MAX_FILES`` and ``SONIOX_MAX_STORAGE_MB``, so a burst queues at
home instead of being refused by Soniox and retried for hours."""

from __future__ import annotations

from typing import Any

from bot.app import Runtime, running_bot
from storage.models import JobState
from tests.conftest import ManualClock, SettingsFactory, SlackSender, cycles, final_replies
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

MB = 1024 * 1024


async def share(fake: FakeSlack, runtime: Runtime, *names: str, seconds: float = 0.25) -> Any:
    files = [fake.add_file(name=name, content=silent_wav(seconds)) for name in names]
    event = fake.message_event(files=files)
    assert (await SlackSender(fake, runtime).event(event)).status_code == 200
    return event


async def test_a_burst_larger_than_the_file_cap_queues_and_every_file_is_transcribed_once(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.max_files = 2
    async with running_bot(make_settings(soniox_max_files=2), host="127.0.0.1") as runtime:
        # One message holds more files than the cap: its finished files must make room.
        events = [
            await share(fake_slack, runtime, "a1.wav", "a2.wav", "a3.wav", "a4.wav"),
            await share(fake_slack, runtime, "b.wav"),
            await share(fake_slack, runtime, "c.wav"),
        ]
        await fake_slack.wait_for(
            lambda: all(final_replies(fake_slack, event) for event in events), timeout=30
        )

    assert fake_soniox.storage_refusals == 0, "never refused by Soniox"
    assert fake_soniox.peak_files == 2
    assert len(fake_soniox.create_bodies) == 6, "each file once"
    for event in events:
        (reply,) = final_replies(fake_slack, event)
        assert reply["text"].count("Hello from") == len(event["files"])
    await fake_soniox.wait_for(lambda: not fake_soniox.files)


async def test_uploads_stay_within_the_storage_cap_in_megabytes(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.max_storage_bytes = 1 * MB
    async with running_bot(make_settings(soniox_max_storage_mb=1), host="127.0.0.1") as runtime:
        # About 400 KB each: two fit in a megabyte, three do not.
        events = [
            await share(fake_slack, runtime, f"{n}.wav", seconds=12.5) for n in ("a", "b", "c")
        ]
        events.append(await share(fake_slack, runtime, "d1.wav", "d2.wav", seconds=12.5))
        await fake_slack.wait_for(
            lambda: all(final_replies(fake_slack, event) for event in events), timeout=30
        )

    assert fake_soniox.storage_refusals == 0
    assert 400_000 < fake_soniox.peak_storage_bytes <= MB
    assert len(fake_soniox.create_bodies) == 5


async def test_time_spent_queueing_for_room_does_not_count_against_the_age_limit(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.max_files = 1
    fake_soniox.polls_until_complete = 10**6  # each transcription ends when the test says
    clock = ManualClock()
    settings = make_settings(soniox_max_files=1, job_max_age_hours=1)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        first = await share(fake_slack, runtime, "first.wav")
        await cycles(runtime, clock, 3, seconds=1)
        second = await share(fake_slack, runtime, "second.wav")
        # The first takes 50 minutes at Soniox; the second waits for room all that time.
        await cycles(runtime, clock, 10, minutes=5)
        assert len(fake_soniox.files) == 1 and fake_soniox.storage_refusals == 0
        (waiting,) = await runtime.store.jobs_of(await _batch_of(runtime, second))
        assert waiting.state is JobState.QUEUED and waiting.stalled_since is None
        await fake_soniox.complete_all()
        await cycles(runtime, clock, 4, seconds=30)
        assert final_replies(fake_slack, first)

        # Then it takes its own 50 minutes, 100 minutes after it was shared: still in time.
        await cycles(runtime, clock, 10, minutes=5)
        await fake_soniox.complete_all()
        await cycles(runtime, clock, 4, seconds=30)
        (reply,) = final_replies(fake_slack, second)

    assert "Hello from second.wav." in reply["text"]
    assert fake_soniox.storage_refusals == 0 and len(fake_soniox.create_bodies) == 2


async def _batch_of(runtime: Runtime, event: dict[str, Any]) -> str:
    batch = await runtime.store.active_batch_for_message(
        FAKE_WORKSPACE, event["channel"], event["ts"]
    )
    assert batch is not None
    return batch.id


async def test_an_upload_sent_again_after_its_answer_was_lost_counts_once_against_the_cap(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    # The answer is lost, and Soniox kept nothing: the job is both "being uploaded" in the
    # count of what Soniox holds and the upload that goes out again; counted twice, it would
    # never fit under a cap of one file.
    fake_soniox.max_files = 1
    fake_soniox.inject(r"^/v1/files$", method="POST", status=504, body={"error": "timeout"})
    clock = ManualClock()
    settings = make_settings(soniox_max_files=1, poll_interval_seconds=3600)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        event = await share(fake_slack, runtime, "memo.wav")
        await cycles(runtime, clock, 1, seconds=1)
        (job,) = await runtime.store.unfinished_jobs()
        assert job.state is JobState.UPLOADING and job.sent_at is not None

        await cycles(runtime, clock, 4, seconds=60)

        assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 2
        assert len(fake_soniox.requests_to(r"^/v1/files$", "GET")) == 1, "looked for it once"
        await cycles(runtime, clock, 3, seconds=3600)
        (reply,) = final_replies(fake_slack, event)

    assert "Hello from memo.wav." in reply["text"]
    assert fake_soniox.storage_refusals == 0


async def test_a_transcription_soniox_will_not_delete_yet_holds_up_no_other_clean_up(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**6  # the first file's transcription keeps running
    clock = ManualClock()
    settings = make_settings(soniox_max_pending=1)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        event = await share(fake_slack, runtime, "running.wav", "waiting.wav")
        await cycles(runtime, clock, 4, seconds=1)
        running, waiting = await runtime.store.jobs_of(await _batch_of(runtime, event))
        assert running.state is JobState.PROCESSING and waiting.state is JobState.UPLOADED
        assert await runtime.store.cancel_batch(running.batch_id, clock())

        # Soniox refuses (409) to delete a transcription still processing; the other file goes.
        await cycles(runtime, clock, 2, seconds=1)
        assert list(fake_soniox.files) == [running.provider_file_id]
        assert running.provider_job_id in fake_soniox.transcriptions
        running, waiting = await runtime.store.jobs_of(running.batch_id)
        assert (running.cleaned_up, waiting.cleaned_up) == (False, True)
        assert await runtime.store.stored_at_provider("soniox") == (1, running.size_bytes)

        await fake_soniox.complete_all()
        await cycles(runtime, clock, 1, seconds=61)
    assert fake_soniox.files == {} and fake_soniox.transcriptions == {}
