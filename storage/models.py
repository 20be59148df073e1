"""Rows of the database as the bot sees them, and the states they move through."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """Where one file or link stands. Each state says what the next step is after a restart."""

    #: Recorded; nothing fetched yet.
    QUEUED = "queued"
    #: Being fetched from Slack into the spool; restart fetches again.
    DOWNLOADING = "downloading"
    #: The spool file is complete; it is being sent to the provider.
    UPLOADING = "uploading"
    #: The provider holds the file (``provider_file_id``); it can be submitted once ready.
    UPLOADED = "uploaded"
    #: The provider has a transcription for it (``provider_job_id``); poll it.
    SUBMITTED = "submitted"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    #: Not audio or video after all (a Slack Connect stub resolved to a PDF, say); not reported.
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


TERMINAL_JOB_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.SKIPPED})


class BatchState(StrEnum):
    #: Jobs are moving.
    OPEN = "open"
    #: Every job is terminal and a reply may have been posted: check the thread before posting.
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    #: Slack refused the reply for good (channel archived, app removed); kept for the record.
    UNDELIVERABLE = "undeliverable"
    CANCELLED = "cancelled"


class JobKind(StrEnum):
    SLACK_FILE = "slack_file"
    URL = "url"


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
