"""Several ``python -m bot run`` processes on one PostgreSQL, as replicas behind a load balancer:
each request reaches one of them, and every promise of "nothing lost, nothing twice" holds across
them. Each replica has a working directory (and spool) of its own, as on a machine of its own."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg

from tests.bot_process import BotProcess, bot_environment
from tests.conftest import SlackSender, final_replies
from tests.e2e.test_commands import command_answer
from tests.e2e.test_shortcut_and_mentions import send_shortcut
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox
from tests.postgres import TestSchema

#: Short, so that a killed replica's work is taken over within the test's patience.
LEASE_SECONDS = "2"


@asynccontextmanager
async def replicas(
    workdir: Path,
    slack: FakeSlack,
    soniox: FakeSoniox,
    count: int = 2,
    soket: FakeSoket | None = None,
    webhooks_to: int | None = None,
    socket_mode: bool = False,
    **settings: str,
) -> AsyncIterator[tuple[str, list[BotProcess]]]:
    """``count`` bot processes on one PostgreSQL schema of the test's own, started at once (they
    migrate it once between them); its URL and the processes. Stopped and dropped afterwards.

    ``webhooks_to``: the replica whose address is every replica's ``PUBLIC_URL``, as a load
    balancer would send it any request. ``socket_mode``: Socket Mode, without a signing secret."""
    schema = TestSchema()
    url = await schema.create()
    bots: list[BotProcess] = []
    try:
        for index in range(count):
            home = workdir / f"replica-{index}"
            home.mkdir()
            env = bot_environment(
                home, slack, soniox, soket, **{"LEASE_SECONDS": LEASE_SECONDS, **settings}
            )
            env["DATABASE_URL"] = url
            if socket_mode:
                env["SLACK_APP_TOKEN"] = slack.app_token
                del env["SLACK_SIGNING_SECRET"]
            bots.append(BotProcess(env, home, home / "bot.log"))
        if webhooks_to is not None:
            for bot in bots:
                bot.env["PUBLIC_URL"] = bots[webhooks_to].url
        await asyncio.gather(*(bot.start() for bot in bots))
        yield url, bots
    finally:
        for bot in bots:
            if bot.process is not None:
                await bot.terminate()
        await schema.drop()


def sender(slack: FakeSlack, bot: BotProcess) -> SlackSender:
    return SlackSender(slack, port=bot.port)


def bot_messages(slack: FakeSlack, event: dict[str, Any]) -> list[dict[str, Any]]:
    """Everything the bot posted in the event's thread (progress messages and replies)."""
    return slack.replies_in(event["channel"], event["ts"])


async def share(slack: FakeSlack, bot: BotProcess, name: str) -> dict[str, Any]:
    event = slack.message_event(files=[slack.add_file(name=name, content=silent_wav())])
    assert (await sender(slack, bot).event(event)).status_code == 200
    return event


def replies_posted(bot: BotProcess) -> int:
    return len(re.findall(r"batch \S+: reply posted", bot.log()))


async def test_a_replica_killed_mid_flight_leaves_its_work_to_the_other_which_answers_each_once(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**6  # nothing is answered before the kill
    async with replicas(tmp_path, fake_slack, fake_soniox, PROGRESS_AFTER_SECONDS="0") as (
        _,
        (doomed, survivor),
    ):
        events = []
        for index in range(20):
            bot = doomed if index < 10 else survivor
            events.append(await share(fake_slack, bot, f"memo-{index:02d}.wav"))
        # Mid-flight: some transcriptions started, some files still on their way.
        await fake_soniox.wait_for(lambda: len(fake_soniox.create_bodies) >= 12, timeout=20)
        await doomed.kill()
        assert all(final_replies(fake_slack, event) == [] for event in events)

        fake_soniox.polls_until_complete = 0
        await fake_slack.wait_for(
            lambda: all(final_replies(fake_slack, event) for event in events), timeout=30
        )
        await asyncio.sleep(1.0)  # time for anything posted twice to show

    for event in events:
        assert len(final_replies(fake_slack, event)) == 1, "answered once"
        (message,) = bot_messages(fake_slack, event)  # its progress message became the reply
        assert "Hello from memo-" in message["text"]
    assert replies_posted(survivor) == 20, "all 20 by the survivor"
    assert len(fake_soniox.create_bodies) == 20, "no file transcribed twice"
    stored = len(fake_soniox.files) + len(fake_soniox.deleted_files)
    assert stored == 20, "no file stored twice (an upload the kill cut short stored nothing)"


async def test_a_slack_retry_that_reaches_the_other_replica_starts_nothing_new(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    async with replicas(tmp_path, fake_slack, fake_soniox) as (_, (first, second)):
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        body = json.dumps(fake_slack.event_callback(event))
        headers = fake_slack.signed_headers(body)
        assert (await sender(fake_slack, first).post(body, headers)).status_code == 200
        retry = {**fake_slack.signed_headers(body), "X-Slack-Retry-Num": "1"}
        retry["X-Slack-Retry-Reason"] = "http_timeout"
        assert (await sender(fake_slack, second).post(body, retry)).status_code == 200

        await fake_slack.wait_for(lambda: final_replies(fake_slack, event), timeout=20)
        await fake_soniox.wait_for(lambda: fake_soniox.deleted_files)
        await asyncio.sleep(0.5)

    assert len(final_replies(fake_slack, event)) == 1
    assert len(fake_slack.downloads) == 1, "downloaded once"
    assert len(fake_soniox.create_bodies) == 1, "transcribed once"


async def test_a_webhook_sent_to_the_replica_that_does_not_hold_the_job_delivers_at_once(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 10**6
    # Neither replica polls on its own within the test: only the webhook can make it quick.
    slow = {"POLL_INTERVAL_SECONDS": "60"}
    async with replicas(tmp_path, fake_slack, fake_soniox, webhooks_to=1, **slow) as (url, bots):
        submitter, receiver = bots
        # A transcription recorded before its webhook comes.
        late = await share(fake_slack, submitter, "late.wav")
        (create,) = await fake_soniox.wait_for(lambda: fake_soniox.create_bodies)
        assert create["webhook_url"] == f"{receiver.url}/webhooks/soniox"
        transcription_id = await _submitted(url, "late.wav")
        await fake_soniox.complete(transcription_id)
        await fake_slack.wait_for(lambda: final_replies(fake_slack, late), timeout=5)

        # One that ends before the answer that started it reaches the submitter.
        fake_soniox.inject(r"^/v1/transcriptions$", method="POST", status=0, answer_delay=1.0)
        early = await share(fake_slack, submitter, "early.wav")
        (second_id,) = await fake_soniox.wait_for(
            lambda: [id_ for id_ in fake_soniox.transcriptions if id_ != transcription_id]
        )
        await fake_soniox.complete(second_id)
        await fake_slack.wait_for(lambda: final_replies(fake_slack, early), timeout=5)

    assert [d.get("status") for d in fake_soniox.webhook_deliveries] == [200, 200]
    assert len(final_replies(fake_slack, late)) == len(final_replies(fake_slack, early)) == 1


async def _submitted(url: str, filename: str) -> str:
    """The transcription id of the job of ``filename``, once its submission is recorded."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        for _ in range(200):
            cursor = await db.execute(
                "SELECT provider_job_id FROM jobs WHERE filename = %s AND state = 'submitted'",
                (filename,),
            )
            row = await cursor.fetchone()
            if row is not None:
                return str(row[0])
            await asyncio.sleep(0.05)
    raise AssertionError(f"{filename} was not submitted")


async def test_the_same_shortcut_pressed_on_two_replicas_starts_one_batch(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 3
    async with replicas(tmp_path, fake_slack, fake_soniox) as (_, (first, second)):
        message = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        channel, ts = message["channel"], message["ts"]
        acks = await asyncio.gather(
            send_shortcut(sender(fake_slack, first), channel, ts),
            send_shortcut(sender(fake_slack, second), channel, ts),
        )
        assert [ack.status_code for ack, _ in acks] == [200, 200]
        (answer,) = await fake_slack.wait_for(lambda: fake_slack.responses)
        assert "Already on it" in answer["text"]
        await fake_slack.wait_for(lambda: final_replies(fake_slack, message), timeout=20)
        await asyncio.sleep(0.5)

    assert len(final_replies(fake_slack, message)) == 1
    assert len(fake_soniox.create_bodies) == 1


async def test_a_channel_setting_changed_on_one_replica_is_used_by_the_other_at_once(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    fake_soket.estimated_completion_seconds = 0.1
    async with replicas(tmp_path, fake_slack, fake_soniox, soket=fake_soket) as (_, bots):
        setter, user = bots
        # The user replica reads the channel's settings first, before they change.
        before = await share(fake_slack, user, "before.wav")
        await fake_slack.wait_for(lambda: final_replies(fake_slack, before), timeout=20)
        assert not fake_soket.uploads

        answer = await command_answer(sender(fake_slack, setter), "provider soket")
        assert "now uses *Soket.ai*" in answer
        after = await share(fake_slack, user, "after.wav")
        await fake_slack.wait_for(lambda: final_replies(fake_slack, after), timeout=20)

    assert fake_soket.uploads, "the other replica sent it to Soket"
    assert len(fake_soniox.create_bodies) == 1, "only the file shared before went to Soniox"


async def test_the_soniox_pending_cap_holds_across_replicas(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_soniox.polls_until_complete = 4  # each transcription stays pending a while
    async with replicas(tmp_path, fake_slack, fake_soniox, SONIOX_MAX_PENDING="2") as (_, bots):
        events = [await share(fake_slack, bots[index % 2], f"m{index}.wav") for index in range(8)]
        await fake_slack.wait_for(
            lambda: all(final_replies(fake_slack, event) for event in events), timeout=40
        )

    assert fake_soniox.peak_pending <= 2, "two at most, between both replicas"
    assert len(fake_soniox.create_bodies) == 8


async def test_socket_mode_replicas_each_open_a_connection_and_answer_each_file_once(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    async with replicas(tmp_path, fake_slack, fake_soniox, socket_mode=True):
        await fake_slack.wait_for(lambda: fake_slack.connections == 2)
        events = []
        for index in range(6):
            event = fake_slack.message_event(
                files=[fake_slack.add_file(name=f"s{index}.wav", content=silent_wav())]
            )
            payload = fake_slack.event_callback(event)
            # Slack spreads envelopes over the connections, and may retry on another one.
            sent = await fake_slack.send_envelope(payload, connection=index)
            await fake_slack.wait_for_ack(sent)
            again = await fake_slack.send_envelope(
                payload, connection=index + 1, retry_attempt=1, retry_reason="timeout"
            )
            await fake_slack.wait_for_ack(again)
            events.append(event)
        await fake_slack.wait_for(
            lambda: all(final_replies(fake_slack, event) for event in events), timeout=20
        )
        await asyncio.sleep(0.5)

    for event in events:
        assert len(final_replies(fake_slack, event)) == 1
    assert len(fake_soniox.create_bodies) == 6


async def test_a_transfer_longer_than_a_lease_keeps_its_lease_and_is_not_taken_over(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    async with replicas(tmp_path, fake_slack, fake_soniox, LEASE_SECONDS="1") as (_, bots):
        # The download takes three leases' time: only renewals keep it this replica's.
        fake_slack.inject(r"^/files-pri/", delay=3.0, status=0)
        event = await share(fake_slack, bots[0], "slow.wav")
        await fake_slack.wait_for(lambda: final_replies(fake_slack, event), timeout=20)
        await asyncio.sleep(0.5)

    assert len(fake_slack.requests_to(r"^/files-pri/")) == 1, "downloaded by one replica, once"
    assert len(final_replies(fake_slack, event)) == 1
