"""The real process: killed mid-batch and restarted, stopped with SIGTERM, logging at DEBUG."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from tests.bot_process import BotProcess, bot_environment, run_again
from tests.conftest import environment_of, final_replies, on_both_backends
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox


async def post_event(fake: FakeSlack, bot: BotProcess, event: dict[str, Any]) -> None:
    body = json.dumps(fake.event_callback(event))
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{bot.url}/slack/events", content=body, headers=fake.signed_headers(body)
        )
    assert response.status_code == 200


replies = final_replies


@on_both_backends
async def test_sigkill_mid_batch_then_restart_finishes_once(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, database: dict[str, str]
) -> None:
    fake_soniox.polls_until_complete = 10**6  # still processing when the process dies
    # On PostgreSQL, a unit the killed process held waits for its lease to run out.
    env = bot_environment(
        tmp_path,
        fake_slack,
        fake_soniox,
        LOG_LEVEL="DEBUG",
        LEASE_SECONDS="1",
        **environment_of(database),
    )
    first = BotProcess(env, tmp_path, tmp_path / "first.log")
    await first.start()
    events = [
        fake_slack.message_event(
            files=[fake_slack.add_file(name=f"m{i}.wav", content=silent_wav())]
        )
        for i in range(3)
    ]
    for event in events:
        await post_event(fake_slack, first, event)
    # Killed once every transcription id is recorded: a poll only follows the recording.
    await fake_soniox.wait_for(
        lambda: len(seen := fake_soniox.times_seen()) == 3 and all(seen.values())
    )
    await first.kill()
    assert all(replies(fake_slack, event) == [] for event in events)

    fake_soniox.polls_until_complete = 0

    async def replied_and_cleaned_up() -> None:
        await fake_slack.wait_for(lambda: all(replies(fake_slack, e) for e in events), timeout=20)
        await fake_soniox.wait_for(lambda: len(fake_soniox.deleted_files) == 3)

    second = await run_again(env, tmp_path, replied_and_cleaned_up)

    for event in events:
        assert len(replies(fake_slack, event)) == 1
    assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 3, "no second upload"
    assert len(fake_soniox.create_bodies) == 3, "no second transcription"
    assert len(fake_slack.downloads) == 3, "no second download"

    # Nothing secret reached the logs, even at DEBUG with every library talking.
    logs = first.log() + second.log()
    assert "DEBUG" in logs
    for secret in (fake_slack.bot_token, fake_slack.signing_secret, fake_soniox.api_key):
        assert secret not in logs


async def test_sigkill_during_download_restarts_the_download(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_slack.inject(r"^/files-pri/", delay=3.0, status=0)  # hangs past the kill
    env = bot_environment(tmp_path, fake_slack, fake_soniox)
    first = BotProcess(env, tmp_path, tmp_path / "first.log")
    await first.start()
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    await post_event(fake_slack, first, event)
    await fake_slack.wait_for(lambda: fake_slack.requests_to(r"^/files-pri/"))
    await first.kill()

    await run_again(
        env, tmp_path, lambda: fake_slack.wait_for(lambda: replies(fake_slack, event), timeout=20)
    )
    assert len(replies(fake_slack, event)) == 1
    assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 1
    assert list((tmp_path / "spool").glob("*")) == [], "no spool file left behind"


async def test_sigterm_exits_cleanly_and_quickly(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    bot = BotProcess(bot_environment(tmp_path, fake_slack, fake_soniox), tmp_path, tmp_path / "l")
    await bot.start()
    started = time.monotonic()
    code = await bot.terminate(timeout=10)
    assert code == 0
    assert time.monotonic() - started < 10
    async with httpx.AsyncClient() as client:
        try:
            await client.get(f"{bot.url}/healthz")
        except httpx.TransportError:
            pass
        else:
            raise AssertionError("still serving after SIGTERM")


async def test_sigkill_while_posting_the_progress_message_leaves_one_message(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**6
    # The post reaches Slack, whose answer comes only after the process is gone.
    fake_slack.inject(r"chat\.postMessage", delay=1.5, status=0)
    env = bot_environment(tmp_path, fake_slack, fake_soniox, PROGRESS_AFTER_SECONDS="0")
    first = BotProcess(env, tmp_path, tmp_path / "first.log")
    await first.start()
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    await post_event(fake_slack, first, event)
    await fake_slack.wait_for(lambda: fake_slack.api_calls("chat.postMessage"))
    await first.kill()
    (progress,) = await fake_slack.wait_for(lambda: fake_slack.replies_in("C0GENERAL", event["ts"]))

    fake_soniox.polls_until_complete = 0
    await run_again(
        env, tmp_path, lambda: fake_slack.wait_for(lambda: replies(fake_slack, event), timeout=20)
    )
    (reply,) = fake_slack.replies_in("C0GENERAL", event["ts"])
    assert reply["ts"] == progress["ts"], "the message posted before the kill became the reply"
    assert "Hello from memo.wav." in reply["text"]
