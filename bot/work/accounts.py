"""Provider accounts that refuse new work (a used-up balance): the work waits for an admin.

While an account refuses a step, one call a minute tries it again (the unit whose turn comes) and
the rest of the provider's work at that step waits without a call: a thousand files must not each
hear the same refusal. The problem is recorded before anyone is told, so a restart still knows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.errors import AccountProblem
from bot.providers.base import Provider
from bot.work.context import WorkContext
from bot.work.retry import ACCOUNT_RETRY_SECONDS
from storage.models import Job, JobState, ProviderAccountProblem

log = logging.getLogger(__name__)

#: How often the log says again that a provider account still refuses new work.
ACCOUNT_REMINDER_SECONDS = 900.0

#: The steps a provider account can refuse.
UPLOAD_STEP = "upload"
SUBMIT_STEP = "submit"


@dataclass
class _StandingProblem:
    """A provider account that refuses new work, as kept between cycles."""

    record: ProviderAccountProblem
    #: When one call may try the account again.
    next_probe_at: datetime
    logged_at: datetime


class HeldBack(AccountProblem):
    """Raised for work held back, without a call, while its provider's account problem stands."""


class Accounts:
    """The account problems that stand, by provider: read from the database by the first cycle,
    kept up to date by every cycle after it."""

    def __init__(self, ctx: WorkContext) -> None:
        self._ctx = ctx
        self._standing: dict[str, _StandingProblem] | None = None

    async def load(self) -> None:
        """Take over the account problems a previous run recorded (once): the work that waits
        for them stays held, and one call tries each account again at once."""
        if self._standing is not None:
            return
        now = self._ctx.clock()
        self._standing = {}
        for record in await self._ctx.store.account_problems():
            self._standing[record.provider] = _StandingProblem(
                record=record, next_probe_at=now, logged_at=now
            )
            log.error(
                "the %s account still refused new work when the bot last ran (%s, since %s): "
                "trying it again now",
                record.provider,
                record.reason,
                record.since.isoformat(timespec="seconds"),
            )

    def refuses(self, provider: str) -> bool:
        return provider in (self._standing or {})

    def raise_if_refuses(self, provider: Provider, step: str) -> None:
        """Raise the provider's standing account problem if ``step`` must wait for it; let the
        call through when it is time to try the account again."""
        standing = (self._standing or {}).get(provider.name)
        if standing is None or step not in standing.record.steps:
            return
        now = self._ctx.clock()
        if now >= standing.next_probe_at:
            standing.next_probe_at = now + timedelta(seconds=ACCOUNT_RETRY_SECONDS)
            return
        record = standing.record
        raise HeldBack(
            record.detail,
            provider=record.provider,
            reason=record.reason,
            user_message=record.message,
        )

    async def retry_at(
        self, jobs: Sequence[Job], exc: AccountProblem, now: datetime
    ) -> datetime | None:
        """When ``jobs``, refused by their provider's account (or held back for it), try again;
        None when the account works again meanwhile and they simply go on."""
        if isinstance(exc, HeldBack):
            held = (self._standing or {}).get(jobs[0].provider)
            return None if held is None else held.next_probe_at
        step = UPLOAD_STEP if any(job.state is JobState.UPLOADING for job in jobs) else SUBMIT_STEP
        return (await self._refused(jobs[0].provider, step, exc, now)).next_probe_at

    async def _refused(
        self, provider: str, step: str, exc: AccountProblem, now: datetime
    ) -> _StandingProblem:
        """Record that ``provider``'s account refused ``step``, and tell the operator."""
        if self._standing is None:
            self._standing = {}
        standing = self._standing.get(provider)
        if (
            standing is None
            or standing.record.reason != exc.reason
            or step not in standing.record.steps
        ):
            record = ProviderAccountProblem(
                provider=provider,
                reason=exc.reason,
                detail=exc.detail,
                message=exc.user_message,
                steps=sorted({step, *(standing.record.steps if standing else ())}),
                since=standing.record.since if standing else now,
            )
            # Kept before the write, so that units answered at the same moment count as one;
            # recorded before anyone is told, so that a restart still knows.
            standing = self._standing[provider] = _StandingProblem(
                record=record,
                next_probe_at=(
                    standing.next_probe_at
                    if standing
                    else now + timedelta(seconds=ACCOUNT_RETRY_SECONDS)
                ),
                logged_at=now,
            )
            await self._ctx.store.record_account_problem(record, now)
            log.error(
                "the %s account refuses new work (%s): %s. Its files wait and go on by "
                "themselves once an admin has fixed the account (tried again every %.0f s, "
                "for up to %g h per file)",
                provider,
                exc.reason,
                exc.detail,
                ACCOUNT_RETRY_SECONDS,
                self._ctx.config.max_job_age.total_seconds() / 3600,
            )
        elif now - standing.logged_at >= timedelta(seconds=ACCOUNT_REMINDER_SECONDS):
            standing.logged_at = now
            log.error(
                "the %s account still refuses new work (%s, since %s): %s",
                provider,
                exc.reason,
                standing.record.since.isoformat(timespec="seconds"),
                exc.detail,
            )
        return standing

    async def works(self, provider: Provider, step: str) -> None:
        """``step`` went through at ``provider``: if its account was refusing it, the work held
        for it goes on now."""
        accounts = self._standing or {}
        standing = accounts.get(provider.name)
        if standing is None or step not in standing.record.steps:
            return
        # Forgotten before the write: units running now must not release the jobs twice.
        del accounts[provider.name]
        now = self._ctx.clock()
        released = await self._ctx.store.resolve_account_problem(provider.name, now)
        log.warning(
            "the %s account takes new work again after %s; %d waiting file(s) go on",
            provider.name,
            now - standing.record.since,
            released,
        )
        self._ctx.wake()
