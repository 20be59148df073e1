"""The Store: the one interface between the bot and its database, whatever the backend.

A backend is a subpackage of :mod:`storage` (``storage.sqlite``) with a class that satisfies
:class:`Store`; the composition root (``bot.app``) is the only place that names one. Every backend
passes the contract suite in ``tests/contract``.

The contract, for every method:

* **Durable on return.** A write is committed before the method returns, so whatever the caller
  does next (a download, an upload, a post) happens after the state it depends on is recorded.
* **The caller's clock.** Methods that stamp a time take ``now`` (and every other time) from the
  caller; a store never reads the clock. Times are timezone-aware and come back as UTC: a time
  without a time zone is refused with :class:`InvalidRecord`, before anything is written.
* **Guarded moves.** A verb that changes a job's or a batch's state moves it only along a move of
  :mod:`storage.states`, and only from that move's source states, atomically. It says in its
  return value whether (or for which rows) the move happened: a row found in any other state is
  left as it is, and that is not an error.
* **Grouped writes.** A verb given many rows writes them in one transaction: all or none.
* **Errors.** Every method raises :class:`StoreClosed` once :meth:`Store.close` was called, and
  :class:`StoreUnavailable` when the database cannot be reached or refuses to work; no backend's
  own exception reaches the caller. Other raises are named in each method's docstring.
* **Shared.** A backend that several processes may share (PostgreSQL) keeps nothing in memory that
  another process could change: every read is the database's answer at that moment.
* **Leases.** A process takes a unit of work (a job's next step, a batch's reply or progress
  message) only under a lease: its ``owner`` id (one per process) and an expiry time. A claim
  takes only rows that no other owner holds unexpired, atomically, so two owners never both hold
  one; the owner renews its leases while it works and releases them when done, and a lease left
  to expire (its process died) may be claimed by anyone. Leases are advisory: the verbs that move
  rows do not look at them, and the guarded moves still decide every race. A backend that one
  process alone may use (SQLite) keeps them in memory: they end with the store, and a restarted
  process finds nothing leased.
* **Counted under a lock.** Verbs that count what a provider holds and reserve more of it
  (:meth:`Store.take_submission_slots`, :meth:`Store.take_upload_room`) count and mark in one
  transaction that no other process's count can interleave: the caps hold across processes.
* Ids a method is given that match no row are ignored, unless its docstring says otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from storage.models import (
    Batch,
    ChannelSettings,
    Failure,
    FileInfo,
    Job,
    LanguageHints,
    Leases,
    NewBatch,
    NewJob,
    ProgressShown,
    ProviderAccountProblem,
    ReplyFile,
    Resubmission,
    SlackInstallation,
    SpeakerNames,
    SpeakerNaming,
    StillRunning,
    Submission,
    TranscriptionOptions,
    Upload,
    WorkspaceKey,
)


class StorageError(Exception):
    """Something went wrong in the store; the subclasses say what."""


class StoreClosed(StorageError):
    """The store was closed (the process is shutting down)."""


class StoreUnavailable(StorageError):
    """The database cannot be reached, opened or written (a missing directory, a full disk, a
    lock held too long): the same call may work later."""


class InvalidRecord(StorageError):
    """The database refused what it was given (a required value missing): the same call will
    fail again."""


def naive_time_message(value: datetime) -> str:
    """What :class:`InvalidRecord` says of a time without a time zone, the same for every
    backend."""
    return (
        f"a time without a time zone ({value.isoformat()}): the store takes timezone-aware "
        "times only, such as datetime.now(UTC)"
    )


class WriteInterrupted(StorageError):
    """The write was stopped before it was committed (the store is shutting down): nothing of it
    was recorded."""


class DatabaseInUse(StoreUnavailable):
    """Another process works on this database, which serves one process only (SQLite): it may
    be opened once that process has stopped."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer version of threadscribe than this one: this code
    does not know its schema, and must not write to it."""


def too_new_message(database: str, found: int, known: int) -> str:
    """What :class:`SchemaTooNew` says, the same for every backend."""
    return (
        f"{database} is at schema version {found}, and this threadscribe knows versions up to "
        f"{known}: a newer threadscribe migrated it. Run that version (or a newer one), or "
        "restore a backup taken before the upgrade; this version must not write to it"
    )


class SchemaTooOld(StorageError):
    """The database was opened without migrating it, and its schema is older than this code's:
    it is migrated when the bot starts (or with ``python -m bot migrate``)."""


#: How long a provider's notice that a transcription ended is kept for a submission not recorded
#: yet (:meth:`Store.record_remote_finished`).
EARLY_NOTICE_KEPT = timedelta(minutes=10)


class Store(Protocol):
    """Batches, jobs, channel settings, provider account problems and speaker names, and every
    move they make; the Slack installations the app serves, and the OAuth states of installs
    under way."""

    @property
    def backend(self) -> str:
        """The backend's name, as ``/healthz`` and ``check`` show it: ``sqlite``, ``postgresql``."""

    async def close(self) -> None:
        """Finish the writes under way and release the database. Returns once closed; calling it
        again does nothing. Raises nothing."""

    async def ping(self) -> bool:
        """Returns True when the database answers a trivial query. Raises the common errors."""

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
        request fails alone. Raises :class:`InvalidRecord` for a request the database refuses,
        :class:`WriteInterrupted` when the store stopped before writing it."""

    async def channel_settings(self, channel_id: str) -> ChannelSettings:
        """Returns the channel's choices, defaults if it never made any: a copy the caller may
        change. Raises the common errors."""

    async def save_channel_settings(self, settings: ChannelSettings, now: datetime) -> None:
        """Record the channel's choices, all of them at once (its vocabulary, context and
        translation included); the next :meth:`channel_settings` returns them. Raises the common
        errors."""

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

    async def language_hints_in_use(self) -> dict[str, LanguageHints]:
        """Returns the language hints of the open batches that have any, by batch id; every other
        open batch has none. Raises the common errors."""

    async def language_hints_of(self, batch_ids: Collection[str]) -> dict[str, LanguageHints]:
        """Returns each known batch's language hints, by id (unknown ids are left out). Raises
        the common errors."""

    async def transcription_options_in_use(self) -> dict[str, TranscriptionOptions]:
        """Returns the :class:`TranscriptionOptions` of the open batches that ask for anything
        (a vocabulary, a context, a translation, doubtful words marked), by batch id; every other
        open batch asks for nothing. Raises the common errors."""

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
        job whose last call was answered. Raises the common errors."""

    async def jobs_with_unneeded_spool(self) -> list[Job]:
        """Returns the jobs still holding a spool file although their batch has finished. Raises
        the common errors."""

    async def lost_answers_to_recover(self) -> list[Job]:
        """Returns the jobs of finished batches whose last upload or submission was sent without
        its answer being recorded. Raises the common errors."""

    async def account_problems(self) -> list[ProviderAccountProblem]:
        """Returns every recorded provider account problem, by provider. Raises the common
        errors."""

    # -- leases ------------------------------------------------------------------------------

    async def claim_due_jobs(
        self,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        *,
        whole_batches: Collection[str] = (),
        limit: int | None = None,
    ) -> list[Job]:
        """Lease to ``owner``, until ``now + lease_for``, the unfinished jobs of open batches that
        are due by ``now`` and under no unexpired lease (``owner``'s own included: that work is
        under way); returns them as they are now, in the order of :meth:`due_jobs`.

        For a provider in ``whole_batches`` (one whose unit of work is the batch) a batch is
        claimed whole: every unfinished job of it once one is due, or none while any is under an
        unexpired lease. At most ``limit`` jobs, never part of such a batch. Raises the common
        errors."""

    async def claim_jobs(
        self, owner: str, job_ids: Collection[str], now: datetime, lease_for: timedelta
    ) -> list[Job]:
        """Lease to ``owner``, until ``now + lease_for``, those of these jobs that no other owner
        holds unexpired; returns them as they are now, by batch and position. Raises the common
        errors."""

    async def claim_batches(
        self, owner: str, batch_ids: Collection[str], now: datetime, lease_for: timedelta
    ) -> list[Batch]:
        """Lease to ``owner``, until ``now + lease_for``, those of these batches that no other
        owner holds unexpired; returns them as they are now (what a reading before the claim
        said of them may be out of date), oldest first. Raises the common errors."""

    async def renew_leases(
        self, owner: str, leases: Leases, now: datetime, lease_for: timedelta
    ) -> Leases:
        """Extend to ``now + lease_for`` the leases ``owner`` still holds among ``leases``
        (expired ones too, unless another owner claimed them since); returns those. Raises the
        common errors."""

    async def release_leases(self, owner: str, leases: Leases) -> None:
        """Free the leases ``owner`` holds among ``leases``: anyone may claim those rows at once.
        Leases another owner holds are left alone. Raises the common errors."""

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

    async def record_still_running(self, polled: Sequence[StillRunning], now: datetime) -> int:
        """``JobMoves.KEEP_RUNNING`` for each polled job still as it was read (see
        :class:`StillRunning`), in one transaction. Returns how many were recorded. Raises the
        common errors."""

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

    # -- a batch's reply ---------------------------------------------------------------------

    async def begin_delivery(self, batch_id: str, now: datetime) -> bool:
        """``BatchMoves.BEGIN_DELIVERY``. Returns whether the batch moved (False: it was cancelled
        or delivered meanwhile, and nothing may be posted). Raises the common errors."""

    async def record_reply(self, batch_id: str, reply_ts: str, now: datetime) -> bool:
        """``BatchMoves.DELIVER``: the reply at ``reply_ts`` was posted, delivered at ``now``.
        Returns whether the batch moved. Raises the common errors."""

    async def record_no_reply(self, batch_id: str, now: datetime) -> bool:
        """``BatchMoves.DELIVER`` without a reply: nothing in the batch was worth one. Returns
        whether the batch moved. Raises the common errors."""

    async def mark_undeliverable(self, batch_id: str, now: datetime) -> bool:
        """``BatchMoves.GIVE_UP``. Returns whether the batch moved. Raises the common errors."""

    async def schedule_delivery_retry(
        self,
        batch_id: str,
        *,
        attempts: int,
        retry_at: datetime,
        failing_since: datetime,
        now: datetime,
    ) -> bool:
        """Posting the running batch's reply failed for now: try again at ``retry_at``. Returns
        whether it was scheduled (False: the batch is not running). Raises the common errors."""

    async def cancel_batch(self, batch_id: str, now: datetime) -> bool:
        """``BatchMoves.CANCEL``. Returns whether the batch moved (False: its reply has begun, or
        it has finished). Raises the common errors."""

    # -- a batch's progress message ----------------------------------------------------------

    async def mark_progress_pending(self, batch_ids: Sequence[str], now: datetime) -> int:
        """A progress message is about to be posted for each batch (``PENDING_STATUS``): after a
        crash, look in the thread before posting it. Returns how many were marked. Raises the
        common errors."""

    async def record_progress_found(self, batch_id: str, message_ts: str, now: datetime) -> bool:
        """The pending progress message was found in the thread at ``message_ts``. Returns whether
        the batch exists. Raises the common errors."""

    async def record_progress_shown(self, shown: Sequence[ProgressShown], now: datetime) -> int:
        """These progress messages were posted or edited at ``now``, in one transaction. Returns
        how many were recorded. Raises the common errors."""

    async def record_final_note(
        self, batch_id: str, message_ts: str | None, text: str, now: datetime
    ) -> bool:
        """The batch's progress message at ``message_ts`` (None: it was never posted) now says
        ``text`` for good. Returns whether the batch exists. Raises the common errors."""

    # -- speaker names -----------------------------------------------------------------------

    async def latest_reply_in_thread(self, channel_id: str, thread_ts: str) -> Batch | None:
        """Returns the newest delivered batch of the channel with a reply in the thread at
        ``thread_ts``, or None. Raises the common errors."""

    async def speaker_naming(self, batch_id: str) -> SpeakerNaming | None:
        """Returns the batch's speaker names and how far its reply shows them, or None when its
        speakers were never named. Raises the common errors."""

    async def name_speakers(
        self, batch_id: str, names: SpeakerNames, now: datetime
    ) -> SpeakerNaming | None:
        """Record ``names`` as the speaker names of a delivered batch with a reply, in place of
        any before: the version counts up, and showing it is due at once with a fresh allowance of
        attempts. Returns the naming as recorded, or None when the batch is not delivered with a
        reply (checked in the same transaction: nothing is recorded then). Raises the common
        errors."""

    async def namings_to_show(self, now: datetime) -> list[SpeakerNaming]:
        """Returns the namings whose reply does not show their version yet, and whose retry (if
        any) is due by ``now``, least recently changed first. Raises the common errors."""

    async def record_names_shown(self, batch_id: str, version: int, now: datetime) -> bool:
        """The reply shows the names of ``version``: ``shown`` becomes it (unless it is past it
        already), and the retries are forgotten. Returns whether the batch has a naming. Raises
        the common errors."""

    async def schedule_naming_retry(
        self,
        batch_id: str,
        *,
        attempts: int,
        retry_at: datetime,
        failing_since: datetime,
        now: datetime,
    ) -> bool:
        """Showing the names failed for now: try again at ``retry_at``. Returns whether the batch
        has a naming. Raises the common errors."""

    async def reply_files(self, batch_id: str) -> list[ReplyFile]:
        """Returns the files recorded as attached to the batch's reply, by when they were
        recorded, then by id. Raises the common errors."""

    async def record_reply_files(
        self, batch_id: str, files: Sequence[ReplyFile], now: datetime
    ) -> int:
        """These files are attached to the batch's reply, in one transaction; one recorded before
        is left as it is. Returns how many were added. Raises the common errors."""

    async def begin_file_replacement(self, batch_id: str, now: datetime) -> SpeakerNaming | None:
        """The reply's files are about to be replaced: in one transaction, every file recorded
        for it is marked retiring and ``replacing_since`` becomes ``now``. Changes nothing while a
        replacement is under way already. Returns the naming as it stands after, or None when
        the batch has none. Raises the common errors."""

    async def finish_file_replacement(
        self, batch_id: str, files: Sequence[ReplyFile], version: int, now: datetime
    ) -> bool:
        """The replacements are attached, rendered with the names of ``version``: in one
        transaction, ``files`` are recorded as the reply's (not retiring), ``replacing_since``
        is cleared and ``files_version`` becomes ``version``. Returns whether a replacement was
        under way (False: nothing is recorded). Raises the common errors."""

    async def forget_reply_files(
        self, batch_id: str, file_ids: Collection[str], now: datetime
    ) -> int:
        """These files of the batch's reply were deleted from its thread. Returns how many were
        forgotten. Raises the common errors."""

    # -- channel views (slash commands) ------------------------------------------------------

    async def running_batches(self, channel_id: str) -> list[Batch]:
        """Returns the channel's running batches, oldest first. Raises the common errors."""

    async def finished_batches(self, channel_id: str, limit: int) -> list[Batch]:
        """Returns the channel's last ``limit`` finished batches, last changed first. Raises the
        common errors."""

    async def active_batch_for_message(self, channel_id: str, message_ts: str) -> Batch | None:
        """Returns the newest running batch for this message, or None. Raises the common
        errors."""

    async def last_failed_batch(self, channel_id: str) -> Batch | None:
        """Returns the channel's newest delivered or undeliverable batch with a failed job that
        no later batch for the same message superseded, or None. Raises the common errors."""

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

    # -- installations -----------------------------------------------------------------------
    # Their tokens are secrets: a backend stores them as it stores any text, and never logs them.

    async def save_installation(self, installation: SlackInstallation, now: datetime) -> None:
        """Record ``installation`` in place of any earlier one with the same key: installing
        again starts from what Slack has just given. Raises :class:`InvalidRecord` for a key no
        installation can have (:attr:`WorkspaceKey.problem`), and the common errors."""

    async def installation(self, key: WorkspaceKey) -> SlackInstallation | None:
        """Returns the installation recorded with exactly ``key``, or None (an organisation-wide
        installation is found by its enterprise id alone:
        ``WorkspaceKey.of(enterprise_id, team_id, is_enterprise_install=True)``). Raises the
        common errors."""

    async def record_rotated_bot_token(
        self,
        key: WorkspaceKey,
        *,
        installed_at: datetime,
        bot_token: str,
        bot_refresh_token: str | None,
        expires_at: datetime | None,
        now: datetime,
    ) -> bool:
        """The bot token of the installation recorded at ``installed_at`` was refreshed: keep
        the new token, refresh token and expiry. Returns whether they were kept: False when that
        installation was deleted, or replaced by a newer one, meanwhile (whose tokens stay as
        they are: a late refresh must neither bring a deleted installation back nor overwrite a
        re-install). Raises the common errors."""

    async def delete_bot(self, key: WorkspaceKey, now: datetime) -> bool:
        """Forget the bot's tokens (Slack revoked them); the rest of the installation stays
        until :meth:`delete_installation`, and :meth:`installation` then returns it without a
        token. Returns whether it had a token. Raises the common errors."""

    async def delete_installation(self, key: WorkspaceKey) -> bool:
        """Forget the installation, its tokens and all. Returns whether there was one. Raises
        the common errors."""

    # -- OAuth states ------------------------------------------------------------------------

    async def issue_oauth_state(self, state: str, expires_at: datetime, now: datetime) -> None:
        """Record ``state``, handed to a browser that starts an install: it can be consumed
        once, before ``expires_at``. States expired by ``now`` are forgotten on the way. Raises
        :class:`InvalidRecord` for a state issued before, and the common errors."""

    async def consume_oauth_state(self, state: str, now: datetime) -> bool:
        """Returns True when ``state`` was issued and has not expired by ``now``, once: the
        state is forgotten either way, so a second use, an unknown or an expired state all get
        False. Raises the common errors."""
