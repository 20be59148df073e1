"""Asking the provider how its transcriptions are doing, and recording each answer.

A provider that reports many transcriptions in one call (``polls_many``) is asked about the running
jobs of every due unit at once. "Still processing" answers are saved together once the cycle's
calls are done. A provider that lost work it had accepted sends the job back to be submitted
again, a bounded number of times.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from bot import metrics
from bot.errors import PermanentError, TemporaryError, TranscribeError, WorkLost
from bot.providers.base import Progress, ProgressStatus, Provider
from bot.work.context import Unit, WorkContext, eta_at, is_running, mirror_failure
from bot.work.retry import MAX_RESUBMISSIONS
from bot.work.verdicts import Verdicts
from storage.models import Failure, Job, JobKind, JobState, Resubmission, StillRunning

log = logging.getLogger(__name__)

#: Cap on the first poll delay derived from a provider's estimate.
MAX_ETA_DELAY_SECONDS = 120.0
#: Longest wait between two polls of a job whose provider gave no estimate.
MAX_POLL_BACKOFF_SECONDS = 60.0
#: Shortest wait between two polls of a job whose provider sends a webhook when it ends. The
#: provider retries a webhook that failed; this catches one that never arrives (the bot was down
#: or unreachable), at a cost of one call a minute per job.
WEBHOOK_FALLBACK_POLL_SECONDS = 60.0


def next_poll_delay(
    age_seconds: float,
    eta_seconds: float | None,
    poll_interval: float,
    *,
    notified: bool = False,
) -> float:
    """When to ask a provider again: at its estimate if it gave one, else less often the longer
    the job has run (a tenth of its age, up to a minute), so a long recording is not polled every
    few seconds for an hour.

    When the provider will say that the job ended (``notified``: a webhook), a poll is only the
    fallback for a notice that never came, so it waits at least a minute.
    """
    if eta_seconds:
        delay = max(poll_interval, min(eta_seconds, MAX_ETA_DELAY_SECONDS))
    else:
        delay = max(poll_interval, min(MAX_POLL_BACKOFF_SECONDS, age_seconds / 10))
    return max(delay, WEBHOOK_FALLBACK_POLL_SECONDS) if notified else delay


class Polls:
    def __init__(self, ctx: WorkContext, verdicts: Verdicts) -> None:
        self._ctx = ctx
        self._verdicts = verdicts
        #: "Still processing" answers of this cycle, saved together once its calls are done.
        self._still_running: dict[str, StillRunning] = {}

    def can_poll_together(self, provider: Provider | None, jobs: Sequence[Job]) -> bool:
        """Whether the unit of ``jobs`` is only polled, and its provider polls many at once."""
        return (
            provider is not None
            and provider.polls_many
            and not provider.batch_native
            and all(is_running(job) for job in jobs)
        )

    async def poll(self, provider: Provider, jobs: list[Job]) -> None:
        outcomes = await provider.poll(await self._ctx.provider_jobs(jobs))
        now = self._ctx.clock()
        lost: list[tuple[Job, WorkLost]] = []
        for job in jobs:
            progress = outcomes.get(job.id)
            if progress is None:
                continue
            if isinstance(progress.error, WorkLost):
                lost.append((job, progress.error))
                continue
            await self._record_progress(provider, job, progress, now)
        if lost:
            await self._submit_again(lost, now)

    async def poll_together(self, provider: Provider, units: Sequence[Unit]) -> None:
        """Poll the running jobs of ``units`` in one :meth:`Provider.poll_many`, then record
        each job's answer as its own unit's poll would have."""
        keys = [key for key, _ in units]
        jobs = [job for _, unit_jobs in units for job in unit_jobs]
        self._ctx.busy.update(keys)
        try:
            try:
                outcomes = await provider.poll_many(await self._ctx.provider_jobs(jobs))
            except Exception as exc:
                if not isinstance(exc, TranscribeError):
                    log.error("unexpected error while polling %s", provider.name, exc_info=exc)
                    exc = TemporaryError(f"unexpected: {exc!r}")
                # The whole call failed: each unit takes it as its own failure, as it would have
                # had it been polled alone (its own attempts, backoff and age limit).
                for _, unit_jobs in units:
                    await self._verdicts.step_failed(unit_jobs, exc)
                return
            now = self._ctx.clock()
            for job in jobs:
                outcome = outcomes.get(job.id)
                if outcome is None:
                    continue  # not answered: asked again next cycle
                if not isinstance(outcome, Progress):
                    await self._verdicts.step_failed([job], outcome)
                    continue
                try:
                    await self._record_progress(provider, job, outcome, now)
                except Exception as exc:
                    await self._verdicts.step_failed([job], exc)
        finally:
            self._ctx.busy.difference_update(keys)

    def start_cycle(self) -> None:
        """Forget what a cycle that ended early kept to save."""
        self._still_running = {}

    async def save_still_running(self) -> None:
        """Save this cycle's "still processing" answers, in one transaction."""
        # Deferring these is safe: if the process dies first, the jobs are simply polled again.
        # A job changed meanwhile (a webhook made it due, a cancel) keeps its newer state.
        polled, self._still_running = self._still_running, {}
        if not polled:
            return
        # The leases go back with the answers, in the same statement.
        leases = self._ctx.leases
        saved = await self._ctx.store.record_still_running(
            list(polled.values()), self._ctx.clock(), owner=leases.owner
        )
        leases.given_back(polled)
        if saved < len(polled):
            # Some changed while polled: a webhook made them due (perhaps on another process,
            # which could not take them while this one held them). They are given back after
            # this cycle: the next one takes them at once.
            self._ctx.wake()

    async def _record_progress(
        self, provider: Provider, job: Job, progress: Progress, now: datetime
    ) -> None:
        if progress.status is ProgressStatus.COMPLETED:
            await self._complete(provider, job, progress, now)
        elif progress.status is ProgressStatus.FAILED:
            await self._verdicts.fail(
                [job],
                progress.error or PermanentError("provider reported failure"),
                provider_answer=progress.raw,
            )
        else:
            waiting_since = job.stalled_since or job.created_at
            overdue = self._ctx.retry.still_running(
                progress.status.value, since=waiting_since, now=now
            )
            if overdue is not None:
                await self._verdicts.apply([job], overdue)
                return
            delay = next_poll_delay(
                (now - waiting_since).total_seconds(),
                progress.eta_seconds,
                self._ctx.config.poll_interval,
                notified=provider.notifies_completion,
            )
            self._still_running[job.id] = StillRunning(
                job_id=job.id,
                read_state=job.state,
                read_updated_at=job.updated_at,
                poll_at=self._ctx.poll_at(now, delay),
                eta_at=eta_at(now, progress.eta_seconds),
            )

    async def _complete(
        self, provider: Provider, job: Job, progress: Progress, now: datetime
    ) -> None:
        assert progress.transcript is not None
        if provider.notifies_completion and job.next_attempt_at is not None:
            # A webhook makes its job due at once (next_attempt_at cleared): this one was
            # found by the fallback poll instead.
            metrics.WEBHOOKS_MISSED.labels(provider=provider.name).inc()
            log.warning(
                "job %s: %s finished it but no webhook arrived; replies wait for the "
                "fallback poll until webhooks reach PUBLIC_URL/webhooks/%s",
                job.id,
                provider.name,
                provider.name,
            )
        transcript = progress.transcript.model_dump()
        if not await self._ctx.store.complete_job(
            job.id, transcript=transcript, raw=progress.raw, now=now
        ):
            return  # moved on meanwhile (a retry of a lost submission, say)
        job.state, job.transcript, job.raw_result = JobState.COMPLETED, transcript, progress.raw
        job.finished_at, job.error, job.error_detail, job.updated_at = now, None, None, now
        log.info("job %s: completed (%d chars)", job.id, len(progress.transcript.text))

    async def _submit_again(self, lost: Sequence[tuple[Job, WorkLost]], now: datetime) -> None:
        """The provider lost work it had accepted: send each job back to be submitted again from
        what is still there (the file the provider stored, the link, else the Slack file), or
        fail it once it was sent again ``MAX_RESUBMISSIONS`` times.

        The count is committed with the new state, before anything is sent again: a crash can
        repeat the submission (as any submission whose answer was lost) but never the count.
        """
        resubmissions: list[Resubmission] = []
        refused: dict[str, Failure] = {}
        for job, exc in lost:
            given_up = self._ctx.retry.after_work_lost(exc, job.resubmissions)
            if given_up is not None:
                log.warning("job %s: lost again after %d resubmissions", job.id, job.resubmissions)
                refused[job.id] = Failure(given_up.error.user_message, given_up.error.detail)
                continue
            # A link's file id came with the lost work: the link itself is sent again.
            stored = job.kind is JobKind.SLACK_FILE and job.provider_file_id is not None
            log.warning(
                "job %s: %s lost %s; submitting again (%d of %d)",
                job.id,
                job.provider,
                job.provider_job_id,
                job.resubmissions + 1,
                MAX_RESUBMISSIONS,
            )
            resubmissions.append(
                Resubmission(
                    job.id, file_id=job.provider_file_id if stored else None, detail=exc.detail
                )
            )
        # One transaction: a provider batch goes back whole, and is submitted again as one.
        moved = await self._ctx.store.record_work_lost(resubmissions, refused, now)
        by_id = {job.id: job for job, _ in lost}
        for resubmission in resubmissions:
            job = by_id[resubmission.job_id]
            if job.id in moved:
                job.state = JobState.UPLOADED if resubmission.file_id else JobState.QUEUED
                job.provider_file_id, job.provider_job_id = resubmission.file_id, None
                job.provider_eta_at, job.resubmissions = None, job.resubmissions + 1
                job.attempts, job.next_attempt_at, job.stalled_since = 0, None, None
                job.error_detail, job.updated_at = resubmission.detail, now
        for job_id, failure in refused.items():
            if job_id in moved:
                mirror_failure(by_id[job_id], failure, now)
