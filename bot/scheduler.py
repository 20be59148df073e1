"""APScheduler as a clock: one interval job that runs one poll cycle, and one that renews the
leases of the work this process holds. No job state lives here.

The first cycle runs at start, which resumes everything a previous process left in flight. New work
(a shared file, a finished transfer) asks for a cycle now with :meth:`PollScheduler.kick` instead
of waiting for the next tick. The scheduler is built before what it runs, so that the engine can be
given ``kick`` when it is built; the cycle itself is given at :meth:`PollScheduler.start`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING

from bot import metrics

log = logging.getLogger(__name__)

JOB_ID = "poll-cycle"
RENEW_JOB_ID = "renew-leases"


class PollScheduler:
    def __init__(self, *, interval_seconds: float) -> None:
        self._cycle: Callable[[], Awaitable[None]] | None = None
        self._interval = interval_seconds
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._running_cycle = False
        self._again = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.state == STATE_RUNNING)

    def start(
        self,
        cycle: Callable[[], Awaitable[None]],
        *,
        renew: Callable[[], Awaitable[None]] | None = None,
        renew_every: float = 10.0,
    ) -> None:
        """Run ``cycle`` now, then every interval and whenever kicked; and ``renew`` every
        ``renew_every`` seconds, beside the cycle (a long cycle must not let leases run out)."""
        self._cycle = cycle
        if renew is not None:
            self._scheduler.add_job(
                _logged(renew, "renewing the leases failed"),
                "interval",
                seconds=renew_every,
                id=RENEW_JOB_ID,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self._scheduler.add_job(
            self._tick,
            "interval",
            seconds=self._interval,
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )
        self._scheduler.start()

    def kick(self) -> None:
        """Run a cycle as soon as possible (right after the current one, if one is running)."""
        if self._running_cycle:
            self._again = True
        elif self._scheduler.state == STATE_RUNNING:
            self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop ticking; let a cycle in progress finish its writes (up to ``timeout``) first."""
        if not self._scheduler.running:
            return
        # Shutting APScheduler down cancels a running job mid-step; pausing does not.
        self._scheduler.pause()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("a poll cycle was still running at shutdown; it is cancelled")
        self._scheduler.shutdown(wait=False)

    async def _tick(self) -> None:
        assert self._cycle is not None, "started with its cycle"
        self._running_cycle = True
        self._idle.clear()
        try:
            while True:
                self._again = False
                try:
                    with metrics.poll_cycle_timer():
                        await self._cycle()
                except Exception:
                    # A bug in one cycle must not stop the clock; the next tick tries again.
                    log.exception("poll cycle failed")
                if not self._again or self._scheduler.state != STATE_RUNNING:
                    break
        finally:
            self._running_cycle = False
            self._idle.set()


def _logged(work: Callable[[], Awaitable[None]], failed: str) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await work()
        except Exception:
            # The next tick tries again; a lease lasts three ticks.
            log.warning(failed, exc_info=True)

    return run
