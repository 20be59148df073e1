"""Speaker names shown in a delivered reply by the engine: the message edited and its attached file
replaced, once, whatever line the process dies at."""

from __future__ import annotations

import asyncio

import pytest

from bot.transcript import Segment, Transcript
from storage.models import Batch
from tests.engine.conftest import World
from tests.engine.doubles import slack_error

SENTENCE = "We went through the quarterly numbers line by line. "
LONG_TALK = Transcript(
    text=SENTENCE * 100,
    segments=[
        Segment(text=SENTENCE * 80, speaker="1", start_ms=0, end_ms=60_000),
        Segment(text=SENTENCE * 20, speaker="2", start_ms=60_000, end_ms=75_000),
    ],
)


async def delivered_with_a_file(world: World) -> tuple[Batch, str]:
    """A batch whose long two-speaker transcript was posted with its file; the file's id."""
    world.provider.transcripts["all-hands.wav"] = LONG_TALK
    world.slack.people = {"U0ALICE": "Alice", "U0BOB": "Bob"}
    batch = await world.share("all-hands.wav")
    await world.until(lambda: world.slack.files_in(batch.thread_ts))
    await world.until(lambda: any(m.final for m in world.slack.thread(batch.thread_ts)))
    (attached,) = world.slack.files_in(batch.thread_ts)
    assert attached["content"].startswith("Speaker 1 [00:00]")
    return batch, str(attached["id"])


async def name(world: World, batch: Batch) -> None:
    (job,) = await world.jobs(batch)
    names = {job.id: {"1": "U0ALICE", "2": "U0BOB"}}
    assert await world.store.name_speakers(batch.id, names, world.clock()) is not None


def the_reply_shows_the_names(world: World, batch: Batch) -> None:
    (reply,) = [m for m in world.slack.thread(batch.thread_ts) if m.final]
    assert "&gt;Alice [00:00]: We went through" in str(reply.blocks), "the preview names them"
    (attached,) = world.slack.files_in(batch.thread_ts)
    assert attached["filename"] == "all-hands-transcript.txt"
    assert attached["content"].startswith("Alice [00:00]: We went through")
    assert "\nBob [01:00]: We went through" in attached["content"]


async def test_names_edit_the_reply_and_replace_its_file(world: World) -> None:
    batch, first = await delivered_with_a_file(world)
    await name(world, batch)

    await world.cycle()

    the_reply_shows_the_names(world, batch)
    assert world.slack.count("upload_text") == 2
    assert [a["id"] for a in world.slack.attachments if a["deleted"]] == [first]
    naming = await world.store.speaker_naming(batch.id)
    assert naming is not None and naming.is_shown and naming.files_version == naming.version
    await world.cycle()
    assert world.slack.count("upload_text") == 2, "shown names are not shown again"


@pytest.mark.parametrize("call", ["upload_text", "delete_file", "update_message"])
async def test_a_crash_at_any_step_leaves_one_file_with_the_names(world: World, call: str) -> None:
    batch, first = await delivered_with_a_file(world)
    await name(world, batch)
    world.slack.failures.crash_after.add(call)

    await world.crash()
    if call == "upload_text":
        assert len(world.slack.files_in(batch.thread_ts)) == 2, "the old file and the new one"
    await world.cycle()

    the_reply_shows_the_names(world, batch)
    assert first not in [a["id"] for a in world.slack.files_in(batch.thread_ts)]
    naming = await world.store.speaker_naming(batch.id)
    assert naming is not None and naming.is_shown
    assert await world.store.reply_files(batch.id) == [
        file for file in await world.store.reply_files(batch.id) if not file.retiring
    ]


async def test_a_new_name_during_a_replacement_ends_with_the_newest_names(world: World) -> None:
    batch, _ = await delivered_with_a_file(world)
    await name(world, batch)
    world.slack.failures.crash_after.add("upload_text")
    await world.crash()
    (job,) = await world.jobs(batch)
    world.slack.people["U0CAROL"] = "Carol"
    await world.store.name_speakers(batch.id, {job.id: {"1": "U0CAROL"}}, world.clock())

    await world.cycle()

    (attached,) = world.slack.files_in(batch.thread_ts)
    assert attached["content"].startswith("Carol [00:00]")
    assert "\nSpeaker 2 [01:00]" in attached["content"]


async def test_a_reply_slack_fails_to_edit_is_named_on_a_later_cycle(world: World) -> None:
    batch, _ = await delivered_with_a_file(world)
    await name(world, batch)
    world.slack.failures.add("update_message", slack_error("internal_error"))

    await world.cycle()
    naming = await world.store.speaker_naming(batch.id)
    assert naming is not None and not naming.is_shown and naming.attempts == 1
    await world.cycle()

    the_reply_shows_the_names(world, batch)
    assert world.slack.count("upload_text") == 2, "the files were replaced once"


async def test_a_file_posted_without_its_id_recorded_is_found_in_the_thread(world: World) -> None:
    batch, first = await delivered_with_a_file(world)
    # As a reply posted by an earlier version, which kept no ids of its files.
    assert await world.store.forget_reply_files(batch.id, [first], world.clock()) == 1
    await name(world, batch)

    await world.cycle()

    the_reply_shows_the_names(world, batch)
    assert [a["id"] for a in world.slack.attachments if a["deleted"]] == [first]


async def test_two_engines_on_one_store_show_the_names_once(world: World) -> None:
    batch, first = await delivered_with_a_file(world)
    await name(world, batch)
    await world.engine.stop()
    one, other = world.new_engine(owner="one"), world.new_engine(owner="other")
    edits = world.slack.count("update_message")

    await asyncio.gather(one.run_cycle(), other.run_cycle())

    the_reply_shows_the_names(world, batch)
    assert world.slack.count("upload_text") == 2, "the file replaced once"
    assert world.slack.count("update_message") == edits + 1, "the reply edited once"
    assert [a["id"] for a in world.slack.attachments if a["deleted"]] == [first]
    await asyncio.gather(one.stop(), other.stop())
