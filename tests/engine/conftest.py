"""The engine built directly, without sockets: a real SQLite store in the test's directory, and
in-memory stand-ins for the provider, Slack's threads and Slack's file downloads."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.work import Engine, EngineConfig
from storage.models import Batch, Job, JobKind, NewBatch, NewJob
from storage.sqlite import SQLiteStore
from storage.store import Store
from tests.conftest import ManualClock
from tests.engine.doubles import Crash, LocalDownloader, MemoryProvider, RecordingSlack

POLL_INTERVAL = 5.0
CHANNEL = "C0ENGINE"

_messages = itertools.count(1)


@dataclass
class World:
    """The store and the stand-ins, and an engine over them (a new one after a crash)."""

    store: Store
    clock: ManualClock
    provider: MemoryProvider
    slack: RecordingSlack
    downloader: LocalDownloader
    spool: Path
    engine: Engine

    def new_engine(
        self, *, wake: Callable[[], None] = lambda: None, owner: str | None = None, **config: Any
    ) -> Engine:
        """An engine as a process starting over builds it: nothing kept but the database."""
        values: dict[str, Any] = {
            "spool_dir": self.spool,
            "max_file_bytes": 10 * 1024 * 1024,
            "max_job_age": timedelta(hours=6),
            "poll_interval": POLL_INTERVAL,
            "progress_after": timedelta(seconds=5),
            **config,
        }
        self.engine = Engine(
            store=self.store,
            providers={self.provider.name: self.provider},
            slack=self.slack,
            downloader=self.downloader,
            config=EngineConfig(**values),
            clock=self.clock,
            rng=random.Random(7),
            wake=wake,
            owner=owner,
        )
        return self.engine

    async def share(self, *names: str, team: str = "T1") -> Batch:
        """A message with a Slack file for each of ``names``, taken as intake takes it, in the
        workspace ``team``."""
        ts = f"1767225600.{next(_messages):06d}"
        jobs = []
        for name in names:
            url = f"https://files.slack.com/{ts}/{name}"
            self.downloader.contents[url] = b"RIFF" + name.encode() * 100
            jobs.append(
                NewJob(
                    kind=JobKind.SLACK_FILE,
                    filename=name,
                    slack_file_id=f"F{name}",
                    download_url=url,
                    mimetype="audio/wav",
                    dedupe_key=f"{team}:{CHANNEL}:{ts}:{name}",
                )
            )
        batch = await self.store.create_batch(
            NewBatch(team, CHANNEL, ts, ts, "U1", self.provider.name, "upload"),
            jobs,
            self.clock(),
        )
        assert batch is not None
        return batch

    async def cycle(self, seconds: float = POLL_INTERVAL) -> None:
        """Move the clock, run one cycle and wait for the transfers it started."""
        self.clock.advance(seconds=seconds)
        await self.engine.run_cycle()
        await self.engine.drain()

    async def crash(self, **config: Any) -> None:
        """Run cycles until the crash asked for has happened, then start a new engine."""

        def pending() -> bool:
            return bool(self.provider.failures.crash_after or self.slack.failures.crash_after)

        for _ in range(10):
            if not pending():
                break
            # In a quick step, the crash ends the cycle; in a transfer, its task.
            try:
                await self.cycle()
            except* Crash:
                pass
        assert not pending(), "the crash happened"
        # What the dead process had running dies with it.
        await self.engine.stop()
        self.new_engine(**config)

    async def until(self, done: Callable[[], Any], *, seconds: float = POLL_INTERVAL) -> None:
        for _ in range(30):
            if done():
                return
            await self.cycle(seconds)
        raise AssertionError("not reached")

    async def jobs(self, batch: Batch) -> list[Job]:
        return await self.store.jobs_of(batch.id)

    async def batch(self, batch: Batch) -> Batch:
        found = await self.store.get_batch(batch.id)
        assert found is not None
        return found


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = await SQLiteStore.open(tmp_path / "threadscribe.db")
    clock = ManualClock()
    made = World(
        store=store,
        clock=clock,
        provider=MemoryProvider(),
        slack=RecordingSlack(clock),
        downloader=LocalDownloader(),
        spool=tmp_path / "spool",
        engine=None,  # type: ignore[arg-type]
    )
    made.new_engine()
    try:
        yield made
    finally:
        await made.engine.stop()
        await asyncio.sleep(0)
        await store.close()
