"""The retry policy: what to do after a step went wrong, decided in one place.

Every step of the work (a job's transfer, submission or poll, a batch's reply, the clean-up at a
provider) hands what went wrong to :class:`RetryPolicy` and carries out the :data:`Decision` it
gets back: :class:`Retry` at a time, counting an attempt; :class:`Wait` until a time, counting
none (the other side is not ready, or its account refuses new work); or
:class:`Fail` with the reason to give. Nothing else decides how long to wait or when to give up.

The age limit (``JOB_MAX_AGE_HOURS``) counts from when a step started stalling (waiting or
failing), not from when the work was shared: work that queued for long still gets its full
allowance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.errors import (
    AccountProblem,
    NotReadyYet,
    PermanentError,
    TemporaryError,
    TranscribeError,
    WorkLost,
)
from bot.messages import work as texts

#: Longest wait between two attempts of a failing step.
MAX_BACKOFF_SECONDS = 300.0
#: Times a job is submitted again after its provider lost the work; then it fails, so a provider
#: that keeps losing work cannot keep a job going round.
MAX_RESUBMISSIONS = 2
#: Wait before deleting again what a provider would not delete yet.
CLEAN_UP_RETRY_SECONDS = 60.0
#: How often a provider account that refuses new work (a used-up balance) is tried again, with
#: one call; the rest of its work waits meanwhile instead of asking too.
ACCOUNT_RETRY_SECONDS = 60.0


def backoff_seconds(attempts: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter over [base/2, base]: 2 s, 4 s, … up to 5 minutes."""
    base = min(MAX_BACKOFF_SECONDS, 2.0**attempts)
    return rng.uniform(base / 2, base)


@dataclass(frozen=True)
class Retry:
    """Try again at ``at``; ``attempts`` counts this failure."""

    at: datetime
    attempts: int
    #: When the step started failing: the age limit counts from here.
    since: datetime
    detail: str


@dataclass(frozen=True)
class Wait:
    """Ask again at ``until``; no attempt is counted."""

    until: datetime
    #: When the step started waiting, for the age limit; None: this wait counts against none.
    since: datetime | None
    #: The provider whose account the work waits for, if that is what it waits for.
    held_by: str | None = None


@dataclass(frozen=True)
class Fail:
    """Give up, saying ``error.user_message`` to whoever shared the file."""

    error: PermanentError


Decision = Retry | Wait | Fail


class RetryPolicy:
    """Turns an error, the attempts made, when the step started stalling and ``now`` into a
    :data:`Decision`."""

    def __init__(
        self, *, max_age: timedelta, poll_interval: float, rng: random.Random | None = None
    ) -> None:
        self.max_age = max_age
        self._poll_interval = poll_interval
        self._rng = rng or random.Random()

    def decide(
        self,
        error: TranscribeError,
        *,
        attempts: int,
        since: datetime | None,
        now: datetime,
        account_retry_at: datetime | None = None,
    ) -> Decision:
        """What to do after a step failed with ``error``, having failed ``attempts`` times
        before, stalling since ``since`` (None: it was not). ``account_retry_at`` is when an
        account that refuses new work is tried again."""
        if isinstance(error, PermanentError):
            return Fail(error)
        started = since or now
        if isinstance(error, AccountProblem):
            # A file may wait for an admin as long as it may keep failing, and no longer.
            if self._overdue(started, now):
                return Fail(self._gave_up(error, texts.WAITING))
            until = account_retry_at or now + timedelta(seconds=ACCOUNT_RETRY_SECONDS)
            return Wait(until, started, held_by=error.provider)
        assert isinstance(error, TemporaryError)
        # It covers waiting too: an upload that never becomes ready must end.
        if self._overdue(started, now):
            return Fail(self._gave_up(error, texts.TRYING))
        if isinstance(error, NotReadyYet):
            delay = error.retry_after or self._poll_interval
            return Wait(now + timedelta(seconds=delay), started)
        attempts += 1
        delay = (
            error.retry_after
            if error.retry_after is not None
            else backoff_seconds(attempts, self._rng)
        )
        return Retry(now + timedelta(seconds=delay), attempts, started, error.detail)

    def still_running(self, status: str, *, since: datetime, now: datetime) -> Fail | None:
        """A provider still at work on a job after the age limit: give up on it."""
        if not self._overdue(since, now):
            return None
        hours = self._hours
        return Fail(
            PermanentError(
                f"provider still {status} after {hours:g} h",
                user_message=texts.not_finished_after(hours),
            )
        )

    def after_work_lost(self, error: WorkLost, resubmissions: int) -> Fail | None:
        """The provider lost work it had accepted: None to submit it again at once, or a
        failure once it was sent again ``MAX_RESUBMISSIONS`` times."""
        if resubmissions < MAX_RESUBMISSIONS:
            return None
        return Fail(
            PermanentError(
                error.detail, user_message=texts.lost_again(error.user_message, resubmissions)
            )
        )

    def after_clean_up_error(self, error: Exception, *, now: datetime) -> Retry | Fail:
        """Deleting a provider's copy failed: for good (it keeps its copy), or try again in a
        while, not every cycle (still in use there, or a passing fault)."""
        if isinstance(error, PermanentError):
            return Fail(error)
        detail = error.detail if isinstance(error, TranscribeError) else repr(error)
        return Retry(now + timedelta(seconds=CLEAN_UP_RETRY_SECONDS), 0, now, detail)

    @property
    def _hours(self) -> float:
        return self.max_age.total_seconds() / 3600

    def _overdue(self, since: datetime, now: datetime) -> bool:
        return now - since > self.max_age

    def _gave_up(self, error: TranscribeError, doing: str) -> PermanentError:
        hours = self._hours
        return PermanentError(
            f"gave up after {hours:g} h: {error.detail}",
            user_message=texts.gave_up(hours, doing, error.user_message),
        )
