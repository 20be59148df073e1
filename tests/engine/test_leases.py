"""The engine under leases: two engines (two processes) over one store never both take a step,
post a reply or a progress message; a cycle takes at most its limit and asks for the next."""

from __future__ import annotations

import asyncio
from collections import Counter

from storage.models import Batch, JobState
from tests.engine.conftest import POLL_INTERVAL, World
from tests.engine.doubles import Message


def replies(world: World, thread_ts: str) -> list[Message]:
    return [message for message in world.slack.thread(thread_ts) if message.final]


async def test_two_engines_on_one_store_take_each_step_once(world: World) -> None:
    world.provider.polls_until_done = 3
    batches = [await world.share(f"m{index}.wav", f"n{index}.wav") for index in range(6)]
    first = world.new_engine(owner="first")
    second = world.new_engine(owner="second")

    async def both(seconds: float) -> None:
        world.clock.advance(seconds=seconds)
        await asyncio.gather(first.run_cycle(), second.run_cycle())
        await asyncio.gather(first.drain(), second.drain())

    for _ in range(30):
        if all(replies(world, batch.thread_ts) for batch in batches):
            break
        await both(POLL_INTERVAL)
    else:
        raise AssertionError("not every batch was answered")

    calls = Counter((name, job_id) for name, job_ids in world.provider.calls for job_id in job_ids)
    twice = {call: count for call, count in calls.items() if call[0] != "poll" and count > 1}
    assert twice == {}, "each upload, submission and clean-up once"
    for batch in batches:
        (message,) = world.slack.thread(batch.thread_ts)  # one progress message, the reply
        assert message.final
    assert len(world.downloader.downloads) == 12
    await asyncio.gather(first.stop(), second.stop())


async def test_a_cycle_claims_at_most_its_limit_and_asks_for_another_at_once(
    world: World,
) -> None:
    batches = [await world.share(f"m{index}.wav") for index in range(3)]
    await world.cycle()  # every file uploaded
    assert await states(world, batches) == {JobState.UPLOADED: 3}
    asked: list[str] = []
    await world.engine.stop()
    world.new_engine(claim_limit=2, wake=lambda: asked.append("cycle"))

    await world.cycle()
    assert await states(world, batches) == {JobState.SUBMITTED: 2, JobState.UPLOADED: 1}
    assert asked, "another cycle right away"
    await world.cycle(0)
    assert await states(world, batches) == {JobState.SUBMITTED: 3}


async def states(world: World, batches: list[Batch]) -> Counter[JobState]:
    found = [await world.jobs(batch) for batch in batches]
    return Counter(job.state for jobs in found for job in jobs)


async def test_a_transfer_whose_work_another_process_ended_stops_at_the_next_renewal(
    world: World,
) -> None:
    # The app was removed from the workspace through another process, while this one was
    # downloading the workspace's file: the download goes no further than this process's next
    # lease renewal, and leaves nothing in the spool.
    release = asyncio.Event()
    downloading = asyncio.Event()
    fetch = world.downloader.download

    async def slow_download(*args: object, **kwargs: object) -> int:
        downloading.set()
        await release.wait()
        return await fetch(*args, **kwargs)  # type: ignore[arg-type]

    world.downloader.download = slow_download  # type: ignore[method-assign]
    batch = await world.share("memo.wav")
    world.clock.advance(seconds=POLL_INTERVAL)
    await world.engine.run_cycle()
    await asyncio.wait_for(downloading.wait(), 5)
    assert world.engine.steps_running == 1

    assert await world.store.remove_workspace(batch.workspace, world.clock()) == 1
    await world.engine.renew_leases()

    assert world.engine.steps_running == 0, "the transfer was stopped"
    await world.engine.drain()
    assert world.downloader.downloads == []
    assert list(world.spool.glob("*")) == []
    assert [job.state for job in await world.jobs(batch)] == [JobState.FAILED]
