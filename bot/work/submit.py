"""Starting the transcription of files at the provider (and of links, which it fetches itself).

A provider takes only so many transcriptions at once (``max_in_flight``): the rest wait here,
oldest first. The slots are counted in the database and taken as the submissions are marked sent,
under a lock (:meth:`storage.store.Store.take_submission_slots`), so the limit holds across every
process sharing it. A webhook that a transcription ended can come before the answer that started
it, to any process: the store keeps it for that answer.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from bot.errors import NotReadyYet, PermanentError
from bot.providers.base import Provider, Submitted
from bot.work.accounts import SUBMIT_STEP, Accounts
from bot.work.context import WorkContext, eta_at, failure_of, mirror_failure
from bot.work.poll import next_poll_delay
from bot.work.verdicts import Verdicts
from storage.models import Failure, Job, JobState, Submission

log = logging.getLogger(__name__)


class Submissions:
    def __init__(self, ctx: WorkContext, verdicts: Verdicts, accounts: Accounts) -> None:
        self._ctx = ctx
        self._verdicts = verdicts
        self._accounts = accounts
        #: Providers found without a free slot this cycle: their other submissions wait for the
        #: next one without asking again (oldest first, and one count per provider per cycle).
        self._full: set[str] = set()

    def start_cycle(self) -> None:
        self._full = set()

    async def submit(self, provider: Provider, jobs: list[Job]) -> None:
        jobs = await self._ready(provider, jobs)
        if not jobs or provider.name in self._full:
            return
        self._accounts.raise_if_refuses(provider, SUBMIT_STEP)
        outcomes: dict[str, Submitted | PermanentError] = {}
        resent = [job for job in jobs if job.sent_at is not None]
        if resent:
            # A submission was sent before and its answer lost (a crash): adopt what it started.
            found = await provider.find_submitted(await self._ctx.provider_jobs(resent))
            outcomes.update(found)
        to_send = [job for job in jobs if job.id not in outcomes]
        if to_send and not await self._take_slots(provider, to_send):
            # They wait; what an earlier submission started is recorded all the same.
            jobs = [job for job in jobs if job.id in outcomes]
            to_send = []
        if to_send:
            sent = await self._ctx.send(to_send, provider.submit)
            outcomes.update(sent)
            if any(isinstance(outcome, Submitted) for outcome in sent.values()):
                await self._accounts.works(provider, SUBMIT_STEP)
        if jobs:
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

    async def _take_slots(self, provider: Provider, jobs: Sequence[Job]) -> bool:
        """Whether ``jobs`` may go to ``provider`` now; if so, they are marked sent (after a
        crash, what they started is looked for before sending again), which takes their slots.

        Jobs held back stay where they are and are offered again next cycle, oldest first, so a
        burst of uploads queues here instead of hitting the provider's own limit.
        """
        now = self._ctx.clock()
        ids = [job.id for job in jobs]
        store = self._ctx.store
        if not await store.take_submission_slots(
            provider.name, ids, limit=provider.max_in_flight, now=now
        ):
            log.info("%s has no free slot for %s; they wait", provider.name, ids)
            self._full.add(provider.name)
            return False
        for job in jobs:
            job.sent_at = now
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
        if submissions and provider.notifies_completion:
            # A notice that one ended may have come before this answer, perhaps to another
            # process: the store made that job due, and the next cycle polls it.
            self._ctx.wake()
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
        # A notice that it ended may have come before this answer: the store then makes the job
        # due at once instead.
        return Submission(
            job_id=job.id,
            remote_id=outcome.remote_id,
            file_id=outcome.file_id,
            eta_at=eta_at(now, outcome.eta_seconds),
            poll_at=self._ctx.poll_at(now, delay),
        )
