"""A job's steps, and the provider account problems that hold jobs back.

Part of :class:`storage.store.Store`, whose docstring states the contract every method
keeps.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from storage.models import (
    Failure,
    FileInfo,
    ProviderAccountProblem,
    Resubmission,
    StillRunning,
    Submission,
    Upload,
)


class JobSteps(Protocol):
    """A job's steps, and the provider account problems that hold jobs back."""

    # -- a job's steps -----------------------------------------------------------------------

    async def start_download(self, job_id: str, now: datetime) -> bool:
        """``JobMoves.START_DOWNLOAD``. Returns whether the job moved. Raises the common
        errors."""

    async def record_file_info(self, job_id: str, info: FileInfo, now: datetime) -> bool:
        """Keep what Slack said of a stub's file; it needs no more asking. Only while its download
        is pending (``START_DOWNLOAD``'s sources). Returns whether it was kept. Raises the common
        errors."""

    async def skip_job(self, job_id: str, now: datetime) -> bool:
        """``JobMoves.SKIP``, finished at ``now``. Returns whether the job moved. Raises the
        common errors."""

    async def record_download(
        self, job_id: str, *, spool_path: str, size_bytes: int, now: datetime
    ) -> bool:
        """``JobMoves.FINISH_DOWNLOAD``: the spool file and its size are kept, and the job stops
        waiting. Returns whether the job moved. Raises the common errors."""

    async def download_again(self, job_id: str, now: datetime) -> bool:
        """``JobMoves.DOWNLOAD_AGAIN``: the spool file is forgotten. Returns whether the job
        moved. Raises the common errors."""

    async def record_spool_deleted(self, job_id: str, now: datetime) -> bool:
        """Forget the job's spool file, which the caller deleted. Returns whether the job had one.
        Raises the common errors."""

    async def mark_upload_sent(self, job_ids: Sequence[str], now: datetime) -> int:
        """An upload that may create a file at the provider is about to go out for each job
        (``UPLOADING`` only): after a crash, look for what it created before sending again.
        Returns how many jobs were marked. Raises the common errors."""

    async def record_uploads(
        self, uploads: Sequence[Upload], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        """The answers of one upload, in one transaction: ``JobMoves.FINISH_UPLOAD`` for each of
        ``uploads`` (due at once, with a fresh allowance of attempts and time), ``JobMoves.FAIL``
        for each job id in ``refused``. Either way the call is answered (no longer marked sent).
        Returns the ids of the jobs that moved. Raises the common errors."""

    async def mark_submission_sent(self, job_ids: Sequence[str], now: datetime) -> int:
        """A submission that may start a transcription is about to go out for each job (only
        from ``SUBMIT``'s sources). Returns how many jobs were marked. Raises the common
        errors."""

    async def take_upload_room(
        self,
        provider: str,
        job_ids: Sequence[str],
        *,
        max_files: int | None,
        max_bytes: int | None,
        now: datetime,
    ) -> bool:
        """:meth:`mark_upload_sent` for these jobs if their files fit in what ``provider`` may
        hold: the files and bytes :meth:`stored_at_provider` counts, plus those of the jobs not
        marked sent yet, within ``max_files`` and ``max_bytes`` (None: no cap; nothing held:
        anything fits). Counted and marked under a lock. Returns whether they were marked
        (False: nothing changed). Raises the common errors."""

    async def take_submission_slots(
        self, provider: str, job_ids: Sequence[str], *, limit: int | None, now: datetime
    ) -> bool:
        """:meth:`mark_submission_sent` for these jobs if ``provider`` has room for them: its
        jobs in flight (those :meth:`count_in_flight` counts, and those of open batches whose
        submission is marked sent, unanswered), plus those of these jobs not marked yet, within
        ``limit`` (None: no limit; nothing in flight: any number). Counted and marked under a
        lock. Returns whether they were marked (False: nothing changed). Raises the common
        errors."""

    async def record_submissions(
        self, submissions: Sequence[Submission], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        """The answers of one submission, in one transaction: ``JobMoves.SUBMIT`` for each of
        ``submissions`` (waiting from ``now``, attempts reset), ``JobMoves.FAIL`` for each job id
        in ``refused``; every call answered. A submission whose transcription an early notice
        named (see :meth:`record_remote_finished`) is due at once, whatever its ``poll_at``, and
        the notice is used up. Returns the ids of the jobs that moved. Raises the common
        errors."""

    async def record_still_running(
        self, polled: Sequence[StillRunning], now: datetime, *, owner: str | None = None
    ) -> int:
        """``JobMoves.KEEP_RUNNING`` for each polled job still as it was read (see
        :class:`StillRunning`), in one transaction. With ``owner``, the leases ``owner`` holds
        on the polled jobs are given back in the same transaction, recorded or not (as
        :meth:`release_leases`): their answers are saved, so any process may poll them next.
        Returns how many were recorded. Raises the common errors."""

    async def record_remote_finished(self, provider: str, remote_id: str, now: datetime) -> int:
        """``provider`` said the work it holds as ``remote_id`` ended: its jobs that are running
        there become due at once. With none (a short recording can end before the answer that
        started it is recorded), the notice is kept, for ``EARLY_NOTICE_KEPT``, for the
        submission that records ``remote_id``: whichever of the two is written first, the job is
        due at once. Returns how many jobs became due. Raises the common errors."""

    async def complete_job(
        self, job_id: str, *, transcript: dict[str, Any], raw: Any, now: datetime
    ) -> bool:
        """``JobMoves.COMPLETE`` with the transcript and the provider's answer, finished at
        ``now``; an earlier error is forgotten. Returns whether the job moved. Raises the common
        errors."""

    async def fail_jobs(self, job_ids: Sequence[str], failure: Failure, now: datetime) -> set[str]:
        """``JobMoves.FAIL`` for each job, finished at ``now``, in one transaction; a call still
        marked sent stays marked (what it created is looked for at clean-up). Returns the ids of
        the jobs that moved. Raises the common errors."""

    async def record_work_lost(
        self, resubmissions: Sequence[Resubmission], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        """The provider lost work it had accepted, in one transaction:
        ``JobMoves.RESUBMIT_STORED`` (with a ``file_id``) or ``RESUBMIT_FROM_START`` for each
        resubmission, counted in ``resubmissions``, due at once with a fresh allowance;
        ``JobMoves.FAIL`` for each job id in ``refused``. Returns the ids of the jobs that moved.
        Raises the common errors."""

    async def schedule_retry(
        self,
        job_ids: Sequence[str],
        *,
        attempts: int,
        retry_at: datetime,
        detail: str,
        stalled_since: datetime,
        now: datetime,
    ) -> int:
        """A step of these unfinished jobs failed for now: try again at ``retry_at``, counting
        ``attempts`` and the age limit from ``stalled_since``. Returns how many were scheduled.
        Raises the common errors."""

    async def postpone_jobs(
        self,
        job_ids: Sequence[str],
        *,
        until: datetime,
        stalled_since: datetime | None,
        now: datetime,
    ) -> int:
        """The provider is not ready for these unfinished jobs yet (or has no room for them):
        ask again at ``until``, no attempt counted, the age limit counted from
        ``stalled_since`` (None: the wait counts against no limit). Returns how many were
        postponed. Raises the common errors."""

    async def hold_for_account(
        self,
        job_ids: Sequence[str],
        *,
        provider: str,
        until: datetime,
        stalled_since: datetime,
        detail: str,
        now: datetime,
    ) -> int:
        """These unfinished jobs wait for ``provider``'s account (``held_by``), tried again at
        ``until``. Returns how many were held. Raises the common errors."""

    async def release_jobs(self, job_ids: Sequence[str], now: datetime) -> int:
        """These unfinished jobs no longer wait for an account, and are due at once. Returns how
        many were released. Raises the common errors."""

    async def record_lost_answer(
        self, job_id: str, *, file_id: str | None, remote_id: str | None, now: datetime
    ) -> bool:
        """What a call marked sent created is known: its lost answer was looked for, or a
        refusal answered it (both ids None). Keep the provider's file or transcription it
        created, if any; the call is no longer marked sent. Returns whether the job was marked
        sent. Raises the common errors."""

    async def mark_attachments_uploaded(self, job_ids: Collection[str], now: datetime) -> int:
        """The jobs' transcripts are attached to the reply's thread. Returns how many were
        marked. Raises the common errors."""

    async def postpone_clean_up(
        self, job_ids: Sequence[str], until: datetime, now: datetime
    ) -> int:
        """Clean these jobs up at the provider at ``until``, not before. Returns how many. Raises
        the common errors."""

    async def mark_cleaned_up(self, job_ids: Sequence[str], now: datetime) -> int:
        """Nothing of these jobs is left at their provider. Returns how many were marked. Raises
        the common errors."""

    # -- provider accounts -------------------------------------------------------------------

    async def record_account_problem(self, problem: ProviderAccountProblem, now: datetime) -> None:
        """Record (or replace) the provider's account problem. Raises the common errors."""

    async def resolve_account_problem(self, provider: str, now: datetime) -> int:
        """Forget ``provider``'s account problem and release the unfinished jobs held for it, due
        at once with a fresh allowance of time, in one transaction. Returns how many jobs were
        released. Raises the common errors."""
