"""Speaker names of a delivered batch, how far its reply shows them, and the files attached to
it."""

from __future__ import annotations

from datetime import timedelta

from storage.models import BatchState, ReplyFile
from storage.store import Store
from tests.contract.builders import LATER, NOW, batch_at
from tests.workspaces import T1

ALICE_AND_BOB = {"job-1": {"1": "U0ALICE", "2": "U0BOB"}}


async def test_speakers_are_named_only_once_the_batch_is_delivered_with_a_reply(
    store: Store,
) -> None:
    for state in (BatchState.OPEN, BatchState.DELIVERING, BatchState.CANCELLED):
        batch = await batch_at(store, state)
        assert await store.name_speakers(batch.id, ALICE_AND_BOB, NOW) is None
        assert await store.speaker_naming(batch.id) is None
    without_reply = await batch_at(store, BatchState.OPEN)
    assert await store.record_no_reply(without_reply.id, NOW)
    assert await store.name_speakers(without_reply.id, ALICE_AND_BOB, NOW) is None
    assert await store.name_speakers("b-000000000000", ALICE_AND_BOB, NOW) is None

    delivered = await batch_at(store, BatchState.DELIVERED)
    named = await store.name_speakers(delivered.id, ALICE_AND_BOB, NOW)

    assert named is not None
    assert (named.names, named.version, named.shown, named.files_version) == (
        ALICE_AND_BOB,
        1,
        0,
        0,
    )
    assert not named.is_shown and named.replacing_since is None
    assert await store.speaker_naming(delivered.id) == named


async def test_each_naming_replaces_the_last_and_is_due_until_shown(store: Store) -> None:
    batch = await batch_at(store, BatchState.DELIVERED)
    await store.name_speakers(batch.id, ALICE_AND_BOB, NOW)
    assert [n.batch_id for n in await store.namings_to_show(NOW)] == [batch.id]

    retry_at = NOW + timedelta(seconds=30)
    assert await store.schedule_naming_retry(
        batch.id, attempts=2, retry_at=retry_at, failing_since=NOW, now=NOW
    )
    assert await store.namings_to_show(NOW) == []
    (waiting,) = await store.namings_to_show(retry_at)
    assert (waiting.attempts, waiting.next_attempt_at, waiting.failing_since) == (2, retry_at, NOW)

    renamed = await store.name_speakers(batch.id, {"job-1": {"1": "U0CAROL"}}, LATER)
    assert renamed is not None
    assert (renamed.names, renamed.version) == ({"job-1": {"1": "U0CAROL"}}, 2)
    assert (renamed.attempts, renamed.next_attempt_at, renamed.failing_since) == (0, None, None)
    assert [n.batch_id for n in await store.namings_to_show(LATER)] == [batch.id]

    assert await store.record_names_shown(batch.id, 1, LATER)
    assert [n.version for n in await store.namings_to_show(LATER)] == [2], "version 2 is not shown"
    assert await store.record_names_shown(batch.id, 2, LATER)
    assert await store.namings_to_show(LATER) == []
    assert await store.record_names_shown(batch.id, 1, LATER), "a late, older answer"
    shown = await store.speaker_naming(batch.id)
    assert shown is not None and shown.shown == 2 and shown.is_shown
    assert not await store.record_names_shown("b-000000000000", 1, LATER)


async def test_namings_to_show_come_least_recently_changed_first(store: Store) -> None:
    first = await batch_at(store, BatchState.DELIVERED)
    second = await batch_at(store, BatchState.DELIVERED)
    await store.name_speakers(second.id, ALICE_AND_BOB, NOW)
    await store.name_speakers(first.id, ALICE_AND_BOB, LATER)
    assert [n.batch_id for n in await store.namings_to_show(LATER)] == [second.id, first.id]


async def test_the_latest_reply_in_a_thread_is_the_newest_delivered_one(store: Store) -> None:
    assert await store.latest_reply_in_thread(T1, "C1", "1.0") is None
    older = await batch_at(store, BatchState.DELIVERED)
    await batch_at(store, BatchState.OPEN)
    assert await store.latest_reply_in_thread(T1, "C1", older.thread_ts) == await store.get_batch(
        older.id
    )
    assert await store.latest_reply_in_thread(T1, "C2", older.thread_ts) is None


async def test_replacing_the_files_of_a_reply_survives_a_crash_at_any_step(store: Store) -> None:
    batch = await batch_at(store, BatchState.DELIVERED)
    first = [ReplyFile("F1", "memo-transcript.txt"), ReplyFile("F2", "memo-transcript.srt")]
    assert await store.record_reply_files(batch.id, first, NOW) == 2
    assert await store.record_reply_files(batch.id, first[:1], NOW) == 0, "recorded once"
    assert await store.reply_files(batch.id) == first
    assert await store.begin_file_replacement(batch.id, NOW) is None, "never named"
    assert not await store.finish_file_replacement(batch.id, [], 1, NOW)
    await store.name_speakers(batch.id, ALICE_AND_BOB, NOW)

    replacing = await store.begin_file_replacement(batch.id, NOW)
    assert replacing is not None and replacing.replacing_since == NOW
    retiring = [ReplyFile(each.file_id, each.filename, retiring=True) for each in first]
    assert await store.reply_files(batch.id) == retiring
    # Begun again after a crash: the same replacement goes on, nothing else is retired.
    again = await store.begin_file_replacement(batch.id, LATER)
    assert again is not None and again.replacing_since == NOW
    assert await store.reply_files(batch.id) == retiring

    new = [ReplyFile("F3", "memo-transcript.txt"), ReplyFile("F4", "memo-transcript.srt")]
    assert await store.finish_file_replacement(batch.id, new, 1, LATER)
    assert not await store.finish_file_replacement(batch.id, new, 1, LATER), "finished already"
    finished = await store.speaker_naming(batch.id)
    assert finished is not None
    assert (finished.replacing_since, finished.files_version) == (None, 1)
    assert await store.reply_files(batch.id) == [*retiring, *new]

    assert await store.forget_reply_files(batch.id, ["F1", "F2", "F9"], LATER) == 2
    assert await store.reply_files(batch.id) == new
    assert await store.forget_reply_files(batch.id, [], LATER) == 0


async def test_the_names_go_when_the_transcripts_are_erased(store: Store) -> None:
    batch = await batch_at(store, BatchState.DELIVERED)
    await store.name_speakers(batch.id, ALICE_AND_BOB, NOW)
    assert await store.purge_transcripts_before(NOW + timedelta(days=1), LATER) == 1
    assert await store.speaker_naming(batch.id) is None
    assert await store.name_speakers(batch.id, ALICE_AND_BOB, LATER) is not None, (
        "the caller checks for transcripts; the store only for the reply"
    )
