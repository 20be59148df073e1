"""Starting the transcription of files at the provider (and of links, which it fetches itself).

A provider takes only so many transcriptions at once (``max_in_flight``): the rest wait here, in
submission slots counted per cycle, oldest first. A webhook that a transcription ended can come
before the answer that started it: it is kept for that submission.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.errors import AccountProblem, NotReadyYet, PermanentError
from bot.providers.base import Provider, Submitted
from bot.work.accounts import SUBMIT_STEP, Accounts
from bot.work.context import WorkContext, eta_at, failure_of, mirror_failure
from bot.work.poll import next_poll_delay
from bot.work.verdicts import Verdicts
from storage.models import Failure, Job, JobState, Submission

#: How long a webhook naming a transcription not recorded yet is kept for its submission.
EARLY_NOTICE_SECONDS = 600.0


class Submissions:
    def __init__(self, ctx: WorkContext, verdicts: Verdicts, accounts: Accounts) -> None:
        self._ctx = ctx
        self._verdicts = verdicts
        self._accounts = accounts
        #: Per provider: jobs submitted and not finished, counted at the start of each cycle
        #: that has something to submit, and raised as the cycle submits more.
        self._in_flight: dict[str, int] = {}
        #: Webhooks that named a transcription not recorded yet, with when they came.
        self._early_notices: dict[tuple[str, str], datetime] = {}

    async def count_in_flight(self) -> None:
        """Count the jobs each provider runs now, before a cycle submits more."""
        self._in_flight = await self._ctx.store.count_in_flight()

    def keep_notice(self, provider: str, remote_id: str, now: datetime) -> None:
        """``provider`` said ``remote_id`` ended before its submission was recorded: a short
        recording can finish that fast. Its submission, once recorded, is polled at once."""
        kept_since = now - timedelta(seconds=EARLY_NOTICE_SECONDS)
        self._early_notices = {
            key: at for key, at in self._early_notices.items() if at > kept_since
        }
        self._early_notices[(provider, remote_id)] = now

    async def submit(self, provider: Provider, jobs: list[Job]) -> None:
        jobs = await self._ready(provider, jobs)
        if not jobs or not self._take_slots(provider, len(jobs)):
            return
        try:
            self._accounts.raise_if_refuses(provider, SUBMIT_STEP)
        except AccountProblem:
            self._in_flight[provider.name] -= len(jobs)  # the slots taken above go unused
            raise
        outcomes: dict[str, Submitted | PermanentError] = {}
        resent = [job for job in jobs if job.sent_at is not None]
        if resent:
            # A submission was sent before and its answer lost (a crash): adopt what it started.
            found = await provider.find_submitted(await self._ctx.provider_jobs(resent))
            outcomes.update(found)
        to_send = [job for job in jobs if job.id not in outcomes]
        if to_send:
            await self._ctx.mark_sent(to_send, self._ctx.store.mark_submission_sent)
            sent = await self._ctx.send(to_send, provider.submit)
            outcomes.update(sent)
            if any(isinstance(outcome, Submitted) for outcome in sent.values()):
                await self._accounts.works(provider, SUBMIT_STEP)
        await self._record(provider, jobs, outcomes)

    async def _ready(self, provider: Provider, jobs: list[Job]) -> list[Job]:
        """The jobs whose files the provider can use now (links always); those it refused fail.
        Raises :class:`NotReadyYet` while it is still receiving some."""
        uploaded = [job for job in jobs if job.provider_file_id is not None]
        if not uploaded:
            return jobs
        readiness = await provider.uploads_ready(await self._ctx.provider_jobs(uploaded))
        for job in uploaded:
            ready = readiness.get(job.id, False)
            if isinstance(ready, PermanentError):
                await self._verdicts.fail([job], ready)
        # A job the provider did not mention is not ready either.
        if any(readiness.get(job.id, False) is False for job in uploaded):
            raise NotReadyYet("provider is still receiving the uploads")
        return [job for job in jobs if not job.state.is_terminal]

    def _take_slots(self, provider: Provider, count: int) -> bool:
        """Whether ``count`` more jobs may go to ``provider`` now; reserves them if so.

        Jobs held back stay where they are and are offered again next cycle, oldest first, so a
        burst of uploads queues here instead of hitting the provider's own limit.
        """
        limit = provider.max_in_flight
        in_flight = self._in_flight.get(provider.name, 0)
        if limit is not None and in_flight + count > limit and in_flight > 0:
            return False
        self._in_flight[provider.name] = in_flight + count
        return True

    async def _record(
        self,
        provider: Provider,
        jobs: Sequence[Job],
        outcomes: Mapping[str, Submitted | PermanentError],
    ) -> None:
        """Record what the provider answered for each of ``jobs``, in one transaction: a crash
        must not leave half of a provider batch recorded."""
        now = self._ctx.clock()
        submissions: list[Submission] = []
        refused: dict[str, Failure] = {}
        for job in jobs:
            outcome = outcomes.get(job.id)
            if isinstance(outcome, Submitted):
                submissions.append(self._submission(provider, job, outcome, now))
            else:
                reason = outcome if isinstance(outcome, PermanentError) else None
                refused[job.id] = failure_of(
                    reason or PermanentError("provider did not take this file")
                )
        moved = await self._ctx.store.record_submissions(submissions, refused, now)
        by_id = {job.id: job for job in jobs}
        for submission in submissions:
            job = by_id[submission.job_id]
            if job.id in moved:
                job.state, job.provider_job_id = JobState.SUBMITTED, submission.remote_id
                job.provider_file_id = submission.file_id or job.provider_file_id
                job.provider_eta_at, job.next_attempt_at = submission.eta_at, submission.poll_at
                job.attempts, job.stalled_since, job.sent_at, job.updated_at = 0, now, None, now
        for job_id, failure in refused.items():
            if job_id in moved:
                mirror_failure(by_id[job_id], failure, now)
                by_id[job_id].sent_at = None

    def _submission(
        self, provider: Provider, job: Job, outcome: Submitted, now: datetime
    ) -> Submission:
        delay = next_poll_delay(
            0,
            outcome.eta_seconds,
            self._ctx.config.poll_interval,
            notified=provider.notifies_completion,
        )
        # A notice that it ended may have come before this answer: poll it at once.
        notified = self._early_notices.pop((provider.name, outcome.remote_id), None)
        return Submission(
            job_id=job.id,
            remote_id=outcome.remote_id,
            file_id=outcome.file_id,
            eta_at=eta_at(now, outcome.eta_seconds),
            poll_at=None if notified else self._ctx.poll_at(now, delay),
        )
