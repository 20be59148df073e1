"""Leases: which owner (process) works on which job or batch. Two owners never both hold a row; a
lease that runs out may be taken; renewing keeps it; releasing frees it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from storage.leases import FAIR_TURNS
from storage.models import Batch, BatchState, Job, JobState, Leases, StillRunning, Workspace
from storage.store import Store
from tests.contract.builders import (
    LATER,
    NOW,
    batch_at,
    batch_with,
    job_at,
    new_batch,
    new_job,
    next_ts,
)
from tests.workspaces import T1

T2 = Workspace("T2")

LEASE = timedelta(seconds=30)
A, B = "owner-a", "owner-b"


def ids(rows: Sequence[Job] | Sequence[Batch]) -> list[str]:
    return [row.id for row in rows]


async def test_two_owners_claiming_at_once_never_both_get_a_job(store: Store) -> None:
    jobs = [(await batch_with(store))[1][0] for _ in range(12)]
    first, second = await asyncio.gather(
        store.claim_due_jobs(A, NOW, LEASE), store.claim_due_jobs(B, NOW, LEASE)
    )
    assert not set(ids(first)) & set(ids(second))
    assert sorted(ids(first) + ids(second)) == sorted(ids(jobs)), "every due job, once"
    again = await store.claim_due_jobs(B, NOW + LEASE / 2, LEASE)
    assert again == [], "held, even by the owner that claims"


async def test_a_claim_takes_due_jobs_oldest_first_up_to_its_limit(store: Store) -> None:
    created = [NOW + timedelta(seconds=second) for second in (3, 1, 2)]
    jobs = [(await batch_with(store, now=at))[1][0] for at in created]
    _, (not_due,) = await batch_with(store)
    await store.postpone_jobs([not_due.id], until=NOW + LEASE, stalled_since=NOW, now=NOW)
    await job_at(store, JobState.COMPLETED)

    claimed = await store.claim_due_jobs(A, NOW + timedelta(seconds=5), LEASE, limit=2)
    assert ids(claimed) == [jobs[1].id, jobs[2].id]
    assert all(job.state is JobState.QUEUED for job in claimed), "rows as they are"
    rest = await store.claim_due_jobs(B, NOW + timedelta(seconds=5), LEASE)
    assert ids(rest) == [jobs[0].id], "neither the job not due nor the finished one"


async def test_an_expired_lease_can_be_taken_by_another_owner(store: Store) -> None:
    _, (job,) = await batch_with(store)
    assert ids(await store.claim_due_jobs(A, NOW, LEASE)) == [job.id]
    assert await store.claim_due_jobs(B, NOW + LEASE - timedelta(seconds=1), LEASE) == []
    assert ids(await store.claim_due_jobs(B, NOW + LEASE, LEASE)) == [job.id]
    # The first owner lost it: renewing says so, and releasing leaves the new holder alone.
    renewed = await store.renew_leases(A, Leases(jobs=frozenset({job.id})), NOW + LEASE, LEASE)
    assert renewed == Leases()
    await store.release_leases(A, Leases(jobs=frozenset({job.id})))
    assert await store.claim_due_jobs(A, NOW + LEASE, LEASE) == []


async def test_renewing_keeps_a_lease(store: Store) -> None:
    _, (job,) = await batch_with(store)
    await store.claim_due_jobs(A, NOW, LEASE)
    held = Leases(jobs=frozenset({job.id}), batches=frozenset({"b-000000000000"}))
    renewed = await store.renew_leases(A, held, NOW + LEASE / 2, LEASE)
    assert renewed == Leases(jobs=frozenset({job.id})), "only what the owner holds"
    assert await store.claim_due_jobs(B, NOW + LEASE, LEASE) == []
    assert ids(await store.claim_due_jobs(B, NOW + LEASE * 3 / 2, LEASE)) == [job.id]


async def test_an_owner_renews_its_lease_after_it_ran_out_unless_someone_took_it(
    store: Store,
) -> None:
    _, (job,) = await batch_with(store)
    await store.claim_due_jobs(A, NOW, LEASE)
    held = Leases(jobs=frozenset({job.id}))
    assert await store.renew_leases(A, held, NOW + LEASE * 2, LEASE) == held
    assert await store.claim_due_jobs(B, NOW + LEASE * 2, LEASE) == []


async def test_releasing_frees_a_lease_at_once(store: Store) -> None:
    _, (job,) = await batch_with(store)
    await store.claim_due_jobs(A, NOW, LEASE)
    await store.release_leases(B, Leases(jobs=frozenset({job.id})))
    assert await store.claim_due_jobs(B, NOW, LEASE) == [], "another owner cannot release it"
    await store.release_leases(A, Leases(jobs=frozenset({job.id})))
    assert ids(await store.claim_due_jobs(B, NOW, LEASE)) == [job.id]
    await store.release_leases(A, Leases())


async def test_a_batch_native_providers_batch_is_claimed_whole_or_not_at_all(
    store: Store,
) -> None:
    ts = next_ts()
    batch, (first, second) = await batch_with(
        store, new_job("F1", ts), new_job("F2", ts), provider="soket"
    )
    await store.postpone_jobs([second.id], until=NOW + LEASE, stalled_since=NOW, now=NOW)
    assert ids(await store.claim_jobs(B, [second.id], NOW, LEASE)) == [second.id]
    assert await store.claim_due_jobs(A, NOW, LEASE, whole_batches={"soket"}) == [], (
        "part of it is held"
    )
    assert await store.claim_due_jobs(A, NOW, LEASE, whole_batches={"soket"}, limit=1) == []
    await store.release_leases(B, Leases(jobs=frozenset({second.id})))
    assert await store.claim_due_jobs(A, NOW, LEASE, whole_batches={"soket"}, limit=1) == [], (
        "never part of it"
    )
    claimed = await store.claim_due_jobs(A, NOW, LEASE, whole_batches={"soket"})
    assert ids(claimed) == [first.id, second.id], "the job not due too"
    assert {job.batch_id for job in claimed} == {batch.id}


async def test_jobs_are_claimed_by_id_unless_someone_holds_them(store: Store) -> None:
    done = await job_at(store, JobState.COMPLETED)
    other = await job_at(store, JobState.FAILED)
    assert ids(await store.claim_jobs(A, [done.id, "nope"], NOW, LEASE)) == [done.id]
    claimed = await store.claim_jobs(B, [done.id, other.id], NOW, LEASE)
    assert ids(claimed) == [other.id]
    assert claimed[0].state is JobState.FAILED
    assert await store.claim_jobs(B, [], NOW, LEASE) == []


async def test_batches_are_claimed_once_as_they_are_now(store: Store) -> None:
    batch = await batch_at(store, BatchState.OPEN)
    read_before = await store.get_batch(batch.id)
    assert read_before is not None
    assert await store.begin_delivery(batch.id, NOW)
    first, second = await asyncio.gather(
        store.claim_batches(A, [batch.id, "b-000000000000"], NOW, LEASE),
        store.claim_batches(B, [batch.id], NOW, LEASE),
    )
    claimed = first or second
    assert len(first) + len(second) == 1, "one owner"
    assert claimed[0].state is BatchState.DELIVERING, "the row as it is now"
    winner = A if first else B
    loser = B if first else A
    assert await store.claim_batches(loser, [batch.id], NOW + LEASE / 2, LEASE) == []
    await store.release_leases(winner, Leases(batches=frozenset({batch.id})))
    assert ids(await store.claim_batches(loser, [batch.id], NOW, LEASE)) == [batch.id]
    assert await store.claim_batches(A, [], NOW, LEASE) == []


async def test_leases_of_batches_expire_and_renew_like_those_of_jobs(store: Store) -> None:
    older = await batch_at(store, BatchState.OPEN, created=NOW)
    newer = await batch_at(store, BatchState.OPEN, created=NOW + timedelta(seconds=1))
    claimed = await store.claim_batches(A, [newer.id, older.id], NOW, LEASE)
    assert ids(claimed) == [older.id, newer.id], "oldest first"
    held = Leases(batches=frozenset({older.id, newer.id}))
    assert await store.renew_leases(A, held, NOW + LEASE / 2, LEASE) == held
    assert await store.claim_batches(B, [older.id], NOW + LEASE, LEASE) == []
    assert ids(await store.claim_batches(B, [older.id], NOW + LEASE * 2, LEASE)) == [older.id]
    assert await store.renew_leases(A, held, NOW + LEASE * 2, LEASE) == Leases(
        batches=frozenset({newer.id})
    )


async def _one_file(store: Store, workspace: Workspace, at: datetime) -> str:
    ts = next_ts()
    made = await store.create_batch(new_batch(ts, workspace=workspace), [new_job("F1", ts)], at)
    assert made is not None
    return made.id


async def test_workspaces_take_turns_in_a_claim(store: Store) -> None:
    flood = [
        await _one_file(store, T1, NOW + timedelta(milliseconds=index)) for index in range(100)
    ]
    single = await _one_file(store, T2, NOW + timedelta(seconds=1))

    first = await store.claim_due_jobs(A, LATER, LEASE, limit=3)
    assert [job.batch_id for job in first] == [flood[0], single, flood[1]], "T2 is not behind"
    rest = await store.claim_due_jobs(B, LATER, LEASE)
    assert [job.batch_id for job in rest] == flood[2:], "one workspace: oldest first"


async def test_a_claim_gives_each_workspace_its_first_turns_then_goes_by_age(
    store: Store,
) -> None:
    organisation = Workspace("T3", "E1")
    flood = [
        await _one_file(store, T1, NOW + timedelta(milliseconds=index))
        for index in range(FAIR_TURNS + 4)
    ]
    late = [
        await _one_file(store, workspace, NOW + timedelta(seconds=1, milliseconds=index))
        for index, workspace in enumerate((T2, organisation, T2))
    ]
    claimed = [job.batch_id for job in await store.claim_due_jobs(A, LATER, LEASE)]
    t2_first, third, t2_second = late
    assert claimed[:5] == [flood[0], t2_first, third, flood[1], t2_second], "turn by turn"
    assert claimed[5:] == flood[2:], "past the workspaces' turns, oldest first"


async def test_polls_recorded_with_their_owner_give_the_leases_back(store: Store) -> None:
    recorded, changed, kept, others = [await job_at(store, JobState.PROCESSING) for _ in range(4)]
    due = NOW + timedelta(minutes=1)
    for job in (recorded, changed, kept):
        await store.record_remote_finished("soniox", str(job.provider_job_id), NOW)
    await store.record_remote_finished("soniox", str(others.provider_job_id), NOW)
    claimed = await store.claim_due_jobs(A, due, LEASE)
    assert set(ids(claimed)) == {recorded.id, changed.id, kept.id, others.id}
    read = {job.id: job for job in claimed}
    await store.release_leases(A, Leases(jobs=frozenset({others.id})))
    assert ids(await store.claim_due_jobs(B, due, LEASE)) == [others.id]

    # One answer is out of date: its job changed after it was read (a webhook).
    await store.record_remote_finished("soniox", str(changed.provider_job_id), due)
    polled = [
        StillRunning(job.id, job.state, read[job.id].updated_at, poll_at=LATER + LEASE)
        for job in (recorded, changed, others)
    ]
    assert await store.record_still_running(polled, due, owner=A) == 2, "not the changed one"
    free = await store.claim_due_jobs(B, due, LEASE)
    assert ids(free) == [changed.id], "given back, recorded or not; the recorded one is not due"
    assert await store.claim_jobs(B, [recorded.id], due, LEASE) != [], "given back"
    assert await store.claim_jobs(B, [kept.id], due, LEASE) == [], "not polled: still A's"
    renewed = await store.renew_leases(B, Leases(jobs=frozenset({others.id})), due, LEASE)
    assert renewed.jobs == {others.id}, "another owner's lease is left alone"


async def test_a_whole_batch_longer_than_a_turn_is_claimed_while_workspaces_take_turns(
    store: Store,
) -> None:
    ts = next_ts()
    files = [new_job(f"F{index}", ts) for index in range(FAIR_TURNS + 4)]
    _, jobs = await batch_with(store, *files, provider="soket")
    await _one_file(store, T2, NOW)
    claimed = await store.claim_due_jobs(A, LATER, LEASE, whole_batches={"soket"})
    assert {job.id for job in jobs} <= set(ids(claimed)), "the whole batch, once due"
