"""Streaming relay: a large file goes fake Slack -> ``python -m bot run`` -> fake Soniox.

Prints the relay time, the throughput and the bot process's peak RSS (VmHWM), and checks that the
provider received every byte unchanged. The fakes run in this process; the bot runs in its own, so
its memory is measured alone.

    python -m benchmarks.relay --size-mb 1024 --max-rss-mb 150
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import machine, peak_rss_mb
from tests.fakes.slack import FakeSlack, pattern_sha256
from tests.fakes.soniox import FakeSoniox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            if process.returncode is not None:
                raise RuntimeError("the bot exited during start-up")
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("the bot did not become healthy")


async def relay(size_mb: int) -> dict[str, float]:
    size = size_mb * 1024 * 1024
    slack, soniox = FakeSlack(), FakeSoniox()
    await slack.start()
    await soniox.start()
    port = free_port()
    with tempfile.TemporaryDirectory() as workdir:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_API_URL": slack.api_url,
            "SONIOX_API_KEY": soniox.api_key,
            "SONIOX_API_URL": soniox.api_url,
            "DATABASE_PATH": str(Path(workdir) / "bench.db"),
            "POLL_INTERVAL_SECONDS": "0.2",
            "PORT": str(port),
            "MAX_FILE_MB": str(size_mb + 1),
            "LOG_LEVEL": "WARNING",
        }
        env.pop("SLACK_APP_TOKEN", None)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", env=env, cwd=workdir
        )
        try:
            await wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
            file = slack.add_file(name="all-hands.wav", size=size)
            event = slack.message_event(files=[file])
            body = json.dumps(slack.event_callback(event))
            started = time.perf_counter()
            async with httpx.AsyncClient() as client:
                response = await client.post(
                    f"http://127.0.0.1:{port}/slack/events",
                    content=body,
                    headers=slack.signed_headers(body),
                )
                response.raise_for_status()
            await soniox.wait_for(lambda: soniox.create_bodies, timeout=600)
            relayed = time.perf_counter() - started
            await slack.wait_for(lambda: slack.replies_in("C0GENERAL", event["ts"]), timeout=60)
            uploaded = next(iter(soniox.files.values()), None) or {}
            peak = peak_rss_mb(process.pid)
        finally:
            if process.returncode is None:
                process.terminate()
            await process.wait()
            await slack.stop()
            await soniox.stop()
    intact = uploaded.get("size") == size and uploaded.get("sha256") == pattern_sha256(size)
    return {
        "size_mb": size_mb,
        "seconds": relayed,
        "mb_per_s": size_mb / relayed,
        "peak_rss_mb": peak,
        "intact": float(intact),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--max-rss-mb", type=float, default=150.0)
    args = parser.parse_args()
    result = asyncio.run(relay(args.size_mb))
    print(f"machine: {machine()}")
    print("| file | relay time | throughput | bot peak RSS | bytes intact |")
    print("|---|---|---|---|---|")
    print(
        f"| {result['size_mb']:.0f} MB | {result['seconds']:.1f} s | "
        f"{result['mb_per_s']:.0f} MB/s | {result['peak_rss_mb']:.0f} MB | "
        f"{'yes' if result['intact'] else 'NO'} |"
    )
    ok = result["intact"] and result["peak_rss_mb"] < args.max_rss_mb
    print(f"target: peak RSS under {args.max_rss_mb:.0f} MB -> {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
