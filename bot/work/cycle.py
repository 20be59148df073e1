"""One poll cycle: read what is unfinished from the database, take each job's next step, post the
replies of finished batches, keep the progress messages current, show newly named speakers in
their replies, clean up at the providers.

The database is the only memory. Each step commits the new state before the next side effect, so
a process killed at any line restarts into a database that says what to do next:

==========  =============================================================================
state       next step after a restart
==========  =============================================================================
queued      resolve a Slack Connect stub, then download
downloading download again (the partial spool file is discarded)
uploading   upload the complete spool file (download again if the spool is gone); if an
            upload was sent and its answer lost, first ask the provider for what it created
uploaded    wait until the provider can use the file, then submit (likewise looking first
            for a submission sent before a crash)
submitted   poll the provider with the recorded id
processing  poll the provider with the recorded id
==========  =============================================================================

A provider that lost work it had accepted sends the job back to ``uploaded`` (its stored file) or
``queued`` (a link, or a file to fetch again), with ``resubmissions`` counted in the same commit:
the next cycle submits it again, and after ``MAX_RESUBMISSIONS`` the job fails instead.

Work is grouped into **units**: one job for per-file providers, one batch for batch-native ones.
A unit is advanced by one task at a time, in one process at a time: the cycle claims the due units
under a lease (:mod:`bot.work.leases`) and gives each back once its step is done. Transfers
(download and upload) can take minutes, so they run in the background and the cycle does not wait
for them; everything else is quick and awaited.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial

from bot.providers.base import Provider
from bot.work.accounts import Accounts
from bot.work.cleanup import CleanUp
from bot.work.context import (
    NO_HINTS,
    NO_OPTIONS,
    Downloader,
    EngineConfig,
    SlackWorkspaces,
    Unit,
    WorkContext,
    is_due,
    is_running,
    needs_transfer,
    unit_key,
    waits_for_submission,
)
from bot.work.deliver import Delivery
from bot.work.leases import WorkLeases, new_owner
from bot.work.names import SpeakerNamesShown
from bot.work.poll import Polls
from bot.work.progress import ProgressMessages
from bot.work.retry import RetryPolicy
from bot.work.room import StorageRoom
from bot.work.submit import Submissions
from bot.work.transfer import Transfers
from bot.work.verdicts import Verdicts
from storage.models import Job
from storage.store import Store, StoreClosed

log = logging.getLogger(__name__)


class Engine:
    """Takes the work forward, one cycle at a time; the scheduler decides when."""

    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        slack: SlackWorkspaces,
        downloader: Downloader,
        config: EngineConfig,
        clock: Callable[[], datetime],
        wake: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
        owner: str | None = None,
    ) -> None:
        retry = RetryPolicy(max_age=config.max_job_age, poll_interval=config.poll_interval, rng=rng)
        self.leases = WorkLeases(
            store, owner=owner or new_owner(), lease_for=config.lease_for, clock=clock
        )
        self._ctx = ctx = WorkContext(
            store=store,
            providers=providers,
            slack=slack,
            config=config,
            clock=clock,
            retry=retry,
            wake=wake,
            leases=self.leases,
        )
        self._accounts = Accounts(ctx)
        self._verdicts = Verdicts(ctx, self._accounts)
        self._room = StorageRoom(ctx)
        self.transfers = Transfers(ctx, self._verdicts, self._accounts, self._room, downloader)
        self._submissions = Submissions(ctx, self._verdicts, self._accounts)
        self._polls = Polls(ctx, self._verdicts)
        self._progress = ProgressMessages(ctx)
        self._delivery = Delivery(ctx, self._progress)
        self._names = SpeakerNamesShown(ctx)
        self._clean_up = CleanUp(ctx)
        self._one_cycle = asyncio.Lock()
        #: Transfers running in the background, with the jobs each holds.
        self._background: dict[asyncio.Task[None], frozenset[str]] = {}
        self.last_cycle_at: datetime | None = None

    @property
    def steps_running(self) -> int:
        """Units (and batches being posted) with a step running right now."""
        return len(self._ctx.busy)

    async def run_cycle(self) -> None:
        """One pass over the work; a second call waits for the first to end."""
        # The cycle's reads decide its writes and posts (a progress message is posted when the
        # batch has none): two cycles at once would both act on the same reading.
        async with self._one_cycle:
            await self._run_cycle()

    async def provider_finished(self, provider: str, remote_id: str) -> bool:
        """A provider said (by webhook) that ``remote_id`` ended: poll its jobs at once.

        Only makes the jobs due, for whichever process claims them first; the poll itself
        fetches the outcome, so a forged or repeated notice can at most cause one early poll.
        False when no job runs as ``remote_id`` yet: the notice is kept for its submission.
        """
        return bool(
            await self._ctx.store.record_remote_finished(provider, remote_id, self._ctx.clock())
        )

    async def renew_leases(self) -> None:
        """Renew the leases of the units this process works on. A unit whose lease another
        process took over meanwhile (this one could not renew it in time) is that one's now: its
        transfer here is stopped."""
        try:
            lost = await self.leases.renew()
            # Work ended by another process (the app removed from a workspace there) is not
            # transferred further here: at most one renewal interval more.
            if await self._stop_ended_transfers():
                await self._clean_up.drop_unneeded_spool()
                self._ctx.wake()
        except StoreClosed:
            return  # shutting down: the leases were given back
        if not lost:
            return
        log.warning(
            "lost the lease of %d job(s) and %d batch(es) to another process: this one could not "
            "renew them in time",
            len(lost.jobs),
            len(lost.batches),
        )
        for task, job_ids in list(self._background.items()):
            if job_ids & lost.jobs:
                task.cancel()

    async def stop_ended_work(self) -> int:
        """Work was ended from outside the cycle (the app removed from a workspace): stop the
        transfers of this process whose jobs have all ended (a download's partial file goes
        with it), drop the spool files nobody needs any more, and wake the cycle, whose
        clean-up deletes the providers' copies. Returns how many transfers were stopped."""
        stopped = await self._stop_ended_transfers()
        await self._clean_up.drop_unneeded_spool()
        self._ctx.wake()
        return stopped

    async def _stop_ended_transfers(self) -> int:
        running = list(self._background.items())
        if not running:
            return 0
        ended = {
            job.id
            for job in await self._ctx.store.get_jobs([i for _, ids in running for i in ids])
            if job.state.is_terminal
        }
        stopped = [task for task, ids in running if ids <= ended]
        for task in stopped:
            task.cancel()
        if stopped:
            await asyncio.gather(*stopped, return_exceptions=True)
        for task, ids in running:
            if task in stopped:
                for job_id in ids:
                    # A download stopped after its file was complete, before it was recorded.
                    (self._ctx.config.spool_dir / job_id).unlink(missing_ok=True)
        return len(stopped)

    async def drain(self) -> None:
        """Wait for background transfers to end."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def stop(self) -> None:
        """Abandon running transfers; their jobs stay in a state that restarts them, and every
        lease is given back, so another process can take the work up at once."""
        for task in list(self._background):
            task.cancel()
        await self.drain()
        await self.leases.release_all()

    async def _run_cycle(self) -> None:
        ctx = self._ctx
        now = ctx.clock()
        self._polls.start_cycle()
        self._submissions.start_cycle()
        await self._accounts.load()
        whole = [name for name, provider in ctx.providers.items() if provider.batch_native]
        limit = ctx.config.claim_limit
        due_jobs = await ctx.leases.claim_due(now, whole_batches=whole, limit=limit)
        if len(due_jobs) >= limit:
            ctx.wake()  # more may be due than one cycle takes: the next one follows at once
        quick: list[Unit] = []
        quick_jobs: list[Job] = []
        try:
            # Those of the batches claimed, not of every open one: each process reads its share.
            claimed = {job.batch_id for job in due_jobs}
            in_use = await ctx.store.language_hints_in_use(claimed) if claimed else {}
            ctx.hints = {batch_id: in_use.get(batch_id, NO_HINTS) for batch_id in claimed}
            asked = await ctx.store.transcription_options_in_use(claimed) if claimed else {}
            ctx.options = {batch_id: asked.get(batch_id, NO_OPTIONS) for batch_id in claimed}
            quick, transfers, idle = self._units(due_jobs, now)
            going = await self._room.plan(transfers)
            going_keys = {key for key, _ in going}
            waiting = [unit for unit in transfers if unit[0] not in going_keys]
            await ctx.leases.release(jobs=_ids(idle + waiting))
            for key, jobs in going:
                self._spawn(key, jobs, self.transfers.transfer(jobs))
            quick_jobs = [job for _, jobs in quick for job in jobs]
            # Finished work is posted first: a slow provider must not hold up finished replies.
            await self._delivery.deliver_due(now)
            await self._advance_all(quick)
            await self._polls.save_still_running()
        finally:
            # Once their answers are saved: a unit given back earlier could be polled again.
            await ctx.leases.release(jobs=_ids(quick))
        if any(job.state.is_terminal for job in quick_jobs):
            await self._delivery.deliver_due(ctx.clock())
        await self._progress.report()
        await self._names.show_due()
        await self._clean_up.run()
        await self._clean_up.purge()
        self.last_cycle_at = ctx.clock()

    def _units(
        self, due_jobs: Sequence[Job], now: datetime
    ) -> tuple[list[Unit], list[Unit], list[Unit]]:
        """The claimed units: those only quick steps move, those with a transfer to make, and
        those with nothing to do now (to be given back). A unit a task of this process still
        works on (its lease had run out, and was claimed again) is left to that task."""
        units: dict[str, list[Job]] = {}
        for job in due_jobs:
            units.setdefault(unit_key(job, self._ctx.providers.get(job.provider)), []).append(job)
        quick: list[Unit] = []
        transfers: list[Unit] = []
        idle: list[Unit] = []
        for key, jobs in units.items():
            if key in self._ctx.busy:
                continue
            if not is_due(jobs, now):
                idle.append((key, jobs))
            elif any(needs_transfer(job) for job in jobs):
                transfers.append((key, jobs))
            else:
                quick.append((key, jobs))
        return quick, transfers, idle

    async def _advance_all(self, units: Sequence[Unit]) -> None:
        """Take the next step of each unit whose files are all at the provider (or are links):
        submit, or poll.

        The running units of a provider that reports many transcriptions in one call are
        polled together, in one :meth:`Provider.poll_many` per provider."""
        alone: list[Unit] = []
        together: dict[str, list[Unit]] = {}
        for key, jobs in units:
            provider = self._ctx.providers.get(jobs[0].provider)
            if provider is not None and self._polls.can_poll_together(provider, jobs):
                together.setdefault(provider.name, []).append((key, jobs))
            else:
                alone.append((key, jobs))

        # Each is one item of work: a unit stepped alone, or one provider's units polled together.
        providers = self._ctx.providers
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"the {name} polls", partial(self._polls.poll_together, providers[name], group))
            for name, group in together.items()
        ]
        steps += [(key, partial(self._advance, key, jobs)) for key, jobs in alone]
        outcomes = await self._ctx.for_each(steps, lambda step: step[1]())
        for (what, _), outcome in zip(steps, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("a step of %s failed outside its own handling", what, exc_info=outcome)

    async def _advance(self, key: str, jobs: list[Job]) -> None:
        await self._ctx.guarded(key, self._verdicts.run_step(jobs, self._submit_and_poll))

    async def _submit_and_poll(self, provider: Provider, jobs: list[Job]) -> None:
        # Taken before submitting: a job submitted now is first polled when its provider's
        # estimate says it is worth it, not straight away.
        running = [job for job in jobs if is_running(job)]
        waiting = [job for job in jobs if waits_for_submission(job)]
        if waiting:
            await self._submissions.submit(provider, waiting)
        if running:
            await self._polls.poll(provider, running)

    def _spawn(self, key: str, jobs: Sequence[Job], work: Awaitable[None]) -> None:
        # Marked now, not when the task first runs, so nothing can start the unit twice.
        self._ctx.busy.add(key)
        job_ids = frozenset(job.id for job in jobs)
        task = asyncio.ensure_future(self._in_background(key, job_ids, work))
        self._background[task] = job_ids

        def finished(done: asyncio.Task[None]) -> None:
            self._background.pop(done, None)
            self._ctx.wake()

        task.add_done_callback(finished)

    async def _in_background(
        self, key: str, job_ids: frozenset[str], work: Awaitable[None]
    ) -> None:
        try:
            await self._ctx.guarded(key, work)
        finally:
            await self._ctx.leases.release(jobs=job_ids)


def _ids(units: Sequence[Unit]) -> list[str]:
    return [job.id for _, jobs in units for job in jobs]
