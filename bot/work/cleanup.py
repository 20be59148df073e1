"""Tidying up after the work: the providers' copies, spool files nobody needs, what a call whose
answer was lost created for a batch that has ended, and transcripts past the retention period."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from bot.providers.base import Provider
from bot.work.context import WorkContext
from bot.work.retry import Fail
from storage.models import Job, JobState

log = logging.getLogger(__name__)

#: How often transcripts past the retention period are looked for.
PURGE_EVERY = timedelta(hours=1)


class CleanUp:
    def __init__(self, ctx: WorkContext) -> None:
        self._ctx = ctx
        self._last_purge_at: datetime | None = None

    async def run(self) -> None:
        """Drop unneeded spool files, find what lost answers of ended batches created, and
        delete the providers' copies that are due."""
        store = self._ctx.store
        await self.drop_unneeded_spool()
        await self._recover_lost_answers()
        providers = self._ctx.providers
        # A per-file provider's copies go as soon as their job has ended: its storage is capped,
        # and a batch of more files than the caps allow must free room while it runs.
        per_file = [name for name, provider in providers.items() if not provider.batch_native]
        due = await store.jobs_to_clean_up(self._ctx.clock(), finished_early=per_file)
        # Those no other process is cleaning up, as they are now.
        claimed = await self._ctx.leases.claim_jobs([job.id for job in due])
        try:
            await self._clean_up_all([job for job in claimed if not job.cleaned_up])
        finally:
            await self._ctx.leases.release(jobs=[job.id for job in claimed])

    async def drop_unneeded_spool(self) -> None:
        """Spool files of batches that will not go on (cancelled mid-transfer, or of a workspace
        that removed the app) are only disk: deleted."""
        for job in await self._ctx.store.jobs_with_unneeded_spool():
            await self._ctx.drop_spool(job)

    async def _clean_up_all(self, jobs: Sequence[Job]) -> None:
        store, providers = self._ctx.store, self._ctx.providers
        groups: dict[tuple[str, str], list[Job]] = {}
        for job in jobs:
            groups.setdefault((job.provider, job.batch_id), []).append(job)
        for (provider_name, _), group in groups.items():
            provider = providers.get(provider_name)
            if provider is None:
                await store.mark_cleaned_up([job.id for job in group], self._ctx.clock())
            elif provider.batch_native:
                await self._clean_up(provider, group)
            else:
                # Each copy on its own: one the provider will not delete yet (a transcription
                # still processing) must not keep its siblings' room taken.
                for job in group:
                    await self._clean_up(provider, [job])

    async def purge(self) -> None:
        """Erase transcripts delivered longer than the retention period ago (hourly)."""
        now = self._ctx.clock()
        if self._last_purge_at is not None and now - self._last_purge_at < PURGE_EVERY:
            return
        self._last_purge_at = now
        cutoff = now - self._ctx.config.retention
        purged = await self._ctx.store.purge_transcripts_before(cutoff, now)
        if purged:
            log.info("erased %d transcript(s) past the retention period", purged)

    async def _clean_up(self, provider: Provider, jobs: Sequence[Job]) -> None:
        ids = [job.id for job in jobs]
        try:
            await provider.clean_up(await self._ctx.provider_jobs(jobs))
        except Exception as exc:
            decision = self._ctx.retry.after_clean_up_error(exc, now=self._ctx.clock())
            if isinstance(decision, Fail):
                # Nothing more can be done; the provider keeps its copy.
                log.warning("clean-up of %s failed for good: %s", ids, decision.error.detail)
            else:
                log.warning("clean-up of %s failed; retrying later: %s", ids, decision.detail)
                await self._ctx.store.postpone_clean_up(ids, decision.at, self._ctx.clock())
                return
        await self._ctx.store.mark_cleaned_up(ids, self._ctx.clock())

    async def _recover_lost_answers(self) -> None:
        """A batch that ended while a call's answer was lost may still own a copy at the
        provider: find it, so the clean-up deletes it."""
        lost = await self._ctx.store.lost_answers_to_recover()
        claimed = await self._ctx.leases.claim_jobs([job.id for job in lost])
        try:
            for job in claimed:
                if job.sent_at is not None:  # not found by another process since
                    await self._recover(job)
        finally:
            await self._ctx.leases.release(jobs=[job.id for job in claimed])

    async def _recover(self, job: Job) -> None:
        provider = self._ctx.providers.get(job.provider)
        try:
            file_id = remote_id = None
            if provider is not None:
                (asked,) = await self._ctx.provider_jobs([job])
                if job.state is JobState.UPLOADING:
                    uploaded = (await provider.find_uploaded([asked])).get(job.id)
                    file_id = uploaded.file_id if uploaded is not None else None
                else:
                    submitted = (await provider.find_submitted([asked])).get(job.id)
                    remote_id = submitted.remote_id if submitted is not None else None
            await self._ctx.store.record_lost_answer(
                job.id, file_id=file_id, remote_id=remote_id, now=self._ctx.clock()
            )
        except Exception as exc:
            log.warning("job %s: could not look for a lost answer yet: %r", job.id, exc)
