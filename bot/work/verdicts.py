"""The one place that writes what becomes of jobs whose step went wrong: a retry, a wait, or a
failure, as :class:`~bot.work.retry.RetryPolicy` decides."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bot.errors import AccountProblem, PermanentError, TemporaryError, TranscribeError
from bot.messages import work as texts
from bot.providers.base import Provider
from bot.work.accounts import Accounts
from bot.work.context import WorkContext, failure_of, mirror_failure
from bot.work.retry import Decision, Fail, Retry, Wait
from storage.models import Job

log = logging.getLogger(__name__)

#: One step of a unit: what it raises decides the retry or the failure.
Step = Callable[[Provider, list[Job]], Awaitable[None]]


class Verdicts:
    def __init__(self, ctx: WorkContext, accounts: Accounts) -> None:
        self._ctx = ctx
        self._accounts = accounts

    async def run_step(self, jobs: list[Job], step: Step) -> None:
        """Run one step of a unit; whatever it raises decides the retry or the failure."""
        provider = self._ctx.providers.get(jobs[0].provider)
        if provider is None:
            name = jobs[0].provider
            await self.fail(
                jobs,
                PermanentError(
                    f"provider {name} is not configured", user_message=texts.unconfigured(name)
                ),
            )
            return
        try:
            await step(provider, jobs)
        except Exception as exc:
            await self.step_failed(jobs, exc)

    async def step_failed(self, jobs: Sequence[Job], exc: Exception) -> None:
        """What a step of ``jobs`` raised decides the retry or the failure of those not done."""
        unfinished = [job for job in jobs if not job.state.is_terminal]
        if not isinstance(exc, TranscribeError):
            # A bug must not lose the work: retried with backoff, failed at the age limit.
            log.error("unexpected error in a step of %s", [job.id for job in jobs], exc_info=exc)
            exc = TemporaryError(f"unexpected: {exc!r}")
        if not unfinished:
            return
        if isinstance(exc, PermanentError):
            log.warning("jobs %s failed: %s", [job.id for job in unfinished], exc.detail)
        now = self._ctx.clock()
        account_retry_at = None
        if isinstance(exc, AccountProblem):
            account_retry_at = await self._accounts.retry_at(unfinished, exc, now)
            if account_retry_at is None:
                return  # the account worked again meanwhile: they go on next cycle
        decision = self._ctx.retry.decide(
            exc,
            attempts=max(job.attempts for job in unfinished),
            # Counted from when this step started waiting or failing, not from creation.
            since=min(job.stalled_since or now for job in unfinished),
            now=now,
            account_retry_at=account_retry_at,
        )
        await self.apply(unfinished, decision, detail=exc.detail)

    async def apply(self, jobs: Sequence[Job], decision: Decision, *, detail: str = "") -> None:
        """Write ``decision`` for ``jobs``."""
        ids = [job.id for job in jobs]
        now = self._ctx.clock()
        if isinstance(decision, Fail):
            await self.fail(jobs, decision.error)
        elif isinstance(decision, Retry):
            log.warning(
                "jobs %s: temporary failure (attempt %d, next in %.1fs): %s",
                ids,
                decision.attempts,
                (decision.at - now).total_seconds(),
                decision.detail,
            )
            await self._ctx.store.schedule_retry(
                ids,
                attempts=decision.attempts,
                retry_at=decision.at,
                detail=decision.detail,
                stalled_since=decision.since,
                now=now,
            )
        elif decision.held_by is not None:
            await self._hold(jobs, decision, decision.held_by, detail)
        else:
            await self._ctx.store.postpone_jobs(
                ids, until=decision.until, stalled_since=decision.since, now=now
            )

    async def _hold(self, jobs: Sequence[Job], wait: Wait, provider: str, detail: str) -> None:
        """Hold ``jobs`` until their provider's account works again."""
        ids = [job.id for job in jobs]
        now = self._ctx.clock()
        await self._ctx.store.hold_for_account(
            ids,
            provider=provider,
            until=wait.until,
            stalled_since=wait.since or now,
            detail=detail,
            now=now,
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
