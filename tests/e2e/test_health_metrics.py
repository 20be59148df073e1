"""``GET /healthz`` and ``GET /metrics`` of a running bot: what orchestrators and Prometheus see."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Runtime, running_bot
from tests.conftest import SettingsFactory, SlackSender, on_both_backends
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox


async def get(runtime: Runtime, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{runtime.port}{path}")


async def scrape(runtime: Runtime) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample on the metrics page, keyed by name and labels."""
    response = await get(runtime, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


async def transcribe_one(fake_slack: FakeSlack, runtime: Runtime, name: str) -> dict[str, Any]:
    event = fake_slack.message_event(files=[fake_slack.add_file(name=name, content=silent_wav())])
    await SlackSender(fake_slack, runtime).event(event)
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", event["ts"])) == ["white_check_mark"]
    )
    return event


# -- /healthz ------------------------------------------------------------------------------------


@on_both_backends
async def test_healthz_reports_every_check(bot: Runtime, fake_slack: FakeSlack) -> None:
    await _first_cycle(fake_slack, bot)
    response = await get(bot, "/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["backend"] == bot.store.backend
    assert body["backend"] == ("postgresql" if bot.settings.database_url else "sqlite")
    assert body["database"] is True
    assert body["scheduler"] is True
    assert 0 <= body["last_poll_age_seconds"] < 5
    assert body["poll_stale_after_seconds"] == 60
    assert body["jobs_in_flight"] == 0
    assert body["problems"] == []


async def test_healthz_fails_when_the_scheduler_stops(bot: Runtime) -> None:
    await bot.scheduler.shutdown()
    response = await get(bot, "/healthz")

    assert response.status_code == 503
    assert response.json()["scheduler"] is False
    assert response.json()["problems"] == ["scheduler is not running"]


async def test_healthz_fails_when_the_database_is_gone(bot: Runtime) -> None:
    await bot.scheduler.shutdown()  # no cycle may log about the closed database meanwhile
    await bot.store.close()
    response = await get(bot, "/healthz")

    assert response.status_code == 503
    assert response.json()["database"] is False
    assert response.json()["problems"][0].startswith("database:")


class SteppedClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_healthz_fails_when_the_last_poll_cycle_is_too_old(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    clock = SteppedClock()
    # A long interval: no tick comes during the test, so the clock alone ages the last cycle.
    settings = make_settings(poll_interval_seconds=30)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        await _first_cycle(fake_slack, runtime)
        assert (await get(runtime, "/healthz")).status_code == 200

        clock.now += timedelta(seconds=299)  # the limit: 10 intervals of 30 s
        assert (await get(runtime, "/healthz")).status_code == 200
        clock.now += timedelta(seconds=2)
        response = await get(runtime, "/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["scheduler"] is True and body["database"] is True
    assert body["poll_stale_after_seconds"] == 300
    assert body["last_poll_age_seconds"] == 301
    assert "no poll cycle completed for 301 s" in body["problems"][0]


async def _first_cycle(fake: FakeSlack, runtime: Runtime) -> None:
    await fake.wait_for(lambda: runtime.engine.last_cycle_at is not None, timeout=5)


# -- /metrics ------------------------------------------------------------------------------------


async def test_metrics_after_one_transcript(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    before = await scrape(bot)
    await transcribe_one(fake_slack, bot, "standup.wav")
    await fake_soniox.wait_for(lambda: fake_soniox.deleted_files)
    after = await scrape(bot)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    # State, counted from the database at scrape time.
    assert sample(after, "threadscribe_jobs", state="completed", provider="soniox") == 1
    assert sample(after, "threadscribe_jobs", state="queued", provider="soniox") == 0
    assert sample(after, "threadscribe_jobs", state="failed", provider="soket") == 0
    assert sample(after, "threadscribe_batches", state="delivered") == 1

    # Provider calls by endpoint template and status; never a raw id in a label.
    soniox = {"service": "soniox"}
    assert (
        delta(
            "threadscribe_provider_requests_total",
            **soniox,
            endpoint="POST /v1/files",
            status="201",
        )
        == 1
    )
    assert (
        delta(
            "threadscribe_provider_requests_total",
            **soniox,
            endpoint="POST /v1/transcriptions",
            status="201",
        )
        == 1
    )
    assert (
        delta(
            "threadscribe_provider_requests_total",
            **soniox,
            endpoint="GET /v1/transcriptions/{id}",
            status="200",
        )
        >= 1
    )
    assert (
        delta(
            "threadscribe_provider_requests_total",
            **soniox,
            endpoint="DELETE /v1/files/{id}",
            status="204",
        )
        == 1
    )
    assert (
        delta(
            "threadscribe_provider_requests_total",
            service="slack",
            endpoint="GET /files-pri/{id}/download/{id}",
            status="200",
        )
        == 1
    )
    endpoints = {dict(labels).get("endpoint", "") for _, labels in after}
    assert not any(
        transcription in endpoint
        for endpoint in endpoints
        for transcription in fake_soniox.transcriptions
    )

    # Poll cycles are timed; the reply went through the instrumented gateway.
    assert delta("threadscribe_poll_cycle_duration_seconds_count") >= 1
    assert delta("threadscribe_slack_api_calls_total", method="chat.postMessage") == 1


async def test_metrics_show_the_latency_of_a_delivered_transcript(
    bot: Runtime, fake_slack: FakeSlack
) -> None:
    name = "threadscribe_transcription_latency_seconds_count"
    before = sample(await scrape(bot), name, provider="soniox")
    await transcribe_one(fake_slack, bot, "latency.wav")
    assert sample(await scrape(bot), name, provider="soniox") == before + 1


async def test_metrics_count_slack_errors_by_method_and_code(
    bot: Runtime, fake_slack: FakeSlack
) -> None:
    labels = {"method": "chat.postMessage", "error": "channel_not_found"}
    before = sample(await scrape(bot), "threadscribe_slack_api_errors_total", **labels)
    fake_slack.inject(
        r"^/api/chat\.postMessage$", status=200, body={"ok": False, "error": "channel_not_found"}
    )
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    await SlackSender(fake_slack, bot).event(event)
    await fake_slack.wait_for(lambda: fake_slack.api_calls("chat.postMessage"))
    page = await _scrape_until(
        bot, lambda p: sample(p, "threadscribe_batches", state="undeliverable") == 1
    )

    assert sample(page, "threadscribe_slack_api_errors_total", **labels) == before + 1


async def test_metrics_count_the_thread_a_mention_could_not_read(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    method = {"method": "conversations.replies"}
    labels = {**method, "error": "missing_scope"}
    before = await scrape(bot)
    parent = fake_slack.message_event(text="Recording from today", subtype=None)
    fake_slack.inject(
        r"^/api/conversations\.replies$",
        status=200,
        body={"ok": False, "error": "missing_scope", "needed": "groups:history"},
    )
    mention = fake_slack.app_mention_event(fake_slack.mention("transcribe"), thread_ts=parent["ts"])

    await slack_sender.event(mention)

    (answer,) = await fake_slack.wait_for(
        lambda: [
            m["text"]
            for m in fake_slack.messages
            if m.get("thread_ts") == parent["ts"] and m.get("user") == fake_slack.bot_user_id
        ]
    )
    assert answer == "I could not read this thread's first message (missing_scope)."
    page = await scrape(bot)
    assert sample(page, "threadscribe_slack_api_calls_total", **method) == (
        sample(before, "threadscribe_slack_api_calls_total", **method) + 1
    )
    assert sample(page, "threadscribe_slack_api_errors_total", **labels) == (
        sample(before, "threadscribe_slack_api_errors_total", **labels) + 1
    )


async def test_metrics_are_served_in_socket_mode_too(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    settings = make_settings(slack_app_token=fake_slack.app_token)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        assert (await get(runtime, "/healthz")).status_code == 200
        page = await scrape(runtime)
        assert (await get(runtime, "/slack/events")).status_code in (404, 405)
    assert (
        "threadscribe_jobs",
        frozenset({"state": "queued", "provider": "soniox"}.items()),
    ) in page


async def _scrape_until(
    runtime: Runtime,
    predicate: Callable[[dict[tuple[str, frozenset[tuple[str, str]]], float]], bool],
    timeout: float = 5,
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async def wait() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        while True:
            page = await scrape(runtime)
            if predicate(page):
                return page
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(wait(), timeout)


async def test_healthz_counts_the_files_not_finished_yet(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox, slack_sender: SlackSender
) -> None:
    fake_soniox.polls_until_complete = 10**6
    files = [fake_slack.add_file(name=f"{n}.wav", content=silent_wav()) for n in ("a", "b")]
    await slack_sender.event(fake_slack.message_event(files=files))
    await fake_soniox.wait_for(lambda: len(fake_soniox.create_bodies) == 2)
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"http://127.0.0.1:{bot.port}/healthz")).json()
    assert body["jobs_in_flight"] == 2
