"""Rows of the database as the bot sees them, and what the store's verbs are given to record.

The states themselves, and the moves allowed between them, are in :mod:`storage.states`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from storage.states import (
    FINISHED_BATCH_STATES,
    FINISHED_JOB_STATES,
    BatchState,
    JobKind,
    JobState,
)

__all__ = [
    "FINISHED_BATCH_STATES",
    "FINISHED_JOB_STATES",
    "PENDING_STATUS",
    "Batch",
    "BatchState",
    "ChannelSettings",
    "Failure",
    "FileInfo",
    "Job",
    "JobKind",
    "JobState",
    "LanguageHints",
    "Leases",
    "NewBatch",
    "NewJob",
    "ProgressShown",
    "ProviderAccountProblem",
    "Resubmission",
    "StillRunning",
    "Submission",
    "Upload",
]


@dataclass
class NewJob:
    kind: JobKind
    filename: str
    slack_file_id: str | None = None
    url: str | None = None
    download_url: str | None = None
    mimetype: str | None = None
    size_bytes: int | None = None
    #: The recording's length, when Slack gives it (clips and many media files).
    duration_ms: int | None = None
    #: Slack Connect stub: details come from ``files.info`` before the download.
    needs_file_info: bool = False
    #: Unique per (team, channel, message, file): the same file of the same message is taken once.
    dedupe_key: str | None = None
    #: Set when the job is refused at intake (too large, say): it starts out failed.
    refused_reason: str | None = None


@dataclass
class NewBatch:
    team_id: str | None
    channel_id: str
    message_ts: str
    thread_ts: str
    user_id: str | None
    provider: str
    source: str
    language_hints: list[str] = field(default_factory=list)
    language_hints_strict: bool = False


@dataclass(frozen=True, slots=True)
class LanguageHints:
    """A batch's language hints, as a provider call needs them; fixed when the batch was created."""

    codes: tuple[str, ...] = ()
    #: Keep to these languages rather than only lean towards them.
    strict: bool = False


@dataclass(slots=True)
class Batch:
    id: str
    team_id: str | None
    channel_id: str
    message_ts: str
    thread_ts: str
    user_id: str | None
    provider: str
    source: str
    state: BatchState
    language_hints: list[str]
    reply_ts: str | None
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    #: The thread message showing progress; ``PENDING_STATUS`` while it is being posted.
    status_ts: str | None = None
    status_text: str | None = None
    status_updated_at: datetime | None = None
    #: When posting the reply first failed; cleared once it is posted.
    failing_since: datetime | None = None
    #: The provider is to keep to ``language_hints`` rather than only lean towards them.
    language_hints_strict: bool = False


#: ``Batch.status_ts`` while the progress message is being posted: after a crash the thread is
#: searched for it instead of posting a second one.
PENDING_STATUS = "pending"


@dataclass(slots=True)
class Job:
    id: str
    batch_id: str
    position: int
    kind: JobKind
    provider: str
    filename: str
    slack_file_id: str | None
    url: str | None
    download_url: str | None
    mimetype: str | None
    size_bytes: int | None
    needs_file_info: bool
    state: JobState
    attempts: int
    next_attempt_at: datetime | None
    error: str | None
    error_detail: str | None
    spool_path: str | None
    provider_file_id: str | None
    provider_upload_id: str | None
    provider_job_id: str | None
    provider_eta_at: datetime | None
    transcript: dict[str, Any] | None
    raw_result: Any
    attachment_uploaded: bool
    cleaned_up: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    #: When the job started waiting on its current step (a transcription in progress, an upload
    #: not ready) or failing at it; the age limit counts from here.
    stalled_since: datetime | None = None
    #: An upload or submission was sent at this time and its answer is not recorded yet.
    sent_at: datetime | None = None
    #: Times the job was submitted again because the provider lost the work it had accepted.
    resubmissions: int = 0
    #: The recording's length, when Slack gives it.
    duration_ms: int | None = None
    #: The provider whose account refuses new work (a used-up balance) while this job waits
    #: for it; None otherwise.
    held_by: str | None = None


@dataclass
class ProviderAccountProblem:
    """A provider account that refuses new work until an admin acts (a used-up balance)."""

    provider: str
    #: The provider's word for it (``organization_balance_exhausted``): a metric label.
    reason: str
    #: What the provider answered, for the log and the operator.
    detail: str
    #: What to tell a user whose file waits for it, or fails after waiting too long.
    message: str
    #: The steps the provider refused (``upload``, ``submit``): only those wait.
    steps: list[str]
    since: datetime


@dataclass
class ChannelSettings:
    channel_id: str
    provider: str | None = None
    auto: bool = True
    language_hints: list[str] = field(default_factory=list)
    #: Keep to the hinted languages rather than only lean towards them.
    language_hints_strict: bool = False


# -- what a step records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a job failed, for good."""

    #: What the reply tells whoever shared the file.
    message: str
    #: What the log tells the operator.
    detail: str
    #: What the provider answered, kept with the job when it reported the failure itself.
    provider_answer: Any = None


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What Slack's ``files.info`` says of a Slack Connect stub, fetched before its download."""

    filename: str
    download_url: str | None
    mimetype: str | None
    size_bytes: int | None
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class Upload:
    """A file the provider now holds for a job."""

    job_id: str
    file_id: str
    upload_id: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """A transcription the provider started for a job."""

    job_id: str
    #: The provider's id of the transcription (or of the provider batch holding it).
    remote_id: str
    #: The provider's file, when it has one for the job (an upload, or a link it fetched).
    file_id: str | None
    #: When the provider expects to be done, if it said.
    eta_at: datetime | None
    #: When to poll first; None: at once (the provider already said it ended).
    poll_at: datetime | None


@dataclass(frozen=True, slots=True)
class StillRunning:
    """A job the provider is still working on, as a poll found it."""

    job_id: str
    #: The job's state and ``updated_at`` as read before the poll: the answer is recorded only
    #: while they are unchanged, so it never overwrites a newer change (a webhook, a cancel).
    read_state: JobState
    read_updated_at: datetime
    #: When to poll again.
    poll_at: datetime
    #: When the provider now expects to be done, if it said; None keeps what it said before.
    eta_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Resubmission:
    """A job whose provider lost the work it had accepted, sent back to be submitted again."""

    job_id: str
    #: The file the provider still holds for it: submitted again from there. None: the job starts
    #: over (a link is given again, a Slack file fetched again).
    file_id: str | None
    #: What the provider said, for the log.
    detail: str


@dataclass(frozen=True, slots=True)
class ProgressShown:
    """A batch's progress message, as just posted or edited in its thread."""

    batch_id: str
    text: str
    #: The message's ts when it was just posted; None when an existing one was edited.
    message_ts: str | None = None


# -- leases ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leases:
    """The rows one owner holds under a lease, by id: the jobs whose steps it runs, and the
    batches whose reply or progress message it posts."""

    jobs: frozenset[str] = frozenset()
    batches: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.jobs or self.batches)
