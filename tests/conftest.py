"""Shared fixtures: the loopback fakes, settings pointing at them, and a running bot."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.app import Runtime, running_bot
from bot.config import Settings, load_settings
from tests.fakes.slack import FakeSlack
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox
from tests.postgres import TestSchema

SettingsFactory = Callable[..., Settings]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_soniox() -> AsyncIterator[FakeSoniox]:
    fake = FakeSoniox()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_soket() -> AsyncIterator[FakeSoket]:
    fake = FakeSoket()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def database(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, str]]:
    """The settings choosing the database of the test's bot: none, so SQLite at DATABASE_PATH;
    or, for a test marked :data:`on_both_backends` and run on ``postgresql``, DATABASE_URL of a
    schema of the test's own (``tests/postgres.py``), dropped afterwards."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield {}
        return
    schema = TestSchema()
    try:
        yield {"database_url": await schema.create()}
    finally:
        await schema.drop()


#: Runs a test once on SQLite and once on PostgreSQL: its bot's whole work on each backend.
on_both_backends = pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)


def environment_of(database: dict[str, str]) -> dict[str, str]:
    """The ``database`` fixture's settings as the variables of a bot process."""
    return {name.upper(): value for name, value in database.items()}


@pytest.fixture
def make_settings(
    tmp_path: Path,
    fake_slack: FakeSlack,
    fake_soniox: FakeSoniox,
    fake_soket: FakeSoket,
    database: dict[str, str],
) -> SettingsFactory:
    """Settings for a bot wired to the fakes, in HTTP mode unless ``slack_app_token`` is given."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": fake_slack.bot_token,
            "slack_signing_secret": fake_slack.signing_secret,
            "slack_app_token": "",
            "slack_api_url": fake_slack.api_url,
            "soniox_api_key": fake_soniox.api_key,
            "soniox_api_url": fake_soniox.api_url,
            "soket_api_token": fake_soket.token,
            "soket_api_url": fake_soket.api_url,
            "database_path": tmp_path / "threadscribe.db",
            "poll_interval_seconds": 0.2,
            "port": 0,
            "_env_file": None,
            # SQLite unless the test asks for PostgreSQL, whatever the runner's environment says.
            "database_url": "",
            **database,
        }
        values.update(overrides)
        return load_settings(**values)

    return factory


@pytest.fixture
async def bot(make_settings: SettingsFactory) -> AsyncIterator[Runtime]:
    """The bot in HTTP mode, started the way ``python -m bot run`` starts it."""
    async with running_bot(make_settings(), host="127.0.0.1") as runtime:
        yield runtime


class SlackSender:
    """Sends signed Events API requests to a bot in HTTP mode, as Slack does."""

    def __init__(self, fake: FakeSlack, runtime: Runtime | None = None, *, port: int = 0) -> None:
        """To the bot of ``runtime`` in this process, or to one listening on ``port``."""
        self.fake = fake
        self.url = f"http://127.0.0.1:{runtime.port if runtime else port}/slack/events"

    async def post(self, body: str, headers: dict[str, str]) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.post(self.url, content=body, headers=headers)

    async def event(self, event: dict[str, Any], **headers: str) -> httpx.Response:
        body = json.dumps(self.fake.event_callback(event))
        return await self.post(body, {**self.fake.signed_headers(body), **headers})


@pytest.fixture
def slack_sender(fake_slack: FakeSlack, bot: Runtime) -> SlackSender:
    return SlackSender(fake_slack, bot)


class ManualClock:
    """A clock the test moves: backoff delays and age limits pass without waiting."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime.now(UTC)

    def __call__(self) -> Any:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


async def cycles(runtime: Runtime, clock: ManualClock, count: int, **step: float) -> None:
    """``count`` poll cycles, the clock moved by ``step`` (timedelta's arguments) before each;
    each waits for the transfers it started."""
    for _ in range(count):
        clock.advance(**step)
        await runtime.engine.run_cycle()
        await runtime.engine.drain()
        await asyncio.sleep(0.01)


def final_replies(fake: FakeSlack, event: dict[str, Any]) -> list[dict[str, Any]]:
    """The bot's transcript replies in the event's thread (not progress messages)."""
    thread = event.get("thread_ts") or event["ts"]
    return [
        message
        for message in fake.messages
        if message.get("thread_ts") == thread
        and ((message.get("metadata") or {}).get("event_payload") or {}).get("final")
    ]
