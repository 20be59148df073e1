"""Work that follows an ack waits for the answers still owed to Slack, but not for long."""

from __future__ import annotations

import asyncio
import time

from bot.acks import AckFirst


async def test_follow_up_work_waits_for_the_answers_in_flight() -> None:
    acks = AckFirst(settle=0.01, longest_wait=5)
    order: list[str] = []

    async def request(name: str, seconds: float) -> None:
        with acks.answering():
            await asyncio.sleep(seconds)
        order.append(name)

    async def follow_up() -> None:
        await acks.after_acks()
        order.append("follow-up")

    await asyncio.gather(request("first", 0.05), request("second", 0.1), follow_up())
    assert order == ["first", "second", "follow-up"]


async def test_follow_up_work_waits_for_a_gap_in_the_burst() -> None:
    acks = AckFirst(settle=0.2, longest_wait=5)
    with acks.answering():
        pass
    started = time.monotonic()
    await acks.after_acks()
    assert time.monotonic() - started >= 0.15, "a request was just answered: more may follow"


async def test_with_nothing_to_answer_follow_up_work_goes_at_once() -> None:
    acks = AckFirst(settle=10, longest_wait=10)
    started = time.monotonic()
    await acks.after_acks()
    assert time.monotonic() - started < 1


async def test_a_steady_stream_of_requests_holds_follow_up_work_back_only_so_long() -> None:
    acks = AckFirst(settle=0.01, longest_wait=0.1)
    with acks.answering():
        started = time.monotonic()
        await acks.after_acks()
        assert time.monotonic() - started < 5
