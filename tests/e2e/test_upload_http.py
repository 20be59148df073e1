"""A file shared in a channel comes back as a transcript in its thread: HTTP mode."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Runtime
from tests.conftest import SlackSender, on_both_backends
from tests.fakes.slack import FORM_CONTENT_TYPE, FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE


@on_both_backends
async def test_shared_wav_gets_transcript_reply_in_its_thread(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox, slack_sender: SlackSender
) -> None:
    file = fake_slack.add_file(name="standup.wav", content=silent_wav())
    event = fake_slack.message_event(files=[file])

    response = await slack_sender.event(event)
    assert response.status_code == 200

    replies = await fake_slack.wait_for(
        lambda: [m for m in fake_slack.replies_in("C0GENERAL", event["ts"]) if m.get("blocks")]
    )
    assert len(replies) == 1
    reply = replies[0]
    assert reply["thread_ts"] == event["ts"]
    assert "standup.wav" in reply["text"]
    assert "Speaker 1 [00:00]: Hello from standup.wav." in reply["text"]
    assert "Speaker 2" in reply["text"]

    # The reaction moved from "working" to "done".
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["white_check_mark"]
    )
    # Soniox keeps nothing once the reply is posted.
    await fake_soniox.wait_for(lambda: fake_soniox.deleted_transcriptions)
    await fake_soniox.wait_for(lambda: fake_soniox.deleted_files)
    assert not set(fake_soniox.files) - set(fake_soniox.deleted_files)
    create = fake_soniox.create_bodies[0]
    assert create["model"] == "stt-async-v5"
    assert create["enable_speaker_diarization"] is True
    # The bot downloaded with its token, and only once.
    assert fake_slack.downloads == [{"file_id": file["id"], "authorized": True}]


async def test_reply_goes_into_the_existing_thread(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    parent = fake_slack.message_event(text="Notes from the call", subtype=None)
    file = fake_slack.add_file(
        name="followup.m4a", mimetype="audio/mp4", filetype="m4a", content=silent_wav()
    )
    event = fake_slack.message_event(files=[file], thread_ts=parent["ts"])

    assert (await slack_sender.event(event)).status_code == 200

    replies = await fake_slack.wait_for(
        lambda: [m for m in fake_slack.messages if m.get("thread_ts") == parent["ts"]]
    )
    assert "followup.m4a" in replies[0]["text"]


async def test_non_media_files_are_ignored_silently(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    pdf = fake_slack.add_file(
        name="agenda.pdf", mimetype="application/pdf", filetype="pdf", content=b"%PDF-1.4"
    )
    event = fake_slack.message_event(files=[pdf])

    assert (await slack_sender.event(event)).status_code == 200
    await bot.engine.run_cycle()

    assert fake_slack.messages == []
    assert fake_slack.downloads == []
    assert ("C0GENERAL", event["ts"]) not in fake_slack.reactions


async def test_forged_request_gets_401_and_causes_no_work(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    file = fake_slack.add_file(name="memo.wav", content=silent_wav())
    body = json.dumps(fake_slack.event_callback(fake_slack.message_event(files=[file])))

    wrong_secret = await slack_sender.post(body, fake_slack.signed_headers(body, secret="nope"))
    stale = await slack_sender.post(
        body, fake_slack.signed_headers(body, timestamp=int(time.time()) - 600)
    )
    unsigned = await slack_sender.post(body, {"Content-Type": "application/json"})

    assert [wrong_secret.status_code, stale.status_code, unsigned.status_code] == [401, 401, 401]
    await bot.engine.run_cycle()
    assert await bot.store.unfinished_jobs() == []
    assert fake_slack.downloads == []
    assert fake_slack.messages == []


async def slack_events_answers(runtime: Runtime) -> dict[str, float]:
    """``threadscribe_http_requests_total`` of ``/slack/events`` by status, from ``/metrics``."""
    async with httpx.AsyncClient() as client:
        page = await client.get(f"http://127.0.0.1:{runtime.port}/metrics")
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(page.text)
        for sample in family.samples
        if sample.name == "threadscribe_http_requests_total"
        and sample.labels.get("path") == "/slack/events"
    }


async def test_slacks_ssl_check_gets_an_empty_200_and_nothing_is_done(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender, caplog: pytest.LogCaptureFixture
) -> None:
    before = await slack_events_answers(bot)

    with caplog.at_level(logging.INFO):
        answer = await slack_sender.post(
            fake_slack.ssl_check_body(), {"Content-Type": FORM_CONTENT_TYPE}
        )

    assert (answer.status_code, answer.text) == (200, "")
    after = await slack_events_answers(bot)
    assert after.get("401", 0) == before.get("401", 0), "not counted as a forged request"
    assert after.get("200", 0) == before.get("200", 0) + 1
    assert [r for r in caplog.records if r.name.startswith("bot")] == [], "nothing logged"
    await bot.engine.run_cycle()
    assert fake_slack.messages == [] and fake_slack.responses == []
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


async def test_a_request_carrying_ssl_check_and_more_is_still_verified(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    command = fake_slack.slash_command_body("https://media.example.com/a.mp3")
    riders = {
        "a command": f"{command}&ssl_check=1",
        "a second ssl_check": "ssl_check=1&ssl_check=1",
        "another field": f"{fake_slack.ssl_check_body()}&text=status",
        "ssl_check=0": "ssl_check=0",
    }
    answers = {
        name: (await slack_sender.post(body, {"Content-Type": FORM_CONTENT_TYPE})).status_code
        for name, body in riders.items()
    }
    as_json = await slack_sender.post('{"ssl_check": "1"}', {"Content-Type": "application/json"})

    assert answers == dict.fromkeys(riders, 401)
    assert as_json.status_code == 401
    await bot.engine.run_cycle()
    assert fake_slack.messages == [] and fake_slack.responses == []
    assert await bot.store.running_batches(FAKE_WORKSPACE, "C0GENERAL") == []


async def test_healthz_reports_ok(bot: Runtime, slack_sender: SlackSender) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{bot.port}/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["database"] is True


async def test_reactions_and_downloads_wait_while_other_acks_are_owed(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    await asyncio.sleep(0.1)  # let the start-up cycle pass
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    with bot.acks.answering():  # as while the rest of a burst is still being answered
        assert (await slack_sender.event(event)).status_code == 200
        await asyncio.sleep(0.3)
        assert fake_slack.api_calls("reactions.add") == []
        assert fake_slack.downloads == []
    await fake_slack.wait_for(lambda: fake_slack.api_calls("reactions.add"), timeout=2)
    await fake_slack.wait_for(lambda: fake_slack.downloads, timeout=2)
