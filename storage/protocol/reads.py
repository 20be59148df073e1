"""Intake and channel settings, what a poll cycle reads, channel views, figures, retention.

Part of :class:`storage.store.Store`, whose docstring states the contract every method
keeps.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from storage.models import (
    Batch,
    ChannelSettings,
    Job,
    LanguageHints,
    NewBatch,
    NewJob,
    ProviderAccountProblem,
    TranscriptionOptions,
    Workspace,
)


class IntakeAndReads(Protocol):
    """Intake and channel settings, what a poll cycle reads, channel views, figures, retention."""

    # -- intake ------------------------------------------------------------------------------

    async def remember_event(self, event_id: str, now: datetime) -> bool:
        """Record a Slack ``event_id``. Returns False when it was recorded before (idempotent:
        the second delivery of an event is recognised). Raises the common errors."""

    async def create_batch(
        self,
        batch: NewBatch,
        jobs: Sequence[NewJob],
        now: datetime,
        *,
        unless_running: bool = False,
    ) -> Batch | None:
        """Create an open batch with those ``jobs`` whose ``dedupe_key`` was never taken (jobs
        without a key are always taken), in order; a job with ``refused_reason`` starts failed.
        The batch keeps its language hints and its :class:`TranscriptionOptions` as given.

        Returns the batch, or None when no job was left to take (nothing empty is kept) or, with
        ``unless_running``, when a batch for the same channel and message is running: checked
        in the same transaction, so two requests at once cannot both start one. Requests made
        at the same time may share one transaction, applied in the order they came; one faulty
        request fails alone. The batch keeps its workspace (``team_id``, ``enterprise_id``):
        ``unless_running`` looks at that workspace's batches alone, and for a workspace removed
        (:meth:`workspace_removed`, checked in the same transaction) nothing is created and None
        is returned, as for a request whose jobs were all taken. Raises :class:`InvalidRecord`
        for a request the database refuses, :class:`WriteInterrupted` when the store stopped
        before writing it."""

    async def channel_settings(self, workspace: Workspace, channel_id: str) -> ChannelSettings:
        """Returns the channel's choices in ``workspace``, defaults if it never made any there:
        a copy the caller may change. Settings are kept by team id and channel id: a channel
        shared by two workspaces (Slack Connect) has each workspace's own. Raises the common
        errors."""

    async def save_channel_settings(
        self, workspace: Workspace, settings: ChannelSettings, now: datetime
    ) -> None:
        """Record the channel's choices in ``workspace``, all of them at once (its vocabulary,
        context and translation included); the next :meth:`channel_settings` for that workspace
        returns them, and no other workspace's. Raises the common errors."""

    # -- what a poll cycle reads -------------------------------------------------------------

    async def due_jobs(self, now: datetime) -> list[Job]:
        """Returns the unfinished jobs of every open batch where some unfinished job is due by
        ``now`` (no ``next_attempt_at``, or one not after it): oldest job first, then by batch
        and position. Raises the common errors."""

    async def unfinished_jobs(self) -> list[Job]:
        """Returns every unfinished job of the open batches, in the order of :meth:`due_jobs`.
        Raises the common errors."""

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """Returns the jobs with these ids as they are now, by batch and position. Raises the
        common errors."""

    async def get_job(self, job_id: str) -> Job | None:
        """Returns the job, or None. Raises the common errors."""

    async def get_batch(self, batch_id: str) -> Batch | None:
        """Returns the batch, or None. Raises the common errors."""

    async def jobs_of(self, batch_id: str) -> list[Job]:
        """Returns the batch's jobs by position (none for an unknown batch). Raises the common
        errors."""

    async def jobs_of_batches(self, batch_ids: Sequence[str]) -> dict[str, list[Job]]:
        """Returns each batch's jobs by position, keyed by every id given. Raises the common
        errors."""

    async def language_hints_in_use(self, batch_ids: Collection[str]) -> dict[str, LanguageHints]:
        """Returns the language hints of those of ``batch_ids`` that are open and have any, by
        batch id; every other open batch among them has none. Reads in proportion to those
        batches, not to every open one. Raises the common errors."""

    async def language_hints_of(self, batch_ids: Collection[str]) -> dict[str, LanguageHints]:
        """Returns each known batch's language hints, by id (unknown ids are left out). Raises
        the common errors."""

    async def transcription_options_in_use(
        self, batch_ids: Collection[str]
    ) -> dict[str, TranscriptionOptions]:
        """Returns the :class:`TranscriptionOptions` of those of ``batch_ids`` that are open and
        ask for anything (a vocabulary, a context, a translation, doubtful words marked), by
        batch id; every other open batch among them asks for nothing. Raises the common
        errors."""

    async def transcription_options_of(
        self, batch_ids: Collection[str]
    ) -> dict[str, TranscriptionOptions]:
        """Returns each known batch's :class:`TranscriptionOptions`, by id (unknown ids are left
        out). Raises the common errors."""

    async def count_in_flight(self) -> dict[str, int]:
        """Returns, per provider, the jobs of open batches submitted and not finished (providers
        without any are left out). Raises the common errors."""

    async def stored_at_provider(self, provider: str) -> tuple[int, int]:
        """Returns the files, and their bytes, that ``provider`` holds for us: uploaded and not
        cleaned up, or being uploaded (sent, no answer recorded). Raises the common errors."""

    async def batches_to_deliver(self, now: datetime) -> list[Batch]:
        """Returns the running batches whose jobs have all finished and whose retry (if any) is
        due by ``now``, oldest first. Raises the common errors."""

    async def batches_needing_progress(
        self, now: datetime, *, after: timedelta, every: timedelta, held_note: str
    ) -> list[Batch]:
        """Returns the open batches whose progress message may need to change, oldest first:
        without one and older than ``after``; with one being posted (``PENDING_STATUS``); or, at
        most once per ``every``, with a job finished since it was last shown, or with unfinished
        jobs held for their provider's account while the message does not start with
        ``held_note`` (or the other way round). Raises the common errors."""

    async def cancelled_batches_to_settle(self, note: str) -> list[Batch]:
        """Returns the cancelled batches with a progress message that does not say ``note`` yet.
        Raises the common errors."""

    async def jobs_to_clean_up(
        self, now: datetime, *, finished_early: Collection[str] = ()
    ) -> list[Job]:
        """Returns the jobs not cleaned up that may still own something at their provider (a file
        or a transcription), whose clean-up is due by ``now``, by batch and position: those of
        finished batches and, for the providers in ``finished_early``, each completed or failed
        job whose last call was answered. Of a delivered or undeliverable batch, only its
        finished jobs are looked at: those batches end once every job has (a cancelled batch
        may end with jobs unfinished). Reads in proportion to the finished jobs awaiting a
        clean-up and the cancelled batches, not to every job in flight. Raises the common
        errors."""

    async def jobs_with_unneeded_spool(self) -> list[Job]:
        """Returns the jobs still holding a spool file although their batch has finished. Raises
        the common errors."""

    async def lost_answers_to_recover(self) -> list[Job]:
        """Returns the jobs of finished batches whose last upload or submission was sent without
        its answer being recorded. Raises the common errors."""

    async def account_problems(self) -> list[ProviderAccountProblem]:
        """Returns every recorded provider account problem, by provider. Raises the common
        errors."""

    # -- channel views (slash commands) ------------------------------------------------------

    # Each takes the workspace asking: a channel id may be in two workspaces (Slack Connect),
    # and each sees only its own batches there (those whose team id is ``workspace.team_id``).

    async def running_batches(self, workspace: Workspace, channel_id: str) -> list[Batch]:
        """Returns the workspace's running batches in the channel, oldest first. Raises the
        common errors."""

    async def finished_batches(
        self, workspace: Workspace, channel_id: str, limit: int
    ) -> list[Batch]:
        """Returns the workspace's last ``limit`` finished batches in the channel, last changed
        first. Raises the common errors."""

    async def active_batch_for_message(
        self, workspace: Workspace, channel_id: str, message_ts: str
    ) -> Batch | None:
        """Returns the workspace's newest running batch for this message, or None. Raises the
        common errors."""

    async def last_failed_batch(self, workspace: Workspace, channel_id: str) -> Batch | None:
        """Returns the workspace's newest delivered or undeliverable batch in the channel with a
        failed job that no later batch for the same message superseded, or None. Raises the
        common errors."""

    # -- figures for /metrics and /healthz ---------------------------------------------------

    async def count_jobs_by_state_and_provider(self) -> dict[tuple[str, str], int]:
        """Returns ``{(state, provider): count}`` over every job kept. Raises the common
        errors."""

    async def count_batches_by_state(self) -> dict[str, int]:
        """Returns ``{state: count}`` over every batch kept. Raises the common errors."""

    async def count_unfinished_jobs(self) -> int:
        """Returns how many unfinished jobs the open batches have. Raises the common errors."""

    # -- retention ---------------------------------------------------------------------------

    async def purge_transcripts_before(self, cutoff: datetime, now: datetime) -> int:
        """Erase the transcripts (and the providers' answers) and the speaker names of batches
        finished before ``cutoff``, and the event ids recorded before it; the bookkeeping stays.
        Returns how many jobs lost their transcript. Raises the common errors."""
