"""What becomes of jobs whose step went wrong: a retry, a wait, or a failure."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from bot.errors import (
    AccountProblem,
    NotReadyYet,
    PermanentError,
    TemporaryError,
    TranscribeError,
)
from bot.providers.base import Provider
from bot.work import texts
from bot.work.accounts import Accounts
from bot.work.context import WorkContext, failure_of, mirror_failure
from storage.models import Job

log = logging.getLogger(__name__)

#: Longest wait between two attempts of a failing step.
MAX_BACKOFF_SECONDS = 300.0

#: One step of a unit: what it raises decides the retry or the failure.
Step = Callable[[Provider, list[Job]], Awaitable[None]]


def backoff_seconds(attempts: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter over [base/2, base]: 2 s, 4 s, … up to 5 minutes."""
    base = min(MAX_BACKOFF_SECONDS, 2.0**attempts)
    return rng.uniform(base / 2, base)


class Verdicts:
    def __init__(self, ctx: WorkContext, accounts: Accounts) -> None:
        self._ctx = ctx
        self._accounts = accounts

    async def run_step(self, jobs: list[Job], step: Step) -> None:
        """Run one step of a unit; whatever it raises decides the retry or the failure."""
        provider = self._ctx.providers.get(jobs[0].provider)
        if provider is None:
            await self.fail(jobs, texts.unconfigured(jobs[0].provider))
            return
        try:
            await step(provider, jobs)
        except Exception as exc:
            await self.step_failed(jobs, exc)

    async def step_failed(self, jobs: Sequence[Job], exc: Exception) -> None:
        """What a step of ``jobs`` raised decides the retry or the failure of those not done."""
        unfinished = [job for job in jobs if not job.state.is_terminal]
        if isinstance(exc, TranscribeError):
            await self._handle_error(unfinished, exc)
            return
        # A bug must not lose the work: retried with backoff, failed at the age limit.
        log.error("unexpected error in a step of %s", [job.id for job in jobs], exc_info=exc)
        await self._handle_error(unfinished, TemporaryError(f"unexpected: {exc!r}"))

    async def _handle_error(self, jobs: list[Job], exc: TranscribeError) -> None:
        if not jobs:
            return
        if isinstance(exc, PermanentError):
            log.warning("jobs %s failed: %s", [job.id for job in jobs], exc.detail)
            await self.fail(jobs, exc)
            return
        if isinstance(exc, AccountProblem):
            await self._wait_for_account(jobs, exc)
            return
        assert isinstance(exc, TemporaryError)
        now = self._ctx.clock()
        max_age = self._ctx.config.max_job_age
        # Counted from when this step started waiting or failing, not from creation: work that
        # queued for long still gets its full allowance. It covers waiting too: an upload that
        # never becomes ready must end.
        since = min(job.stalled_since or now for job in jobs)
        if now - since > max_age:
            hours = max_age.total_seconds() / 3600
            await self.fail(
                jobs,
                PermanentError(
                    f"gave up after {hours:g} h: {exc.detail}",
                    user_message=texts.gave_up(hours, texts.TRYING, exc.user_message),
                ),
            )
            return
        if isinstance(exc, NotReadyYet):
            delay = exc.retry_after or self._ctx.config.poll_interval
            await self._ctx.store.postpone_jobs(
                [job.id for job in jobs],
                until=now + timedelta(seconds=delay),
                stalled_since=since,
                now=now,
            )
            return
        attempts = max(job.attempts for job in jobs) + 1
        delay = (
            exc.retry_after
            if exc.retry_after is not None
            else backoff_seconds(attempts, self._ctx.rng)
        )
        log.warning(
            "jobs %s: temporary failure (attempt %d, next in %.1fs): %s",
            [job.id for job in jobs],
            attempts,
            delay,
            exc.detail,
        )
        await self._ctx.store.schedule_retry(
            [job.id for job in jobs],
            attempts=attempts,
            retry_at=now + timedelta(seconds=delay),
            detail=exc.detail,
            stalled_since=since,
            now=now,
        )

    async def _wait_for_account(self, jobs: Sequence[Job], exc: AccountProblem) -> None:
        """Hold ``jobs`` until their provider's account works again (at most the age limit)."""
        now = self._ctx.clock()
        provider = jobs[0].provider
        until = await self._accounts.retry_at(jobs, exc, now)
        if until is None:
            return  # the account worked again meanwhile: they go on next cycle
        ids = [job.id for job in jobs]
        max_age = self._ctx.config.max_job_age
        # Counted from when they started waiting: a file may wait for an admin as long as it
        # may keep failing, and no longer.
        since = min(job.stalled_since or now for job in jobs)
        if now - since > max_age:
            hours = max_age.total_seconds() / 3600
            await self.fail(
                jobs,
                PermanentError(
                    f"gave up after {hours:g} h: {exc.detail}",
                    user_message=texts.gave_up(hours, texts.WAITING, exc.user_message),
                ),
            )
            return
        await self._ctx.store.hold_for_account(
            ids, provider=provider, until=until, stalled_since=since, detail=exc.detail, now=now
        )
        for job in jobs:
            job.held_by = provider
        if not self._accounts.refuses(provider):
            # The account worked again while these were being held: they go on with the rest.
            await self._ctx.store.release_jobs(ids, self._ctx.clock())

    async def fail(
        self, jobs: Sequence[Job], exc: TranscribeError, *, provider_answer: Any = None
    ) -> None:
        """Fail ``jobs`` for good with ``exc``'s reason, and drop their spool files."""
        if not jobs:
            return
        now = self._ctx.clock()
        failure = failure_of(exc, provider_answer)
        moved = await self._ctx.store.fail_jobs([job.id for job in jobs], failure, now)
        for job in jobs:
            if job.id in moved:
                mirror_failure(job, failure, now)
            # Not moved: it had finished already, and needs its spool no more than a failed one.
            await self._ctx.drop_spool(job)
