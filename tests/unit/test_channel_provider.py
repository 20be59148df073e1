"""A channel's provider choice is read once, when a message is taken: changing it later affects new
messages only, so work already at one provider is never asked for at another."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.app import Runtime, build_runtime
from storage.models import BatchState, ChannelSettings, JobState
from tests.conftest import SettingsFactory
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

CHANNEL = "C0SWITCH"


class ManualClock:
    """The engine's clock, moved by the test so due work is due without sleeping."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def runtime(make_settings: SettingsFactory, clock: ManualClock) -> AsyncIterator[Runtime]:
    """The bot's parts without its scheduler: the test runs each poll cycle itself."""
    runtime = await build_runtime(make_settings(), clock=clock)
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def choose(runtime: Runtime, provider: str, clock: ManualClock) -> None:
    await runtime.store.save_channel_settings(
        FAKE_WORKSPACE, ChannelSettings(channel_id=CHANNEL, provider=provider), clock()
    )


async def run_until_delivered(runtime: Runtime, batch_id: str, clock: ManualClock) -> None:
    for _ in range(20):
        await runtime.engine.run_cycle()
        await runtime.engine.drain()
        batch = await runtime.store.get_batch(batch_id)
        assert batch is not None
        if batch.state is BatchState.DELIVERED:
            return
        clock.advance(5)
    raise AssertionError(f"batch {batch_id} was not delivered")


async def test_batch_keeps_its_provider_when_the_channel_setting_changes_mid_flight(
    runtime: Runtime,
    clock: ManualClock,
    fake_slack: FakeSlack,
    fake_soket: FakeSoket,
    fake_soniox: FakeSoniox,
) -> None:
    fake_soket.polls_until_complete = 4  # still running when the setting changes
    await choose(runtime, "soket", clock)
    file = fake_slack.add_file(name="handover.wav", content=silent_wav())
    event = fake_slack.message_event(files=[file], channel=CHANNEL)
    batch = await runtime.intake.take_message(event, FAKE_WORKSPACE)
    assert batch is not None and batch.provider == "soket"

    # Upload and submit at Soket, then poll: the file is still being transcribed.
    for _ in range(5):
        await runtime.engine.run_cycle()
        await runtime.engine.drain()
        clock.advance(5)
        (job,) = await runtime.store.jobs_of(batch.id)
        if job.state is JobState.PROCESSING:
            break
    assert job.state is JobState.PROCESSING and job.provider_job_id is not None
    assert len(fake_soket.batch_bodies) == 1

    await choose(runtime, "soniox", clock)
    await run_until_delivered(runtime, batch.id, clock)

    (job,) = await runtime.store.jobs_of(batch.id)
    assert job.provider == "soket" and job.transcript is not None
    after = await runtime.store.get_batch(batch.id)
    assert after is not None and after.provider == "soket"
    assert fake_soniox.requests == []
    assert len(fake_soket.requests_to(r"/files/upload$", "POST")) == 1
    (reply,) = fake_slack.replies_in(CHANNEL, event["ts"])
    assert "Hello from handover.wav." in reply["text"]

    # The new choice applies to the next message.
    later = fake_slack.message_event(
        files=[fake_slack.add_file(name="next.wav", content=silent_wav())], channel=CHANNEL
    )
    next_batch = await runtime.intake.take_message(later, FAKE_WORKSPACE)
    assert next_batch is not None and next_batch.provider == "soniox"
    (next_job,) = await runtime.store.jobs_of(next_batch.id)
    assert next_job.provider == "soniox"
