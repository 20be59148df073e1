"""What every stage of the work shares: its dependencies, its settings, and a few helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import SecretStr

from bot.errors import AccountProblem, TranscribeError
from bot.providers.base import Provider, ProviderJob
from bot.slack_api import ThreadFile, ThreadState
from bot.slack_text import Block, Mrkdwn, PlainText
from bot.work.leases import WorkLeases
from bot.work.retry import RetryPolicy
from storage.models import (
    Failure,
    Job,
    JobKind,
    JobState,
    LanguageHints,
    TranscriptionOptions,
    Workspace,
)
from storage.store import Store

_Item = TypeVar("_Item")
_Outcome = TypeVar("_Outcome")

#: What a batch without language hints asks of its provider.
NO_HINTS = LanguageHints()
#: What a batch asks of its provider when it asks for nothing more.
NO_OPTIONS = TranscriptionOptions()

#: A unit of work, advanced by one task at a time: its key and its jobs (see :func:`unit_key`).
Unit = tuple[str, list[Job]]


class SlackThreads(Protocol):
    """What the work asks of Slack: :class:`bot.slack_api.SlackGateway` in the bot, whose
    docstrings say what each call does."""

    async def file_info(self, file_id: str) -> dict[str, Any]: ...

    async def add_reaction(self, channel: str, ts: str, name: str) -> None: ...

    async def remove_reaction(self, channel: str, ts: str, name: str) -> None: ...

    async def post_reply(
        self,
        *,
        channel: str,
        thread_ts: str,
        text: Mrkdwn,
        blocks: Sequence[Block],
        batch_id: str,
        final: bool = True,
    ) -> str: ...

    async def update_message(
        self,
        *,
        channel: str,
        ts: str,
        text: Mrkdwn,
        blocks: Sequence[Block],
        batch_id: str,
        final: bool,
    ) -> None: ...

    async def upload_text(
        self, *, channel: str, thread_ts: str, filename: PlainText, title: PlainText, content: str
    ) -> list[str]: ...

    async def delete_file(self, file_id: str) -> None: ...

    async def thread_state(
        self, *, channel: str, thread_ts: str, batch_id: str, since: datetime
    ) -> ThreadState: ...

    async def thread_files(
        self, *, channel: str, thread_ts: str, since: datetime, until: datetime | None = None
    ) -> list[ThreadFile]: ...

    async def user_name(self, user: str) -> str | None: ...


class SlackWorkspaces(Protocol):
    """Each workspace's Slack: :mod:`bot.workspaces` in the bot. Both raise
    :class:`~bot.errors.WorkspaceGone` for a workspace the app cannot act in any more."""

    async def gateway(self, workspace: Workspace) -> SlackThreads: ...

    async def file_token(self, workspace: Workspace) -> SecretStr: ...


class Downloader(Protocol):
    """Fetches a Slack file into the spool: :class:`bot.slack_files.SlackFileDownloader`."""

    async def download(
        self,
        url: str,
        destination: Path,
        *,
        token: SecretStr,
        max_bytes: int,
        too_large_message: str | None = None,
    ) -> int: ...


@dataclass(frozen=True)
class EngineConfig:
    """The operator's settings the work runs by."""

    spool_dir: Path
    max_file_bytes: int
    max_job_age: timedelta
    poll_interval: float
    max_concurrent_transfers: int = 4
    #: Quick steps (submissions, polls, progress posts) running at once.
    max_concurrent_calls: int = 16
    retention: timedelta = timedelta(days=30)
    progress_after: timedelta = timedelta(seconds=5)
    progress_every: timedelta = timedelta(seconds=3)
    #: Words less sure than this are marked in replies that asked for it.
    confidence_threshold: float = 0.5
    #: How long a claimed unit stays this process's without a renewal: after a crash, how long
    #: its work waits before another process takes it over.
    lease_for: timedelta = timedelta(seconds=30)
    #: Jobs one cycle claims at most: with more due, another cycle follows at once (here, or in
    #: another process), so a cycle stays short and several processes share a large backlog.
    #: A cycle's cost follows what it claims, so two cycles of 5,000 take as long as one of
    #: 10,000; the shorter one posts finished replies sooner, and stays under a second with
    #: four processes sharing two cores (``benchmarks/RESULTS.md``, split bookkeeping).
    claim_limit: int = 5_000


class WorkContext:
    """The store, the providers, Slack, the clock and the retry policy, as every stage uses them;
    and what a cycle learns once for all its stages."""

    def __init__(
        self,
        *,
        store: Store,
        providers: Mapping[str, Provider],
        slack: SlackWorkspaces,
        config: EngineConfig,
        clock: Callable[[], datetime],
        retry: RetryPolicy,
        wake: Callable[[], None],
        leases: WorkLeases,
    ) -> None:
        self.store = store
        self.providers = providers
        #: Each workspace's Slack: every call for a batch goes to its workspace's.
        self.workspaces = slack
        self.config = config
        self.clock = clock
        self.retry = retry
        #: Asks for a cycle now, when work finished that the next one can take further.
        self.wake = wake
        #: The units this process holds, against every other process on the database.
        self.leases = leases
        #: Units and batches with a task running now in this process; never two tasks for one
        #: unit (the leases keep other processes off them).
        self.busy: set[str] = set()
        #: Language hints of the due batches, read once per cycle: all a provider needs of a
        #: batch, and fixed when the batch was created.
        self.hints: dict[str, LanguageHints] = {}
        #: Their transcription options, likewise.
        self.options: dict[str, TranscriptionOptions] = {}

    async def slack_for(self, workspace: Workspace) -> SlackThreads:
        """The Slack of ``workspace``, with its current token."""
        return await self.workspaces.gateway(workspace)

    async def guarded(self, key: str, work: Awaitable[None]) -> None:
        """Run ``work`` with ``key`` marked busy."""
        self.busy.add(key)
        try:
            await work
        finally:
            self.busy.discard(key)

    async def for_each(
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
            for _ in range(min(self.config.max_concurrent_calls, len(items))):
                workers.create_task(worker())
        # An item has no outcome only if its worker was cancelled from below (not by us).
        interrupted = RuntimeError("interrupted before it finished")
        return [outcomes.get(index, interrupted) for index in range(len(items))]

    def poll_at(self, now: datetime, delay: float) -> datetime:
        """When to poll next, ``delay`` from now, aimed half a tick early: a poll stamped "one
        interval from now" after the provider answered would otherwise miss the next tick by
        milliseconds and wait for the one after, doubling every delay. Only polls get this;
        retry delays (backoff, Retry-After) are kept exactly."""
        return now + timedelta(seconds=max(0.0, delay - self.config.poll_interval / 2))

    async def provider_jobs(self, jobs: Sequence[Job]) -> list[ProviderJob]:
        """What the provider is told about ``jobs``; their batches are read once."""
        missing = {job.batch_id for job in jobs if job.batch_id not in self.hints}
        if missing:
            self.hints.update(await self.store.language_hints_of(missing))
        missing = {job.batch_id for job in jobs if job.batch_id not in self.options}
        if missing:
            self.options.update(await self.store.transcription_options_of(missing))
        return [
            provider_job(
                job,
                self.hints.get(job.batch_id, NO_HINTS),
                self.options.get(job.batch_id, NO_OPTIONS),
            )
            for job in jobs
        ]

    async def send(
        self,
        jobs: Sequence[Job],
        call: Callable[[Sequence[ProviderJob]], Awaitable[Mapping[str, _Outcome]]],
    ) -> Mapping[str, _Outcome]:
        """Make the provider ``call`` (an upload or a submission) for ``jobs``, marked sent.

        An account that refuses new work answers the call: nothing was created, and nothing
        is to be looked for at the provider before the next try, or at clean-up."""
        try:
            return await call(await self.provider_jobs(jobs))
        except AccountProblem:
            now = self.clock()
            for job in jobs:
                await self.store.record_lost_answer(job.id, file_id=None, remote_id=None, now=now)
                job.sent_at = None
            raise

    async def drop_spool(self, job: Job) -> None:
        """Delete the job's spool file (the provider has it, or it is not needed any more)."""
        if job.spool_path:
            Path(job.spool_path).unlink(missing_ok=True)
            now = self.clock()
            await self.store.record_spool_deleted(job.id, now)
            job.spool_path, job.updated_at = None, now


def unit_key(job: Job, provider: Provider | None) -> str:
    """Work advances by units: one job for a per-file provider, one batch for a batch-native
    one. A unit is advanced by one task at a time."""
    return job.batch_id if provider is not None and provider.batch_native else job.id


def is_due(jobs: Sequence[Job], now: datetime) -> bool:
    """Whether a unit's next step may be taken by ``now``, as :meth:`Store.due_jobs` reads it:
    some job has no ``next_attempt_at``, or one not after ``now``."""
    return any(job.next_attempt_at is None or job.next_attempt_at <= now for job in jobs)


def needs_transfer(job: Job) -> bool:
    """A Slack file not at the provider yet: it is downloaded, then uploaded."""
    return job.kind is JobKind.SLACK_FILE and job.state in (
        JobState.QUEUED,
        JobState.DOWNLOADING,
        JobState.UPLOADING,
    )


def waits_for_submission(job: Job) -> bool:
    """At the provider (or a link, which the provider fetches itself) and not submitted yet."""
    return job.state is JobState.UPLOADED or (
        job.kind is JobKind.URL and job.state is JobState.QUEUED
    )


def is_running(job: Job) -> bool:
    """Submitted, and not finished at the provider as far as we know."""
    return job.state in (JobState.SUBMITTED, JobState.PROCESSING)


def provider_job(
    job: Job, hints: LanguageHints, options: TranscriptionOptions = NO_OPTIONS
) -> ProviderJob:
    return ProviderJob(
        job_id=job.id,
        filename=job.filename,
        spool_path=Path(job.spool_path) if job.spool_path else None,
        url=job.url,
        size_bytes=job.size_bytes,
        mimetype=job.mimetype,
        language_hints=list(hints.codes),
        language_hints_strict=hints.strict,
        terms=list(options.terms),
        context=options.context,
        translation=options.translation,
        word_confidence=options.mark_doubtful,
        file_id=job.provider_file_id,
        upload_id=job.provider_upload_id,
        remote_id=job.provider_job_id,
    )


def failure_of(exc: TranscribeError, provider_answer: Any = None) -> Failure:
    return Failure(message=exc.user_message, detail=exc.detail, provider_answer=provider_answer)


def mirror_failure(job: Job, failure: Failure, now: datetime) -> None:
    """Show on the ``job`` the caller holds what :meth:`Store.fail_jobs` recorded."""
    job.state, job.error, job.error_detail = JobState.FAILED, failure.message, failure.detail
    job.finished_at, job.updated_at = now, now
    if failure.provider_answer is not None:
        job.raw_result = failure.provider_answer


def eta_at(now: datetime, seconds: float | None) -> datetime | None:
    return now + timedelta(seconds=seconds) if seconds else None
