"""One poll cycle: read what is unfinished from the database, take each job's next step, post the
replies of finished batches, clean up at the provider.

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
A unit is advanced by one task at a time. Transfers (download and upload) can take minutes, so they
run in the background and the cycle does not wait for them; everything else is quick and awaited.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from slack_sdk.errors import SlackApiError

from bot import metrics
from bot.errors import (
    AccountProblem,
    NotReadyYet,
    PermanentError,
    TemporaryError,
    TranscribeError,
    WorkLost,
)
from bot.intake import slack_duration_ms
from bot.limits import FileLimits
from bot.media import is_media_file
from bot.providers.base import (
    Progress,
    ProgressStatus,
    Provider,
    ProviderJob,
    Submitted,
    Uploaded,
)
from bot.providers.registry import label_of
from bot.rendering import MAX_BLOCKS, render_reply
from bot.slack_api import UNDELIVERABLE_ERRORS, SlackGateway, ThreadState, slack_error_code
from bot.slack_files import SlackFileDownloader
from bot.slack_text import Mrkdwn, context, mrkdwn
from storage.models import (
    PENDING_STATUS,
    Batch,
    BatchState,
    Failure,
    FileInfo,
    Job,
    JobKind,
    JobState,
    LanguageHints,
    ProgressShown,
    ProviderAccountProblem,
    Resubmission,
    StillRunning,
    Submission,
    Upload,
)
from storage.states import BatchMoves, Move
from storage.store import Store

log = logging.getLogger(__name__)

_Item = TypeVar("_Item")
_Outcome = TypeVar("_Outcome")

REACTION_WORKING = "hourglass_flowing_sand"
REACTION_DONE = "white_check_mark"
REACTION_FAILED = "warning"

#: Longest wait between two attempts of a failing step.
MAX_BACKOFF_SECONDS = 300.0
#: Times a job is submitted again after its provider lost the work; then it fails, so a provider
#: that keeps losing work cannot keep a job going round.
MAX_RESUBMISSIONS = 2
#: Cap on the first poll delay derived from a provider's estimate.
MAX_ETA_DELAY_SECONDS = 120.0
#: Wait before deleting again what a provider would not delete yet.
CLEAN_UP_RETRY_SECONDS = 60.0
#: Longest wait between two polls of a job whose provider gave no estimate.
MAX_POLL_BACKOFF_SECONDS = 60.0
#: How long a webhook naming a transcription not recorded yet is kept for its submission.
EARLY_NOTICE_SECONDS = 600.0
#: What a batch without language hints asks of its provider.
NO_HINTS = LanguageHints()
#: Shortest wait between two polls of a job whose provider sends a webhook when it ends. The
#: provider retries a webhook that failed; this catches one that never arrives (the bot was down
#: or unreachable), at a cost of one call a minute per job.
WEBHOOK_FALLBACK_POLL_SECONDS = 60.0
#: How often a provider account that refuses new work (a used-up balance) is tried again, with
#: one call; the rest of its work waits meanwhile instead of asking too.
ACCOUNT_RETRY_SECONDS = 60.0
#: How often the log says again that a provider account still refuses new work.
ACCOUNT_REMINDER_SECONDS = 900.0

#: The steps a provider account can refuse.
UPLOAD_STEP = "upload"
SUBMIT_STEP = "submit"


def backoff_seconds(attempts: int, rng: random.Random) -> float:
    """Exponential backoff with full jitter over [base/2, base]: 2 s, 4 s, … up to 5 minutes."""
    base = min(MAX_BACKOFF_SECONDS, 2.0**attempts)
    return rng.uniform(base / 2, base)


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


@dataclass
class _StandingProblem:
    """A provider account that refuses new work, as the pipeline keeps it between cycles."""

    record: ProviderAccountProblem
    #: When one call may try the account again.
    next_probe_at: datetime
    logged_at: datetime


class _HeldBack(AccountProblem):
    """Raised for work held back, without a call, while its provider's account problem stands."""


def unit_key(job: Job, provider: Provider | None) -> str:
    return job.batch_id if provider is not None and provider.batch_native else job.id


class Pipeline:
    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        slack: SlackGateway,
        downloader: SlackFileDownloader,
        spool_dir: Path,
        max_file_bytes: int,
        max_job_age: timedelta,
        poll_interval: float,
        clock: Callable[[], datetime],
        max_concurrent_transfers: int = 4,
        max_concurrent_calls: int = 16,
        retention: timedelta = timedelta(days=30),
        progress_after: timedelta = timedelta(seconds=5),
        progress_every: timedelta = timedelta(seconds=3),
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._providers = providers
        self._slack = slack
        self._downloader = downloader
        self._spool_dir = spool_dir
        self._max_file_bytes = max_file_bytes
        self._max_job_age = max_job_age
        self._poll_interval = poll_interval
        self._clock = clock
        self._rng = rng or random.Random()
        self._transfer_slots = asyncio.Semaphore(max_concurrent_transfers)
        self._max_calls = max_concurrent_calls
        #: Units and batches with a task running now; never two tasks for one unit.
        self._busy: set[str] = set()
        self._one_cycle = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()
        #: Called when background work finished, so the next cycle need not wait for the clock.
        self.on_progress: Callable[[], None] = lambda: None
        self.last_cycle_at: datetime | None = None
        self._retention = retention
        self._progress_after = progress_after
        self._progress_every = progress_every
        self._last_purge_at: datetime | None = None
        #: Per provider: jobs submitted and not finished, counted at the start of each cycle
        #: that has something to submit, and raised as the cycle submits more.
        self._in_flight: dict[str, int] = {}
        #: Language hints of the due batches, read once per cycle: all a provider needs of a
        #: batch, and fixed when the batch was created.
        self._hints: dict[str, LanguageHints] = {}
        #: Webhooks that named a transcription not recorded yet, with when they came.
        self._early_notices: dict[tuple[str, str], datetime] = {}
        #: "Still processing" answers of this cycle, saved together once its calls are done.
        self._still_running: dict[str, StillRunning] = {}
        #: Per provider with storage caps: files and bytes it holds for us (uploads under way
        #: included), counted from the database at the start of each cycle with transfers to
        #: start, and raised as uploads go out. Uploads are counted and marked sent under the
        #: lock, so no two of them take the same room.
        self._stored: dict[str, list[int]] = {}
        self._storage_lock = asyncio.Lock()
        #: Provider accounts that refuse new work, by provider; read from the database by the
        #: first cycle, kept up to date by every cycle after it.
        self._accounts: dict[str, _StandingProblem] | None = None

    # -- the cycle ---------------------------------------------------------------------------

    async def run_cycle(self) -> None:
        """One pass over the work; a second call waits for the first to end."""
        # The cycle's reads decide its writes and posts (a progress message is posted when the
        # batch has none): two cycles at once would both act on the same reading.
        async with self._one_cycle:
            await self._run_cycle()

    async def _run_cycle(self) -> None:
        now = self._clock()
        units: dict[str, list[Job]] = {}
        self._still_running = {}
        if self._accounts is None:
            await self._load_account_problems(now)
        due_jobs = await self._store.due_jobs(now)
        in_use = await self._store.language_hints_in_use()
        self._hints = {job.batch_id: in_use.get(job.batch_id, NO_HINTS) for job in due_jobs}
        for job in due_jobs:
            units.setdefault(unit_key(job, self._providers.get(job.provider)), []).append(job)

        quick: list[tuple[str, list[Job]]] = []
        transfers: list[tuple[str, list[Job]]] = []
        for key, jobs in units.items():
            if key in self._busy or not self._due(jobs, now):
                continue
            if any(self._needs_transfer(job) for job in jobs):
                transfers.append((key, jobs))
            else:
                quick.append((key, jobs))
        for key, jobs in await self._with_storage_room(transfers):
            self._spawn(key, self._transfer(jobs))
        quick_jobs = [job for _, jobs in quick for job in jobs]
        if any(_waits_for_submission(job) for job in quick_jobs):
            self._in_flight = await self._store.count_in_flight()
        # Finished work is posted first: a slow provider must not hold up finished replies.
        await self._deliver_due(now)
        await self._advance_all(quick)
        await self._save_still_running()
        if any(job.state.is_terminal for job in quick_jobs):
            await self._deliver_due(self._clock())
        await self._report_progress()
        await self._clean_up()
        await self._purge_old_transcripts()
        self.last_cycle_at = self._clock()

    async def _advance_all(self, units: Sequence[tuple[str, list[Job]]]) -> None:
        """Take the next step of each unit (key, jobs) whose files are all at the provider (or
        are links): submit, or poll.

        The running units of a provider that reports many transcriptions in one call are
        polled together, in one :meth:`Provider.poll_many` per provider."""
        alone: list[tuple[str, list[Job]]] = []
        together: dict[str, list[tuple[str, list[Job]]]] = {}
        for key, jobs in units:
            provider = self._providers.get(jobs[0].provider)
            if (
                provider is not None
                and provider.polls_many
                and not provider.batch_native
                and all(job.state in (JobState.SUBMITTED, JobState.PROCESSING) for job in jobs)
            ):
                together.setdefault(provider.name, []).append((key, jobs))
            else:
                alone.append((key, jobs))

        # Each is one item of work: a unit stepped alone, or one provider's units polled together.
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"the {name} polls", partial(self._poll_together, self._providers[name], group))
            for name, group in together.items()
        ]
        steps += [(key, partial(self._advance, key, jobs)) for key, jobs in alone]
        for (what, _), outcome in zip(
            steps, await self._for_each(steps, lambda step: step[1]()), strict=True
        ):
            if isinstance(outcome, Exception):
                log.error("a step of %s failed outside its own handling", what, exc_info=outcome)

    async def _advance(self, key: str, jobs: list[Job]) -> None:
        await self._guarded(key, self._run_step(jobs, self._submit_and_poll))

    async def _poll_together(
        self, provider: Provider, units: Sequence[tuple[str, list[Job]]]
    ) -> None:
        """Poll the running jobs of ``units`` in one :meth:`Provider.poll_many`, then record
        each job's answer as its own unit's poll would have."""
        keys = [key for key, _ in units]
        jobs = [job for _, unit_jobs in units for job in unit_jobs]
        self._busy.update(keys)
        try:
            try:
                outcomes = await provider.poll_many(await self._provider_jobs(jobs))
            except Exception as exc:
                if not isinstance(exc, TranscribeError):
                    log.error("unexpected error while polling %s", provider.name, exc_info=exc)
                failure = (
                    exc
                    if isinstance(exc, TranscribeError)
                    else TemporaryError(f"unexpected: {exc!r}")
                )
                # The whole call failed: each unit takes it as its own failure, as it would have
                # had it been polled alone (its own attempts, backoff and age limit).
                for _, unit_jobs in units:
                    await self._step_failed(unit_jobs, failure)
                return
            now = self._clock()
            for job in jobs:
                outcome = outcomes.get(job.id)
                if outcome is None:
                    continue  # not answered: asked again next cycle
                if not isinstance(outcome, Progress):
                    await self._step_failed([job], outcome)
                    continue
                try:
                    await self._record_progress(provider, job, outcome, now)
                except Exception as exc:
                    await self._step_failed([job], exc)
        finally:
            self._busy.difference_update(keys)

    async def _for_each(
        self, items: Sequence[_Item], work: Callable[[_Item], Awaitable[_Outcome]]
    ) -> list[_Outcome | Exception]:
        """Run ``work`` on every item, at most ``max_concurrent_calls`` at a time; each outcome,
        or the exception it raised, in the order of ``items``.

        A few workers take the items in turn: with thousands of items, a task for each cost more
        than the work itself.
        """
        outcomes: dict[int, _Outcome | Exception] = {}
        queue = iter(enumerate(items))

        async def worker() -> None:
            for index, item in queue:
                try:
                    outcomes[index] = await work(item)
                except Exception as exc:
                    outcomes[index] = exc

        # A task group, so that no worker outlives the call, whatever ends it.
        async with asyncio.TaskGroup() as workers:
            for _ in range(min(self._max_calls, len(items))):
                workers.create_task(worker())
        # An item has no outcome only if its worker was cancelled from below (not by us).
        interrupted = RuntimeError("interrupted before it finished")
        return [outcomes.get(index, interrupted) for index in range(len(items))]

    async def _save_still_running(self) -> None:
        # Deferring these is safe: if the process dies first, the jobs are simply polled again.
        # A job changed meanwhile (a webhook made it due, a cancel) keeps its newer state.
        polled, self._still_running = self._still_running, {}
        if polled:
            await self._store.record_still_running(list(polled.values()), self._clock())

    async def provider_finished(self, provider: str, remote_id: str) -> bool:
        """A provider said (by webhook) that ``remote_id`` ended: poll its jobs at once.

        Only makes the jobs due; the poll itself fetches the outcome, so a forged or repeated
        notice can at most cause one early poll.
        """
        now = self._clock()
        if await self._store.record_remote_finished(provider, remote_id, now):
            return True
        # A short recording can finish before the answer that started it is recorded: the
        # notice is kept for that submission, to be polled at once when it is recorded.
        kept_since = now - timedelta(seconds=EARLY_NOTICE_SECONDS)
        self._early_notices = {
            key: at for key, at in self._early_notices.items() if at > kept_since
        }
        self._early_notices[(provider, remote_id)] = now
        return False

    async def drain(self) -> None:
        """Wait for background transfers to end."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def stop(self) -> None:
        """Abandon running transfers; their jobs stay in a state that restarts them."""
        for task in list(self._background):
            task.cancel()
        await self.drain()

    @property
    def steps_running(self) -> int:
        """Units (and batches being posted) with a step running right now."""
        return len(self._busy)

    def _due(self, jobs: Sequence[Job], now: datetime) -> bool:
        return any(job.next_attempt_at is None or job.next_attempt_at <= now for job in jobs)

    def _poll_at(self, now: datetime, delay: float) -> datetime:
        """When to poll next, ``delay`` from now, aimed half a tick early: a poll stamped "one
        interval from now" after the provider answered would otherwise miss the next tick by
        milliseconds and wait for the one after, doubling every delay. Only polls get this;
        retry delays (backoff, Retry-After) are kept exactly."""
        return now + timedelta(seconds=max(0.0, delay - self._poll_interval / 2))

    @staticmethod
    def _needs_transfer(job: Job) -> bool:
        return job.kind is JobKind.SLACK_FILE and job.state in (
            JobState.QUEUED,
            JobState.DOWNLOADING,
            JobState.UPLOADING,
        )

    def _spawn(self, key: str, work: Awaitable[None]) -> None:
        # Marked now, not when the task first runs, so nothing can start the unit twice.
        self._busy.add(key)
        task = asyncio.ensure_future(self._guarded(key, work))
        self._background.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._background.discard(done)
            self.on_progress()

        task.add_done_callback(finished)

    async def _guarded(self, key: str, work: Awaitable[None]) -> None:
        self._busy.add(key)
        try:
            await work
        finally:
            self._busy.discard(key)

    # -- advancing a unit --------------------------------------------------------------------

    async def _transfer(self, jobs: list[Job]) -> None:
        """Download the unit's Slack files and upload them to the provider."""
        # Read again now that this task holds the unit: the cycle's snapshot may predate a
        # transfer that finished since, and acting on it would fetch and upload a second time.
        fresh = [
            job
            for job in await self._store.get_jobs([job.id for job in jobs])
            if not job.state.is_terminal
        ]
        if any(self._needs_transfer(job) for job in fresh):
            async with self._transfer_slots:
                await self._run_step(fresh, self._download_and_upload)

    async def _run_step(
        self, jobs: list[Job], step: Callable[[Provider, list[Job]], Awaitable[None]]
    ) -> None:
        """Run one step of a unit; whatever it raises decides the retry or the failure."""
        provider = self._providers.get(jobs[0].provider)
        if provider is None:
            await self._fail(jobs, _unconfigured(jobs[0].provider))
            return
        try:
            await step(provider, jobs)
        except Exception as exc:
            await self._step_failed(jobs, exc)

    async def _step_failed(self, jobs: Sequence[Job], exc: Exception) -> None:
        """What a step of ``jobs`` raised decides the retry or the failure of those not done."""
        unfinished = [job for job in jobs if not job.state.is_terminal]
        if isinstance(exc, TranscribeError):
            await self._handle_error(unfinished, exc)
            return
        # A bug must not lose the work: retried with backoff, failed at the age limit.
        log.error("unexpected error in a step of %s", [job.id for job in jobs], exc_info=exc)
        await self._handle_error(unfinished, TemporaryError(f"unexpected: {exc!r}"))

    async def _submit_and_poll(self, provider: Provider, jobs: list[Job]) -> None:
        # Taken before submitting: a job submitted now is first polled when its provider's
        # estimate says it is worth it, not straight away.
        running = [job for job in jobs if job.state in (JobState.SUBMITTED, JobState.PROCESSING)]
        waiting = [job for job in jobs if _waits_for_submission(job)]
        if waiting:
            await self._submit(provider, waiting)
        if running:
            await self._poll(provider, running)

    async def _download_and_upload(self, provider: Provider, jobs: list[Job]) -> None:
        for job in jobs:
            # Only Slack files: a link beside them in a provider batch is fetched by the provider.
            if job.kind is JobKind.SLACK_FILE and job.state in (
                JobState.QUEUED,
                JobState.DOWNLOADING,
            ):
                await self._download(job)
        uploading = [job for job in jobs if job.state is JobState.UPLOADING]
        if uploading:
            await self._upload(provider, uploading)

    async def _download(self, job: Job) -> None:
        """Resolve, then stream the Slack file to the spool; ``job`` is updated in place."""
        try:
            if job.needs_file_info and not await self._resolve_stub(job):
                return
            limits = FileLimits.of(self._max_file_bytes, self._providers.get(job.provider))
            refusal = limits.refusal(size_bytes=job.size_bytes, duration_ms=job.duration_ms)
            if refusal is not None:
                # What Slack says of the file is enough: the provider would refuse it anyway.
                raise PermanentError(
                    f"file over its limits ({job.size_bytes} bytes, {job.duration_ms} ms)",
                    user_message=refusal,
                )
            if not job.download_url:
                raise PermanentError(
                    f"slack file {job.slack_file_id} has no download URL",
                    user_message=(
                        "Slack does not offer this file for download (it may be hidden by the "
                        "workspace's plan or deleted)."
                    ),
                )
            now = self._clock()
            if not await self._store.start_download(job.id, now):
                return  # moved on meanwhile (failed, say): nothing to fetch
            job.state, job.updated_at = JobState.DOWNLOADING, now
            spool = self._spool_dir / job.id
            size = await self._downloader.download(
                job.download_url,
                spool,
                max_bytes=limits.max_bytes,
                too_large_message=limits.too_large(None),
            )
            log.info("job %s: downloaded %s (%d bytes)", job.id, job.filename, size)
            await self._record_download(job, spool, size)
        except PermanentError as exc:
            await self._fail([job], exc)

    async def _record_download(self, job: Job, spool: Path, size: int) -> None:
        now = self._clock()
        if not await self._store.record_download(
            job.id, spool_path=str(spool), size_bytes=size, now=now
        ):
            spool.unlink(missing_ok=True)  # the job moved on meanwhile: the file is not needed
            return
        job.state, job.spool_path, job.size_bytes = JobState.UPLOADING, str(spool), size
        job.stalled_since, job.updated_at = None, now

    async def _resolve_stub(self, job: Job) -> bool:
        assert job.slack_file_id is not None
        try:
            file = await self._slack.file_info(job.slack_file_id)
        except SlackApiError as exc:
            code = slack_error_code(exc)
            reason = FILE_INFO_ERRORS.get(code)
            if reason is not None:
                raise PermanentError(f"files.info: {code}", user_message=reason) from exc
            raise TemporaryError(f"files.info failed: {code}") from exc
        now = self._clock()
        if not is_media_file(file):
            if await self._store.skip_job(job.id, now):
                job.state, job.finished_at, job.updated_at = JobState.SKIPPED, now, now
            return False
        size = file.get("size") if isinstance(file.get("size"), int) else None
        # Its size and duration are checked against the limits before the download.
        info = FileInfo(
            filename=str(file.get("name") or job.filename),
            download_url=file.get("url_private_download") or file.get("url_private"),
            mimetype=file.get("mimetype"),
            size_bytes=size,
            duration_ms=slack_duration_ms(file),
        )
        if not await self._store.record_file_info(job.id, info, now):
            return False
        job.needs_file_info, job.filename, job.download_url = (
            False,
            info.filename,
            info.download_url,
        )
        job.mimetype, job.size_bytes, job.duration_ms = info.mimetype, size, info.duration_ms
        job.updated_at = now
        return True

    async def _upload(self, provider: Provider, jobs: list[Job]) -> None:
        present = []
        for job in jobs:
            if job.spool_path and Path(job.spool_path).is_file():
                present.append(job)
            else:
                # The spool is gone (a new machine, a cleaned disk): fetch from Slack again.
                log.warning("job %s: spool file missing; downloading again", job.id)
                now = self._clock()
                if await self._store.download_again(job.id, now):
                    job.state, job.spool_path, job.updated_at = JobState.QUEUED, None, now
        if not present:
            return
        self._raise_if_account_refuses(provider, UPLOAD_STEP)
        resent = [job for job in present if job.sent_at is not None]
        # Room first: a file that waits for room costs no call at the provider. Without room,
        # the files stay here (with their spool) until there is.
        if not await self._take_storage(provider, present):
            await self._wait_for_room(present)
            return
        outcomes: dict[str, Uploaded | PermanentError] = {}
        if resent:
            # An upload was sent before and its answer lost (a crash): use what it created.
            outcomes.update(await provider.find_uploaded(await self._provider_jobs(resent)))
        to_send = [job for job in present if job.id not in outcomes]
        if to_send:
            sent = await self._send(to_send, provider.upload)
            outcomes.update(sent)
            if any(isinstance(outcome, Uploaded) for outcome in sent.values()):
                await self._account_works(provider, UPLOAD_STEP)
        await self._record_uploads(present, outcomes)

    async def _record_uploads(
        self, jobs: Sequence[Job], outcomes: Mapping[str, Uploaded | PermanentError]
    ) -> None:
        """Record each answered upload (a refusal is an answer too, not a lost one), then drop
        the spool files the provider no longer needs."""
        uploads = [
            Upload(job.id, outcome.file_id, outcome.upload_id)
            for job in jobs
            if isinstance(outcome := outcomes.get(job.id), Uploaded)
        ]
        refused = {
            job.id: _failure(outcome)
            for job in jobs
            if isinstance(outcome := outcomes.get(job.id), PermanentError)
        }
        if not uploads and not refused:
            return
        now = self._clock()
        moved = await self._store.record_uploads(uploads, refused, now)
        by_id = {job.id: job for job in jobs}
        for upload in uploads:
            job = by_id[upload.job_id]
            if job.id in moved:
                job.state, job.attempts, job.sent_at = JobState.UPLOADED, 0, None
                job.provider_file_id, job.provider_upload_id = upload.file_id, upload.upload_id
                job.next_attempt_at, job.stalled_since, job.updated_at = None, None, now
        for job in jobs:
            if job.id in refused and job.id in moved:
                _mirror_failure(job, refused[job.id], now)
                job.sent_at = None
            if job.id in moved:
                await self._drop_spool(job)

    async def _submit(self, provider: Provider, jobs: list[Job]) -> None:
        uploaded = [job for job in jobs if job.provider_file_id is not None]
        if uploaded:
            readiness = await provider.uploads_ready(await self._provider_jobs(uploaded))
            for job in uploaded:
                ready = readiness.get(job.id, False)
                if isinstance(ready, PermanentError):
                    await self._fail([job], ready)
            # A job the provider did not mention is not ready either.
            if any(readiness.get(job.id, False) is False for job in uploaded):
                raise NotReadyYet("provider is still receiving the uploads")
            jobs = [job for job in jobs if not job.state.is_terminal]
        if not jobs or not self._take_submission_slots(provider, len(jobs)):
            return
        try:
            self._raise_if_account_refuses(provider, SUBMIT_STEP)
        except AccountProblem:
            self._in_flight[provider.name] -= len(jobs)  # the slots taken above go unused
            raise
        outcomes: dict[str, Submitted | PermanentError] = {}
        resent = [job for job in jobs if job.sent_at is not None]
        if resent:
            # A submission was sent before and its answer lost (a crash): adopt what it started.
            outcomes.update(await provider.find_submitted(await self._provider_jobs(resent)))
        to_send = [job for job in jobs if job.id not in outcomes]
        if to_send:
            await self._mark_sent(to_send, self._store.mark_submission_sent)
            sent = await self._send(to_send, provider.submit)
            outcomes.update(sent)
            if any(isinstance(outcome, Submitted) for outcome in sent.values()):
                await self._account_works(provider, SUBMIT_STEP)
        await self._record_submissions(provider, jobs, outcomes)

    async def _record_submissions(
        self,
        provider: Provider,
        jobs: Sequence[Job],
        outcomes: Mapping[str, Submitted | PermanentError],
    ) -> None:
        """Record what the provider answered for each of ``jobs``, in one transaction: a crash
        must not leave half of a provider batch recorded."""
        now = self._clock()
        submissions: list[Submission] = []
        refused: dict[str, Failure] = {}
        for job in jobs:
            outcome = outcomes.get(job.id)
            if isinstance(outcome, Submitted):
                delay = next_poll_delay(
                    0,
                    outcome.eta_seconds,
                    self._poll_interval,
                    notified=provider.notifies_completion,
                )
                # A notice that it ended may have come before this answer: poll it at once.
                notified = self._early_notices.pop((provider.name, outcome.remote_id), None)
                submissions.append(
                    Submission(
                        job_id=job.id,
                        remote_id=outcome.remote_id,
                        file_id=outcome.file_id,
                        eta_at=_eta(now, outcome.eta_seconds),
                        poll_at=None if notified else self._poll_at(now, delay),
                    )
                )
            else:
                reason = outcome if isinstance(outcome, PermanentError) else None
                refused[job.id] = _failure(
                    reason or PermanentError("provider did not take this file")
                )
        moved = await self._store.record_submissions(submissions, refused, now)
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
                _mirror_failure(by_id[job_id], failure, now)
                by_id[job_id].sent_at = None

    async def _poll(self, provider: Provider, jobs: list[Job]) -> None:
        outcomes = await provider.poll(await self._provider_jobs(jobs))
        now = self._clock()
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
            if job.resubmissions >= MAX_RESUBMISSIONS:
                log.warning("job %s: lost again after %d resubmissions", job.id, job.resubmissions)
                refused[job.id] = Failure(
                    message=(
                        f"{exc.user_message} It was sent again {_times(job.resubmissions)} and "
                        "lost each time; share the file again later to retry."
                    ),
                    detail=exc.detail,
                )
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
        moved = await self._store.record_work_lost(resubmissions, refused, now)
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
                _mirror_failure(by_id[job_id], failure, now)

    async def _record_progress(
        self, provider: Provider, job: Job, progress: Progress, now: datetime
    ) -> None:
        if progress.status is ProgressStatus.COMPLETED:
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
            if not await self._store.complete_job(
                job.id, transcript=transcript, raw=progress.raw, now=now
            ):
                return  # moved on meanwhile (a retry of a lost submission, say)
            job.state, job.transcript, job.raw_result = JobState.COMPLETED, transcript, progress.raw
            job.finished_at, job.error, job.error_detail, job.updated_at = now, None, None, now
            log.info("job %s: completed (%d chars)", job.id, len(progress.transcript.text))
        elif progress.status is ProgressStatus.FAILED:
            await self._fail(
                [job],
                progress.error or PermanentError("provider reported failure"),
                provider_answer=progress.raw,
            )
        else:
            waiting_since = job.stalled_since or job.created_at
            if now - waiting_since > self._max_job_age:
                hours = self._max_job_age.total_seconds() / 3600
                await self._fail(
                    [job],
                    PermanentError(
                        f"provider still {progress.status.value} after {hours:g} h",
                        user_message=(
                            f"The transcription service had not finished after {hours:g} hours; "
                            "try again later, or with another provider."
                        ),
                    ),
                )
                return
            delay = next_poll_delay(
                (now - waiting_since).total_seconds(),
                progress.eta_seconds,
                self._poll_interval,
                notified=provider.notifies_completion,
            )
            self._still_running[job.id] = StillRunning(
                job_id=job.id,
                read_state=job.state,
                read_updated_at=job.updated_at,
                poll_at=self._poll_at(now, delay),
                eta_at=_eta(now, progress.eta_seconds),
            )

    async def _with_storage_room(
        self, units: Sequence[tuple[str, list[Job]]]
    ) -> list[tuple[str, list[Job]]]:
        """The transfer units (oldest first) whose uploads fit in their provider's storage caps
        now, with the room they take; the others wait, unchanged, for a later cycle.

        First come, first served: once one unit must wait, every later one of the same
        provider waits too, so a large file is not passed for ever by smaller ones. Waiting
        costs no time of a job's age allowance: nothing failed.
        """
        capped = {
            jobs[0].provider
            for _, jobs in units
            if _has_storage_caps(self._providers.get(jobs[0].provider))
        }
        if not capped:
            return list(units)
        async with self._storage_lock:
            for name in capped:
                self._stored[name] = list(await self._store.stored_at_provider(name))
            planned = {name: list(self._stored[name]) for name in capped}
        full: set[str] = set()
        going: list[tuple[str, list[Job]]] = []
        for key, jobs in units:
            provider = self._providers[jobs[0].provider] if jobs[0].provider in capped else None
            if provider is None:
                going.append((key, jobs))
                continue
            if provider.name in full:
                continue
            # Sizes from Slack; an upload already sent is counted at the provider already.
            uploads = [job for job in jobs if self._needs_transfer(job) and job.sent_at is None]
            size = sum(job.size_bytes or 0 for job in uploads)
            held = planned[provider.name]
            if not _fits(provider, held, len(uploads), size):
                full.add(provider.name)
                continue
            held[0] += len(uploads)
            held[1] += size
            going.append((key, jobs))
        return going

    async def _take_storage(self, provider: Provider, jobs: Sequence[Job]) -> bool:
        """Mark ``jobs`` sent if their files fit in the provider's storage caps, taking the
        room; False, with nothing changed, when they do not fit yet.

        A job already marked sent (its answer lost) is in the count of what the provider holds
        already: it takes no more room when it goes out again."""
        new = [job for job in jobs if job.sent_at is None]
        if not _has_storage_caps(provider):
            await self._mark_sent(new, self._store.mark_upload_sent)
            return True
        size = sum(job.size_bytes or 0 for job in new)
        async with self._storage_lock:
            held = self._stored.get(provider.name)
            if held is None or not _fits(provider, held, len(new), size):
                # Clean-up may have freed room since the count.
                held = self._stored[provider.name] = list(
                    await self._store.stored_at_provider(provider.name)
                )
            if not _fits(provider, held, len(new), size):
                log.info(
                    "jobs %s wait for room at %s (%d files, %d bytes held)",
                    [job.id for job in jobs],
                    provider.name,
                    held[0],
                    held[1],
                )
                return False
            # Marked under the lock: a count made after it sees this upload.
            await self._mark_sent(new, self._store.mark_upload_sent)
            held[0] += len(new)
            held[1] += size
            return True

    async def _wait_for_room(self, jobs: Sequence[Job]) -> None:
        """Try ``jobs`` again after a poll interval, when clean-up may have freed room: not at
        every cycle meanwhile. Waiting for room costs no time of a job's age allowance."""
        now = self._clock()
        stalled = [job.stalled_since for job in jobs if job.stalled_since is not None]
        await self._store.postpone_jobs(
            [job.id for job in jobs],
            until=now + timedelta(seconds=self._poll_interval),
            stalled_since=min(stalled, default=None),
            now=now,
        )

    def _take_submission_slots(self, provider: Provider, count: int) -> bool:
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

    # -- errors ------------------------------------------------------------------------------

    async def _handle_error(self, jobs: list[Job], exc: TranscribeError) -> None:
        if not jobs:
            return
        if isinstance(exc, PermanentError):
            log.warning("jobs %s failed: %s", [job.id for job in jobs], exc.detail)
            await self._fail(jobs, exc)
            return
        if isinstance(exc, AccountProblem):
            await self._wait_for_account(jobs, exc)
            return
        assert isinstance(exc, TemporaryError)
        now = self._clock()
        # Counted from when this step started waiting or failing, not from creation: work that
        # queued for long still gets its full allowance. It covers waiting too: an upload that
        # never becomes ready must end.
        since = min(job.stalled_since or now for job in jobs)
        if now - since > self._max_job_age:
            hours = self._max_job_age.total_seconds() / 3600
            await self._fail(
                jobs,
                PermanentError(
                    f"gave up after {hours:g} h: {exc.detail}",
                    user_message=f"Gave up after {hours:g} hours of trying. {exc.user_message}",
                ),
            )
            return
        if isinstance(exc, NotReadyYet):
            delay = exc.retry_after or self._poll_interval
            await self._store.postpone_jobs(
                [job.id for job in jobs],
                until=now + timedelta(seconds=delay),
                stalled_since=since,
                now=now,
            )
            return
        attempts = max(job.attempts for job in jobs) + 1
        delay = (
            exc.retry_after if exc.retry_after is not None else backoff_seconds(attempts, self._rng)
        )
        log.warning(
            "jobs %s: temporary failure (attempt %d, next in %.1fs): %s",
            [job.id for job in jobs],
            attempts,
            delay,
            exc.detail,
        )
        await self._store.schedule_retry(
            [job.id for job in jobs],
            attempts=attempts,
            retry_at=now + timedelta(seconds=delay),
            detail=exc.detail,
            stalled_since=since,
            now=now,
        )

    # -- provider accounts that refuse new work -----------------------------------------------

    async def _load_account_problems(self, now: datetime) -> None:
        """Take over the account problems a previous run recorded: the work that waits for them
        stays held, and one call tries each account again at once."""
        self._accounts = {}
        for record in await self._store.account_problems():
            self._accounts[record.provider] = _StandingProblem(
                record=record, next_probe_at=now, logged_at=now
            )
            log.error(
                "the %s account still refused new work when the bot last ran (%s, since %s): "
                "trying it again now",
                record.provider,
                record.reason,
                record.since.isoformat(timespec="seconds"),
            )

    def _raise_if_account_refuses(self, provider: Provider, step: str) -> None:
        """Raise the provider's standing account problem if ``step`` must wait for it.

        While an account refuses new work, one call a minute tries it again (this unit, when
        its turn comes) and the rest of the provider's work at that step waits: a thousand files
        must not each hear the same refusal.
        """
        standing = (self._accounts or {}).get(provider.name)
        if standing is None or step not in standing.record.steps:
            return
        now = self._clock()
        if now >= standing.next_probe_at:
            standing.next_probe_at = now + timedelta(seconds=ACCOUNT_RETRY_SECONDS)
            return
        record = standing.record
        raise _HeldBack(
            record.detail,
            provider=record.provider,
            reason=record.reason,
            user_message=record.message,
        )

    async def _wait_for_account(self, jobs: Sequence[Job], exc: AccountProblem) -> None:
        """Hold ``jobs`` until their provider's account works again (at most the age limit)."""
        now = self._clock()
        provider = jobs[0].provider
        if isinstance(exc, _HeldBack):
            held = (self._accounts or {}).get(provider)
            if held is None:
                return  # the account worked again meanwhile: they go on next cycle
            standing = held
        else:
            step = (
                UPLOAD_STEP if any(job.state is JobState.UPLOADING for job in jobs) else SUBMIT_STEP
            )
            standing = await self._account_refused(provider, step, exc, now)
        ids = [job.id for job in jobs]
        # Counted from when they started waiting: a file may wait for an admin as long as it
        # may keep failing, and no longer.
        since = min(job.stalled_since or now for job in jobs)
        if now - since > self._max_job_age:
            hours = self._max_job_age.total_seconds() / 3600
            await self._fail(
                jobs,
                PermanentError(
                    f"gave up after {hours:g} h: {exc.detail}",
                    user_message=f"Gave up after {hours:g} hours of waiting. {exc.user_message}",
                ),
            )
            return
        await self._store.hold_for_account(
            ids,
            provider=provider,
            until=standing.next_probe_at,
            stalled_since=since,
            detail=exc.detail,
            now=now,
        )
        for job in jobs:
            job.held_by = provider
        if provider not in (self._accounts or {}):
            # The account worked again while these were being held: they go on with the rest.
            await self._store.release_jobs(ids, self._clock())

    async def _account_refused(
        self, provider: str, step: str, exc: AccountProblem, now: datetime
    ) -> _StandingProblem:
        """Record that ``provider``'s account refused ``step``, and tell the operator."""
        if self._accounts is None:
            self._accounts = {}
        accounts = self._accounts
        standing = accounts.get(provider)
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
            standing = accounts[provider] = _StandingProblem(
                record=record,
                next_probe_at=(
                    standing.next_probe_at
                    if standing
                    else now + timedelta(seconds=ACCOUNT_RETRY_SECONDS)
                ),
                logged_at=now,
            )
            await self._store.record_account_problem(record, now)
            log.error(
                "the %s account refuses new work (%s): %s. Its files wait and go on by "
                "themselves once an admin has fixed the account (tried again every %.0f s, "
                "for up to %g h per file)",
                provider,
                exc.reason,
                exc.detail,
                ACCOUNT_RETRY_SECONDS,
                self._max_job_age.total_seconds() / 3600,
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

    async def _account_works(self, provider: Provider, step: str) -> None:
        """``step`` went through at ``provider``: if its account was refusing it, the work held
        for it goes on now."""
        accounts = self._accounts or {}
        standing = accounts.get(provider.name)
        if standing is None or step not in standing.record.steps:
            return
        # Forgotten before the write: units running now must not release the jobs twice.
        del accounts[provider.name]
        now = self._clock()
        released = await self._store.resolve_account_problem(provider.name, now)
        log.warning(
            "the %s account takes new work again after %s; %d waiting file(s) go on",
            provider.name,
            now - standing.record.since,
            released,
        )
        self.on_progress()

    async def _fail(
        self, jobs: Sequence[Job], exc: TranscribeError, *, provider_answer: Any = None
    ) -> None:
        if not jobs:
            return
        now = self._clock()
        failure = _failure(exc, provider_answer)
        moved = await self._store.fail_jobs([job.id for job in jobs], failure, now)
        for job in jobs:
            if job.id in moved:
                _mirror_failure(job, failure, now)
            # Not moved: it had finished already, and needs its spool no more than a failed one.
            await self._drop_spool(job)

    # -- delivery ----------------------------------------------------------------------------

    async def _deliver_due(self, now: datetime) -> None:
        for batch in await self._store.batches_to_deliver(now):
            if batch.id in self._busy:
                continue
            try:
                await self._guarded(batch.id, self._deliver(batch))
            except Exception:
                # One batch's trouble must not keep the others' replies back.
                log.exception("batch %s: unexpected error while posting the reply", batch.id)
                await self._retry_delivery_later(batch, "unexpected error")

    async def _deliver(self, batch: Batch) -> None:
        jobs = await self._store.jobs_of(batch.id)
        reply = render_reply(jobs)
        try:
            if not reply.blocks:
                # Nothing was media after all: no reply, just tidy the reaction, and a progress
                # message already shown must not go on promising a transcript.
                if not await self._move_batch(
                    batch, self._store.record_no_reply, BatchMoves.DELIVER
                ):
                    return
                await self._settle_progress_message(batch, NOTHING_TEXT)
                await self._slack.remove_reaction(
                    batch.channel_id, batch.message_ts, REACTION_WORKING
                )
                return
            already_in_thread: set[str] = set()
            status_ts = batch.status_ts if batch.status_ts != PENDING_STATUS else None
            if batch.state is BatchState.DELIVERING or batch.status_ts == PENDING_STATUS:
                # A previous attempt may have posted before the process died: look first.
                thread = await self._thread_of(batch)
                if thread.reply_ts is not None:
                    await self._finish_delivery(batch, thread.reply_ts, reply.any_failed)
                    return
                already_in_thread = thread.file_names
                status_ts = status_ts or thread.status_ts
            if batch.state is not BatchState.DELIVERING and not await self._move_batch(
                batch, self._store.begin_delivery, BatchMoves.BEGIN_DELIVERY
            ):
                return  # cancelled since it was read: nothing may be posted

            uploaded = {job.id for job in jobs if job.attachment_uploaded}
            refused: list[str] = []
            for attachment in reply.attachments:
                if attachment.job_id in uploaded or attachment.filename in already_in_thread:
                    continue
                try:
                    await self._slack.upload_text(
                        channel=batch.channel_id,
                        thread_ts=batch.thread_ts,
                        filename=attachment.filename,
                        title=attachment.title,
                        content=attachment.content,
                    )
                except SlackApiError as exc:
                    if slack_error_code(exc) != "missing_scope":
                        raise
                    # Retrying cannot help until an admin acts: the reply goes out without it.
                    log.warning(
                        "batch %s: cannot upload %s: the files:write scope is missing",
                        batch.id,
                        attachment.filename,
                    )
                    refused.append(attachment.filename)
            if refused:
                reply.blocks = [*reply.blocks[: MAX_BLOCKS - 1], context(NOT_ATTACHED_TEXT)]
            # Only once all of a job's files are up; a retry after a partial failure finds the
            # ones already posted by name in the thread.
            attached = {attachment.job_id for attachment in reply.attachments} - uploaded
            if attached:
                await self._store.mark_attachments_uploaded(attached, self._clock())
            reply_ts = None
            if status_ts is not None:
                # The progress message becomes the reply: no stale progress text stays behind,
                # and an update repeated after a crash changes nothing.
                try:
                    await self._slack.update_message(
                        channel=batch.channel_id,
                        ts=status_ts,
                        text=reply.text,
                        blocks=reply.blocks,
                        batch_id=batch.id,
                        final=True,
                    )
                    reply_ts = status_ts
                except SlackApiError as exc:
                    if slack_error_code(exc) not in ("message_not_found", "cant_update_message"):
                        raise
                    # Someone deleted the progress message: the reply is posted afresh.
                    log.info("batch %s: progress message gone; posting the reply", batch.id)
            if reply_ts is None:
                reply_ts = await self._slack.post_reply(
                    channel=batch.channel_id,
                    thread_ts=batch.thread_ts,
                    text=reply.text,
                    blocks=reply.blocks,
                    batch_id=batch.id,
                )
            await self._finish_delivery(batch, reply_ts, reply.any_failed)
        except SlackApiError as exc:
            await self._delivery_failed(batch, exc)

    async def _finish_delivery(self, batch: Batch, reply_ts: str, any_failed: bool) -> None:
        delivered_at = self._clock()
        if not await self._store.record_reply(batch.id, reply_ts, delivered_at):
            # Cancelled or settled meanwhile: its end is someone else's to report.
            log.warning("batch %s: reply %s posted, but the batch had moved on", batch.id, reply_ts)
            return
        batch.state = BatchState.DELIVERED
        metrics.observe_delivery(batch.created_at, delivered_at, provider=batch.provider)
        log.info("batch %s: reply posted in %s (%s)", batch.id, batch.channel_id, reply_ts)
        await self._slack.remove_reaction(batch.channel_id, batch.message_ts, REACTION_WORKING)
        await self._slack.add_reaction(
            batch.channel_id,
            batch.message_ts,
            REACTION_FAILED if any_failed else REACTION_DONE,
        )

    async def _delivery_failed(self, batch: Batch, exc: SlackApiError) -> None:
        code = slack_error_code(exc)
        if code in UNDELIVERABLE_ERRORS:
            await self._give_up_delivery(batch, code)
            return
        await self._retry_delivery_later(batch, code)

    async def _give_up_delivery(self, batch: Batch, reason: str) -> None:
        log.error("batch %s: cannot post the reply (%s); giving up", batch.id, reason)
        await self._move_batch(batch, self._store.mark_undeliverable, BatchMoves.GIVE_UP)

    async def _retry_delivery_later(self, batch: Batch, reason: str) -> None:
        now = self._clock()
        if now - (batch.failing_since or now) > self._max_job_age:
            await self._give_up_delivery(batch, f"still failing: {reason}")
            return
        attempts = batch.attempts + 1
        delay = backoff_seconds(attempts, self._rng)
        log.warning("batch %s: posting failed (%s); retry in %.1fs", batch.id, reason, delay)
        await self._store.schedule_delivery_retry(
            batch.id,
            attempts=attempts,
            retry_at=now + timedelta(seconds=delay),
            failing_since=batch.failing_since or now,
            now=now,
        )

    async def _move_batch(
        self,
        batch: Batch,
        verb: Callable[[str, datetime], Awaitable[bool]],
        move: Move[BatchState],
    ) -> bool:
        """Make ``move`` with the store's ``verb``, unless someone (a cancel) moved the batch
        first; whether it moved."""
        moved = await verb(batch.id, self._clock())
        if moved:
            batch.state = move.target
        return moved

    # -- progress in the thread --------------------------------------------------------------

    async def _report_progress(self) -> None:
        """Keep one progress message up to date in the thread of each batch still running."""
        now = self._clock()
        for cancelled in await self._store.cancelled_batches_to_settle(CANCELLED_TEXT):
            # The progress message of a cancelled batch must not promise a transcript.
            try:
                await self._settle_progress_message(cancelled, CANCELLED_TEXT)
            except Exception as exc:
                log.warning("batch %s: could not mark cancelled: %r", cancelled.id, exc)
        due = await self._store.batches_needing_progress(
            now, after=self._progress_after, every=self._progress_every, held_note=HELD_MARK
        )
        jobs_by_batch = await self._store.jobs_of_batches([batch.id for batch in due])
        shown: list[tuple[Batch, Mrkdwn]] = []
        for batch in due:
            jobs = jobs_by_batch.get(batch.id, [])
            reported = [job for job in jobs if job.state is not JobState.SKIPPED]
            if not reported or all(job.state.is_terminal for job in reported):
                continue  # the reply is next; it takes over the progress message
            shown.append((batch, progress_text(reported)))
        # Posts that were under way when the process stopped: the threads know if they went out.
        pending = [batch for batch, _ in shown if batch.status_ts == PENDING_STATUS]
        lost: set[str] = set()
        found = await self._for_each(pending, lambda batch: self._find_progress_message(batch, now))
        for batch, outcome in zip(pending, found, strict=True):
            if isinstance(outcome, Exception):
                _progress_failed(batch, outcome)
                lost.add(batch.id)
        to_post: list[tuple[Batch, Mrkdwn]] = []
        to_update: list[tuple[Batch, Mrkdwn]] = []
        for batch, text in shown:
            if batch.id in lost:
                continue
            if batch.status_ts is None or batch.status_ts == PENDING_STATUS:
                to_post.append((batch, text))
            elif text != batch.status_text and (
                batch.status_updated_at is None
                or now - batch.status_updated_at >= self._progress_every
            ):
                to_update.append((batch, text))
        await self._post_progress(to_post, now)
        await self._update_progress(to_update, now)

    async def _find_progress_message(self, batch: Batch, now: datetime) -> None:
        """A progress message was being posted when the process stopped: the thread knows
        whether it went out. Sets ``batch.status_ts`` to it, or to None."""
        batch.status_ts = (await self._thread_of(batch)).status_ts
        if batch.status_ts is not None:
            await self._store.record_progress_found(batch.id, batch.status_ts, now)

    async def _post_progress(self, shown: Sequence[tuple[Batch, Mrkdwn]], now: datetime) -> None:
        """Post the first progress message of each batch (with its ``text``), as many at once
        as calls may run: a crash leaves no more than that many to look for."""
        for start in range(0, len(shown), self._max_calls):
            await self._post_progress_group(shown[start : start + self._max_calls], now)

    async def _post_progress_group(
        self, shown: Sequence[tuple[Batch, Mrkdwn]], now: datetime
    ) -> None:
        # Marked first: if the process dies during the posts, the next run looks for each
        # message in its thread instead of posting a second one.
        await self._store.mark_progress_pending([batch.id for batch, _ in shown], now)

        async def post(batch: Batch, text: Mrkdwn) -> ProgressShown:
            ts = await self._slack.post_reply(
                channel=batch.channel_id,
                thread_ts=batch.thread_ts,
                text=text,
                blocks=[context(text)],
                batch_id=batch.id,
                final=False,
            )
            return ProgressShown(batch.id, text, message_ts=ts)

        await self._show_each(shown, post, now)

    async def _update_progress(self, shown: Sequence[tuple[Batch, Mrkdwn]], now: datetime) -> None:
        """Show the new ``text`` in each batch's progress message."""

        async def update(batch: Batch, text: Mrkdwn) -> ProgressShown:
            assert batch.status_ts is not None
            await self._slack.update_message(
                channel=batch.channel_id,
                ts=batch.status_ts,
                text=text,
                blocks=[context(text)],
                batch_id=batch.id,
                final=False,
            )
            return ProgressShown(batch.id, text)

        await self._show_each(shown, update, now)

    async def _show_each(
        self,
        shown: Sequence[tuple[Batch, Mrkdwn]],
        show: Callable[[Batch, Mrkdwn], Awaitable[ProgressShown]],
        now: datetime,
    ) -> None:
        """``show`` each (batch, text), then record each one that went out, in one
        transaction."""
        outcomes = await self._for_each(shown, lambda item: show(*item))
        went_out: list[ProgressShown] = []
        for (batch, _), outcome in zip(shown, outcomes, strict=True):
            if isinstance(outcome, Exception):
                _progress_failed(batch, outcome)
            else:
                went_out.append(outcome)
        await self._store.record_progress_shown(went_out, now)

    async def _thread_of(self, batch: Batch) -> ThreadState:
        """What the batch's thread already holds from this batch: after a crash, the thread
        (not the database) knows whether a post went out."""
        return await self._slack.thread_state(
            channel=batch.channel_id,
            thread_ts=batch.thread_ts,
            batch_id=batch.id,
            since=batch.created_at,
        )

    async def _settle_progress_message(self, batch: Batch, text: Mrkdwn) -> None:
        """Turn a batch's progress message, if it has one, into a final note (``text``)."""
        status_ts = batch.status_ts
        if status_ts == PENDING_STATUS:
            # Its post may or may not have happened before a crash: the thread knows.
            thread = await self._thread_of(batch)
            status_ts = thread.status_ts
        if status_ts is not None:
            await self._slack.update_message(
                channel=batch.channel_id,
                ts=status_ts,
                text=text,
                blocks=[context(text)],
                batch_id=batch.id,
                final=True,
            )
        # Recorded only once done, so a failed update is tried again next cycle.
        await self._store.record_final_note(batch.id, status_ts, text, self._clock())

    # -- clean-up at the provider ------------------------------------------------------------

    async def _clean_up(self) -> None:
        # Spool files of batches that will not go on (cancelled mid-transfer) are only disk.
        for job in await self._store.jobs_with_unneeded_spool():
            await self._drop_spool(job)
        await self._recover_lost_answers_of_closed_batches()
        groups: dict[tuple[str, str], list[Job]] = {}
        # A per-file provider's copies go as soon as their job has ended: its storage is capped,
        # and a batch of more files than the caps allow must free room while it runs.
        per_file = [name for name, provider in self._providers.items() if not provider.batch_native]
        for job in await self._store.jobs_to_clean_up(self._clock(), finished_early=per_file):
            groups.setdefault((job.provider, job.batch_id), []).append(job)
        for (provider_name, _), jobs in groups.items():
            provider = self._providers.get(provider_name)
            if provider is None:
                await self._store.mark_cleaned_up([job.id for job in jobs], self._clock())
            elif provider.batch_native:
                await self._clean_up_group(provider, jobs)
            else:
                # Each copy on its own: one the provider will not delete yet (a transcription
                # still processing) must not keep its siblings' room taken.
                for job in jobs:
                    await self._clean_up_group(provider, [job])

    async def _clean_up_group(self, provider: Provider, jobs: Sequence[Job]) -> None:
        ids = [job.id for job in jobs]
        try:
            await provider.clean_up(await self._provider_jobs(jobs))
        except PermanentError as exc:
            # Nothing more can be done; the provider keeps its copy.
            log.warning("clean-up of %s failed for good: %s", ids, exc.detail)
        except Exception as exc:
            # Still in use at the provider (a cancelled job still processing) or a
            # passing fault: try again in a while, not every cycle.
            detail = exc.detail if isinstance(exc, TranscribeError) else repr(exc)
            log.warning("clean-up of %s failed; retrying later: %s", ids, detail)
            retry_at = self._clock() + timedelta(seconds=CLEAN_UP_RETRY_SECONDS)
            await self._store.postpone_clean_up(ids, retry_at, self._clock())
            return
        await self._store.mark_cleaned_up(ids, self._clock())

    async def _recover_lost_answers_of_closed_batches(self) -> None:
        """A batch cancelled while a call's answer was lost may still own a copy at the
        provider: find it, so the clean-up below deletes it."""
        for job in await self._store.lost_answers_to_recover():
            provider = self._providers.get(job.provider)
            try:
                file_id = remote_id = None
                if provider is not None:
                    (asked,) = await self._provider_jobs([job])
                    if job.state is JobState.UPLOADING:
                        uploaded = (await provider.find_uploaded([asked])).get(job.id)
                        file_id = uploaded.file_id if uploaded is not None else None
                    else:
                        submitted = (await provider.find_submitted([asked])).get(job.id)
                        remote_id = submitted.remote_id if submitted is not None else None
                await self._store.record_lost_answer(
                    job.id, file_id=file_id, remote_id=remote_id, now=self._clock()
                )
            except Exception as exc:
                log.warning("job %s: could not look for a lost answer yet: %r", job.id, exc)

    async def _purge_old_transcripts(self) -> None:
        """Erase transcripts delivered longer than the retention period ago (hourly)."""
        now = self._clock()
        if self._last_purge_at is not None and now - self._last_purge_at < timedelta(hours=1):
            return
        self._last_purge_at = now
        purged = await self._store.purge_transcripts_before(now - self._retention, now)
        if purged:
            log.info("erased %d transcript(s) past the retention period", purged)

    # -- helpers -----------------------------------------------------------------------------

    async def _provider_jobs(self, jobs: Sequence[Job]) -> list[ProviderJob]:
        """What the provider is told about ``jobs``; their batches are read once."""
        missing = {job.batch_id for job in jobs if job.batch_id not in self._hints}
        if missing:
            self._hints.update(await self._store.language_hints_of(missing))
        return [_provider_job(job, self._hints.get(job.batch_id, NO_HINTS)) for job in jobs]

    async def _drop_spool(self, job: Job) -> None:
        """Delete the job's spool file (the provider has it, or it is not needed any more)."""
        if job.spool_path:
            Path(job.spool_path).unlink(missing_ok=True)
            now = self._clock()
            await self._store.record_spool_deleted(job.id, now)
            job.spool_path, job.updated_at = None, now

    async def _send(
        self,
        jobs: Sequence[Job],
        call: Callable[[Sequence[ProviderJob]], Awaitable[Mapping[str, _Outcome]]],
    ) -> Mapping[str, _Outcome]:
        """Make the provider ``call`` (an upload or a submission) for ``jobs``, marked sent.

        An account that refuses new work answers the call: nothing was created, and nothing
        is to be looked for at the provider before the next try, or at clean-up."""
        try:
            return await call(await self._provider_jobs(jobs))
        except AccountProblem:
            now = self._clock()
            for job in jobs:
                await self._store.record_lost_answer(job.id, file_id=None, remote_id=None, now=now)
                job.sent_at = None
            raise

    async def _mark_sent(
        self, jobs: Sequence[Job], verb: Callable[[Sequence[str], datetime], Awaitable[int]]
    ) -> None:
        """Record with the store's ``verb`` that a call which may create something at the
        provider is about to go out."""
        now = self._clock()
        await verb([job.id for job in jobs], now)
        for job in jobs:
            job.sent_at = now


CANCELLED_TEXT = mrkdwn(
    ":no_entry_sign: Transcription cancelled; nothing more will be posted for it."
)
NOT_ATTACHED_TEXT = mrkdwn(
    ":warning: The full transcript could not be attached: the app may not upload files here "
    "(the `files:write` scope is missing). An admin should add it and reinstall the app; until "
    "then only the beginning is shown above."
)
NOTHING_TEXT = mrkdwn(
    ":information_source: Nothing here to transcribe: no audio or video was found."
)


def _progress_failed(batch: Batch, exc: Exception) -> None:
    # Progress is a courtesy: the work and the final reply do not depend on it.
    if isinstance(exc, SlackApiError):
        log.warning("batch %s: progress update failed: %s", batch.id, slack_error_code(exc))
    else:
        log.error("batch %s: progress update failed", batch.id, exc_info=exc)


#: ``files.info`` errors no retry can fix, with what to tell the person who shared the file.
FILE_INFO_ERRORS = {
    "file_not_found": "Slack no longer has this file; it may have been deleted.",
    "file_deleted": "Slack no longer has this file; it may have been deleted.",
    "missing_scope": (
        "The app may not read files here (the `files:read` scope is missing): an admin should "
        "add it and reinstall the app."
    ),
    "not_in_channel": "The app cannot see this file; invite it to the channel and try again.",
    "access_denied": "The app is not allowed to read this file.",
}


#: How a progress message saying that files wait for their provider's account begins.
HELD_MARK = ":double_vertical_bar:"


def progress_text(jobs: Sequence[Job]) -> Mrkdwn:
    """``Transcribing 2 files… 1 of 2 done``; for one file, its name. While files wait for their
    provider's account, a note saying so and that nothing is wrong with them."""
    held = [job for job in jobs if job.held_by and not job.state.is_terminal]
    if held:
        return held_text(held, len(jobs))
    done = sum(job.state.is_terminal for job in jobs)
    if len(jobs) == 1:
        return mrkdwn(":hourglass_flowing_sand: Transcribing *{}*…", jobs[0].filename)
    return mrkdwn(
        ":hourglass_flowing_sand: Transcribing {} files… {} of {} done", len(jobs), done, len(jobs)
    )


def held_text(held: Sequence[Job], total: int) -> Mrkdwn:
    """The note for files waiting on their provider's account: not their fault, nothing to do
    for whoever shared them, and it goes on by itself."""
    provider = label_of(str(held[0].held_by))
    if total == 1:
        which, goes_on = mrkdwn("*{}*", held[0].filename), "It goes on by itself"
    elif len(held) == total:
        which, goes_on = mrkdwn("these {} files", total), "They go on by themselves"
    else:
        which, goes_on = (
            mrkdwn("{} of these {} files", len(held), total),
            "They go on by themselves",
        )
    return mrkdwn(
        "{} Waiting: the {} account of this app cannot take new work right now (its "
        "balance or spending limit is used up), and an admin needs to fix it. Nothing is wrong "
        "with {}. {} once the account works again.",
        HELD_MARK,
        provider,
        which,
        goes_on,
    )


def _waits_for_submission(job: Job) -> bool:
    """At the provider (or a link, which the provider fetches itself) and not submitted yet."""
    return job.state is JobState.UPLOADED or (
        job.kind is JobKind.URL and job.state is JobState.QUEUED
    )


def _provider_job(job: Job, hints: LanguageHints) -> ProviderJob:
    return ProviderJob(
        job_id=job.id,
        filename=job.filename,
        spool_path=Path(job.spool_path) if job.spool_path else None,
        url=job.url,
        size_bytes=job.size_bytes,
        mimetype=job.mimetype,
        language_hints=list(hints.codes),
        language_hints_strict=hints.strict,
        file_id=job.provider_file_id,
        upload_id=job.provider_upload_id,
        remote_id=job.provider_job_id,
    )


def _failure(exc: TranscribeError, provider_answer: Any = None) -> Failure:
    return Failure(message=exc.user_message, detail=exc.detail, provider_answer=provider_answer)


def _mirror_failure(job: Job, failure: Failure, now: datetime) -> None:
    """Show on the ``job`` the caller holds what :meth:`Store.fail_jobs` recorded."""
    job.state, job.error, job.error_detail = JobState.FAILED, failure.message, failure.detail
    job.finished_at, job.updated_at = now, now
    if failure.provider_answer is not None:
        job.raw_result = failure.provider_answer


def _times(count: int) -> str:

    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _eta(now: datetime, seconds: float | None) -> datetime | None:
    return now + timedelta(seconds=seconds) if seconds else None


def _has_storage_caps(provider: Provider | None) -> bool:
    return provider is not None and (
        provider.max_stored_files is not None or provider.max_stored_bytes is not None
    )


def _fits(provider: Provider, held: Sequence[int], files: int, size: int) -> bool:
    """Whether ``files`` more files of ``size`` bytes stay within the provider's caps, given
    the (files, bytes) ``held`` there. With nothing held, anything goes: the provider decides."""
    held_files, held_bytes = held
    if held_files == 0:
        return True
    return (
        provider.max_stored_files is None or held_files + files <= provider.max_stored_files
    ) and (provider.max_stored_bytes is None or held_bytes + size <= provider.max_stored_bytes)


def _unconfigured(provider: str) -> PermanentError:
    return PermanentError(
        f"provider {provider} is not configured",
        user_message=(
            f"The {provider} provider is not set up on this app; an admin needs to add its "
            "credentials, or choose another provider for this channel."
        ),
    )
