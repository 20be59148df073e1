"""Polling cost and delay: calls made to the provider per delivered transcript, and the time from
the provider finishing a transcription to the reply being posted in Slack, with polling alone and
with Soniox webhooks.

A real ``python -m bot run`` (HTTP mode) gets ``--files`` messages with one file each. The fake
Soniox keeps every transcription "processing" until this script finishes it, at a known moment:
``--processing`` seconds after it was created plus a random offset (fixed seed) spread over two
poll intervals, so completions fall at every phase of the bot's poll clock. The reply counts as
posted when its :white_check_mark: reaction appears (added right after the reply).

One run per ``POLL_INTERVAL_SECONDS`` value in ``--intervals`` with polling alone (default: 5, the
default setting, and 1), then one per value in ``--webhook-intervals`` with ``PUBLIC_URL`` set, so
the fake Soniox POSTs a webhook to the bot the moment a transcription ends and polling is only the
fallback (default: 5, the realistic deployment; give the flag no value to skip these runs). A
webhook run fails unless every transcription's webhook was delivered and answered 2xx by the bot.

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
from contextlib import suppress
from dataclasses import dataclass
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
    ("status list", "GET", r"^/v1/transcriptions$"),
    ("status", "GET", r"^/v1/transcriptions/[^/]+$"),
    ("transcript", "GET", r"^/v1/transcriptions/[^/]+/transcript$"),
    ("delete transcription", "DELETE", r"^/v1/transcriptions/[^/]+$"),
    ("delete file", "DELETE", r"^/v1/files/[^/]+$"),
]


@dataclass(frozen=True)
class Mode:
    """How the bot learns that a transcription ended: polls at ``interval`` seconds, and webhooks
    (``PUBLIC_URL`` set) if ``webhooks``."""

    interval: float
    webhooks: bool = False

    @property
    def label(self) -> str:
        if self.webhooks:
            return f"webhooks (+ polling at {self.interval:g} s)"
        return f"polling, {self.interval:g} s"


async def run(mode: Mode, files: int, processing: float, seed: int) -> dict[str, Any]:
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
                POLL_INTERVAL_SECONDS=str(mode.interval),
                LOG_LEVEL="WARNING",
            )
            if mode.webhooks:
                # The bot's own loopback address: the port is chosen by bot_environment.
                env["PUBLIC_URL"] = f"http://127.0.0.1:{env['PORT']}"
            bot = BotProcess(env, Path(workdir), Path(workdir) / "bot.log")
            await bot.start()
            try:
                events = await share(slack, bot, files)
                finished, replied = await finish_and_watch(
                    slack, soniox, events, processing, mode.interval, rng
                )
                # Clean-up at the provider follows the reply; its calls count too.
                await soniox.wait_for(lambda: len(soniox.deleted_files) >= files, timeout=60)
                if mode.webhooks:
                    # Each delivery is recorded once the bot has answered it; missing ones are
                    # reported by check_webhooks below.
                    with suppress(TimeoutError):
                        await soniox.wait_for(
                            lambda: len(soniox.webhook_deliveries) >= files, timeout=10
                        )
            finally:
                await bot.terminate()
    finally:
        await slack.stop()
        await soniox.stop()
    webhooks_accepted = check_webhooks(mode, soniox, files)
    delays = [replied[name] - finished[name] for name in finished]
    calls: Counter[str] = Counter()
    for label, method, pattern in ENDPOINTS:
        calls[label] = len(soniox.requests_to(pattern, method))
    return {
        "mode": mode,
        "files": files,
        "calls_per_transcript": len(soniox.requests) / files,
        "breakdown": {label: calls[label] / files for label, _, _ in ENDPOINTS},
        "webhooks_per_transcript": webhooks_accepted / files,
        "delay_mean": statistics.mean(delays),
        "delay_p50": percentile(delays, 0.5),
        "delay_max": max(delays),
    }


def check_webhooks(mode: Mode, soniox: FakeSoniox, files: int) -> int:
    """The number of webhooks the bot accepted (2xx); raises if the run did not use webhooks as
    ``mode`` says, since its figures would then describe something else."""
    asked = [body for body in soniox.create_bodies if body.get("webhook_url")]
    accepted = [
        delivery
        for delivery in soniox.webhook_deliveries
        if delivery["status"] is not None and 200 <= delivery["status"] < 300
    ]
    if not mode.webhooks:
        if asked or soniox.webhook_deliveries:
            raise RuntimeError(f"{mode.label}: the bot asked Soniox for webhooks")
        return 0
    if len(asked) != len(soniox.create_bodies) or not asked:
        raise RuntimeError(
            f"{mode.label}: only {len(asked)} of {len(soniox.create_bodies)} transcriptions were "
            "created with a webhook_url; is PUBLIC_URL taken into account?"
        )
    if len(accepted) < files:
        failed = [
            (delivery["url"], delivery["status"], delivery["error"])
            for delivery in soniox.webhook_deliveries
            if delivery not in accepted
        ]
        raise RuntimeError(
            f"{mode.label}: the bot accepted {len(accepted)} webhooks for {files} transcriptions "
            f"({len(soniox.webhook_deliveries)} sent); failures (url, status, error): {failed}"
        )
    return len(accepted)


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
    parser.add_argument(
        "--intervals",
        type=float,
        nargs="+",
        default=[5.0, 1.0],
        help="POLL_INTERVAL_SECONDS values to run with polling alone",
    )
    parser.add_argument(
        "--webhook-intervals",
        type=float,
        nargs="*",
        default=[5.0],
        help=(
            "POLL_INTERVAL_SECONDS values to run with webhooks (PUBLIC_URL set), polling as the "
            "fallback; no value: no webhook runs"
        ),
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    modes = [Mode(interval) for interval in args.intervals] + [
        Mode(interval, webhooks=True) for interval in args.webhook_intervals
    ]
    results = [asyncio.run(run(mode, args.files, args.processing, args.seed)) for mode in modes]
    print(f"machine: {machine()}")
    print(
        f"{args.files} files, each processing {args.processing:g} s plus 0 to 2 intervals at the "
        "provider"
    )
    labels = [label for label, _, _ in ENDPOINTS]
    print(
        table(
            [
                "mode",
                "Soniox calls per transcript",
                *labels,
                "webhooks accepted per transcript",
                "finished -> reply: mean",
                "p50",
                "max",
            ],
            [
                [
                    result["mode"].label,
                    f"{result['calls_per_transcript']:.1f}",
                    *(f"{result['breakdown'][label]:.1f}" for label in labels),
                    f"{result['webhooks_per_transcript']:.1f}" if result["mode"].webhooks else "-",
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
