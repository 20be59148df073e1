"""Ack latency: many file events at once to a bot in HTTP mode (a real ``python -m bot run``).

Slack retries an event whose HTTP answer takes more than 3 seconds, and the bot records each
batch in SQLite *before* it answers (so an acked event is never lost). This measures how long
the answers take when ``--events`` messages with a file arrive at the same moment, while the bot
also starts downloading and uploading the earlier ones.

Three processes share the machine: the bot; the fakes (Slack, Soniox), in this one; and the
sender, a process of its own, so that the fakes serving the bot's downloads and uploads do not
delay the sender reading its answers. Latency is taken per request, from just before it is sent
to its answer. A few events are sent first as warm-up (the first request of a process pays for
lazy imports) and not counted.

    python -m benchmarks.ack --events 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.common import machine, peak_rss_mb, percentile, table, verdict
from tests.bot_process import BotProcess, bot_environment
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox

WARM_UP_EVENTS = 5


def signed_event(slack: FakeSlack, index: int) -> tuple[str, dict[str, str]]:
    file = slack.add_file(name=f"memo-{index}.wav", content=silent_wav(0.1))
    event = slack.message_event(files=[file])
    body = json.dumps(slack.event_callback(event))
    return body, slack.signed_headers(body)


async def fire(
    session: aiohttp.ClientSession, url: str, requests: list[tuple[str, dict[str, str]]]
) -> list[tuple[float, int]]:
    """Send every request at once; each one's (seconds to its answer, HTTP status)."""

    async def one(body: str, headers: dict[str, str]) -> tuple[float, int]:
        started = time.perf_counter()
        async with session.post(url, data=body.encode(), headers=headers) as response:
            await response.read()
            return time.perf_counter() - started, response.status

    return await asyncio.gather(*(one(body, headers) for body, headers in requests))


async def open_connections(session: aiohttp.ClientSession, base: str, count: int) -> None:
    """Leave ``count`` idle keep-alive connections in the pool, as a sender that already talks
    to the bot has: the burst then measures the bot, not this process opening 200 sockets."""

    async def one() -> None:
        async with session.get(f"{base}/healthz") as response:
            await response.read()

    await asyncio.gather(*(one() for _ in range(count)))


def sender(
    base: str,
    warm_up: list[tuple[str, dict[str, str]]],
    burst: list[tuple[str, dict[str, str]]],
    channel: Connection,
) -> None:
    """The sending process: warm up, open the connections, say so, wait for the word, then send
    the burst and hand back each request's (seconds, status)."""

    async def main() -> list[tuple[float, int]]:
        url = f"{base}/slack/events"
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            await fire(session, url, warm_up)
            await open_connections(session, base, len(burst))
            channel.send("ready")
            await asyncio.get_running_loop().run_in_executor(None, channel.recv)
            return await fire(session, url, burst)

    channel.send(asyncio.run(main()))


async def server_buckets(session: aiohttp.ClientSession, base: str) -> dict[float, float]:
    """The bot's own histogram of /slack/events answer times: ``{upper bound: count}``."""
    async with session.get(f"{base}/metrics") as response:
        page = await response.text()
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if (
                sample.name == "threadscribe_http_request_duration_seconds_bucket"
                and sample.labels.get("path") == "/slack/events"
            ):
                buckets[float(sample.labels["le"])] = sample.value
    return buckets


async def receive(channel: Connection) -> Any:
    """The sender's next message; the fakes keep serving the bot meanwhile."""
    return await asyncio.get_running_loop().run_in_executor(None, channel.recv)


def bucket_percentile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The upper bound of the histogram bucket holding the ``q`` quantile of the burst."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = counts.get(math.inf, 0.0)
    for bound, count in counts.items():
        if count >= q * total:
            return bound
    return math.inf


async def measure(events: int) -> dict[str, Any]:
    slack, soniox = FakeSlack(), FakeSoniox()
    await slack.start()
    await soniox.start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            env = bot_environment(Path(workdir), slack, soniox, LOG_LEVEL="WARNING")
            bot = BotProcess(env, Path(workdir), Path(workdir) / "bot.log")
            await bot.start()
            try:
                warm_up = [signed_event(slack, -i - 1) for i in range(WARM_UP_EVENTS)]
                burst = [signed_event(slack, i) for i in range(events)]
                ours, theirs = multiprocessing.get_context("spawn").Pipe()
                process = multiprocessing.get_context("spawn").Process(
                    target=sender, args=(bot.url, warm_up, burst, theirs)
                )
                process.start()
                async with aiohttp.ClientSession() as session:
                    assert await receive(ours) == "ready"
                    before = await server_buckets(session, bot.url)
                    started = time.perf_counter()
                    ours.send("go")
                    results = await receive(ours)
                    wall = time.perf_counter() - started
                    after = await server_buckets(session, bot.url)
                process.join()
                # Every acked event must lead to a reply: the ack promised it.
                await slack.wait_for(
                    lambda: len(slack.messages) >= events + WARM_UP_EVENTS, timeout=120
                )
                replied = time.perf_counter() - started
                assert bot.process is not None
                rss = peak_rss_mb(bot.process.pid)
            finally:
                await bot.terminate()
    finally:
        await slack.stop()
        await soniox.stop()
    latencies = [seconds for seconds, _ in results]
    return {
        "events": events,
        "ok": sum(1 for _, status in results if status == 200),
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "server_p50_bound": bucket_percentile(before, after, 0.50),
        "server_p99_bound": bucket_percentile(before, after, 0.99),
        "burst_seconds": wall,
        "all_replied_seconds": replied,
        "peak_rss_mb": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--p99-target-ms", type=float, default=250.0)
    args = parser.parse_args()
    result = asyncio.run(measure(args.events))
    print(f"machine: {machine()}")
    print(
        table(
            [
                "events at once",
                "HTTP 200",
                "p50",
                "p99",
                "max",
                "all acked in",
                "all replied in",
                "bot peak RSS",
            ],
            [
                [
                    result["events"],
                    result["ok"],
                    f"{result['p50'] * 1000:.0f} ms",
                    f"{result['p99'] * 1000:.0f} ms",
                    f"{result['max'] * 1000:.0f} ms",
                    f"{result['burst_seconds']:.2f} s",
                    f"{result['all_replied_seconds']:.1f} s",
                    f"{result['peak_rss_mb']:.0f} MB",
                ]
            ],
        )
    )
    print(
        "the bot's own histogram of /slack/events: p50 <= "
        f"{result['server_p50_bound'] * 1000:.0f} ms, p99 <= "
        f"{result['server_p99_bound'] * 1000:.0f} ms (bucket bounds)"
    )
    under_slack = result["ok"] == result["events"] and result["max"] < 3.0
    fast = result["p99"] * 1000 < args.p99_target_ms
    print(f"target: every ack under Slack's 3 s -> {verdict(under_slack)}")
    print(f"target: p99 under {args.p99_target_ms:.0f} ms -> {verdict(fast)}")
    return 0 if under_slack and fast else 1


if __name__ == "__main__":
    raise SystemExit(main())
