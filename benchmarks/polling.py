"""Polling cost and delay: calls made to the provider per delivered transcript, and the time from
the provider finishing a transcription to the reply being posted in Slack.

A real ``python -m bot run`` (HTTP mode) gets ``--files`` messages with one file each. The fake
Soniox keeps every transcription "processing" until this script finishes it, at a known moment:
``--processing`` seconds after it was created plus a random offset (fixed seed) spread over two
poll intervals, so completions fall at every phase of the bot's poll clock. The reply counts as
posted when its :white_check_mark: reaction appears (added right after the reply).

Run once per ``POLL_INTERVAL_SECONDS`` value (default: 5, the default setting, and 1).

    python -m benchmarks.polling --files 10 --processing 10 --intervals 5 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import machine, percentile, table
from tests.bot_process import BotProcess, bot_environment
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox

#: Soniox endpoints in the breakdown, by what the bot does with them.
ENDPOINTS = [
    ("upload", "POST", r"^/v1/files$"),
    ("create", "POST", r"^/v1/transcriptions$"),
    ("status", "GET", r"^/v1/transcriptions/[^/]+$"),
    ("transcript", "GET", r"^/v1/transcriptions/[^/]+/transcript$"),
    ("delete transcription", "DELETE", r"^/v1/transcriptions/[^/]+$"),
    ("delete file", "DELETE", r"^/v1/files/[^/]+$"),
]


async def run(interval: float, files: int, processing: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    slack, soniox = FakeSlack(), FakeSoniox(polls_until_complete=10**9)
    await slack.start()
    await soniox.start()
    try:
        with tempfile.TemporaryDirectory() as workdir:
            env = bot_environment(
                Path(workdir),
                slack,
                soniox,
                POLL_INTERVAL_SECONDS=str(interval),
                LOG_LEVEL="WARNING",
            )
            bot = BotProcess(env, Path(workdir), Path(workdir) / "bot.log")
            await bot.start()
            try:
                events = await share(slack, bot, files)
                finished, replied = await finish_and_watch(
                    slack, soniox, events, processing, interval, rng
                )
                # Clean-up at the provider follows the reply; its calls count too.
                await soniox.wait_for(lambda: len(soniox.deleted_files) >= files, timeout=60)
            finally:
                await bot.terminate()
    finally:
        await slack.stop()
        await soniox.stop()
    delays = [replied[name] - finished[name] for name in finished]
    calls = Counter()
    for label, method, pattern in ENDPOINTS:
        calls[label] = len(soniox.requests_to(pattern, method))
    return {
        "interval": interval,
        "files": files,
        "calls_per_transcript": len(soniox.requests) / files,
        "breakdown": {label: calls[label] / files for label, _, _ in ENDPOINTS},
        "delay_mean": statistics.mean(delays),
        "delay_p50": percentile(delays, 0.5),
        "delay_max": max(delays),
    }


async def share(slack: FakeSlack, bot: BotProcess, files: int) -> dict[str, dict[str, Any]]:
    """Post one message with one file per ``files``; the events by file name."""
    events = {}
    async with httpx.AsyncClient() as client:
        for index in range(files):
            name = f"call-{index:02d}.wav"
            event = slack.message_event(files=[slack.add_file(name=name, content=silent_wav())])
            body = json.dumps(slack.event_callback(event))
            response = await client.post(
                f"{bot.url}/slack/events", content=body, headers=slack.signed_headers(body)
            )
            response.raise_for_status()
            events[name] = event
    return events


async def finish_and_watch(
    slack: FakeSlack,
    soniox: FakeSoniox,
    events: dict[str, dict[str, Any]],
    processing: float,
    interval: float,
    rng: random.Random,
) -> tuple[dict[str, float], dict[str, float]]:
    """Finish each transcription at its planned moment; note when each finished and when its
    reply was posted (perf_counter seconds, by file name)."""
    finished: dict[str, float] = {}
    replied: dict[str, float] = {}

    async def finish(transcription_id: str, name: str, created: float) -> None:
        await asyncio.sleep(max(0.0, created + processing + rng.uniform(0, 2 * interval) - now()))
        finished[name] = now()
        await soniox.complete(transcription_id)

    async def watch(name: str, event: dict[str, Any]) -> None:
        key = (event["channel"], event["ts"])
        await slack.wait_for(
            lambda: "white_check_mark" in slack.reactions.get(key, []),
            timeout=processing + 10 * interval + 30,
        )
        replied[name] = now()

    watchers = [asyncio.create_task(watch(name, event)) for name, event in events.items()]
    finishers = []
    seen: set[str] = set()
    deadline = now() + 60
    while len(seen) < len(events):
        await soniox.wait_for(lambda: len(soniox.transcriptions) > len(seen), timeout=60)
        for transcription_id, public in list(soniox.transcriptions.items()):
            if transcription_id in seen:
                continue
            seen.add(transcription_id)
            name = soniox.files[public["file_id"]]["filename"]
            finishers.append(asyncio.create_task(finish(transcription_id, name, now())))
        if now() > deadline:
            raise TimeoutError("the bot did not create every transcription")
    await asyncio.gather(*finishers, *watchers)
    return finished, replied


def now() -> float:
    return time.perf_counter()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--processing", type=float, default=10.0, help="seconds at the provider")
    parser.add_argument("--intervals", type=float, nargs="+", default=[5.0, 1.0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    results = [
        asyncio.run(run(interval, args.files, args.processing, args.seed))
        for interval in args.intervals
    ]
    print(f"machine: {machine()}")
    print(
        f"{args.files} files, each processing {args.processing:g} s plus 0 to 2 intervals at the "
        "provider"
    )
    labels = [label for label, _, _ in ENDPOINTS]
    print(
        table(
            [
                "POLL_INTERVAL_SECONDS",
                "Soniox calls per transcript",
                *labels,
                "finished -> reply: mean",
                "p50",
                "max",
            ],
            [
                [
                    f"{result['interval']:g}",
                    f"{result['calls_per_transcript']:.1f}",
                    *(f"{result['breakdown'][label]:.1f}" for label in labels),
                    f"{result['delay_mean']:.2f} s",
                    f"{result['delay_p50']:.2f} s",
                    f"{result['delay_max']:.2f} s",
                ]
                for result in results
            ],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
