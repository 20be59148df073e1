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
    "ReplyFile",
    "Resubmission",
    "SlackInstallation",
    "SpeakerNames",
    "SpeakerNaming",
    "StillRunning",
    "Submission",
    "TranscriptionOptions",
    "Upload",
    "Workspace",
    "WorkspaceKey",
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


@dataclass(frozen=True, slots=True)
class TranscriptionOptions:
    """What a batch asks of its provider besides language hints, from its channel's settings;
    fixed when the batch was created, so changing the settings never disturbs work in flight."""

    #: Words and names to expect (the channel's vocabulary).
    terms: tuple[str, ...] = ()
    #: A sentence about what the recordings are about.
    context: str | None = None
    #: ISO 639-1 codes: none, no translation; one, every turn translated into it; two, each
    #: turn translated into the other.
    translation: tuple[str, ...] = ()
    #: Keep each word's confidence, so that doubtful words can be marked in the reply.
    mark_doubtful: bool = False


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
    options: TranscriptionOptions = TranscriptionOptions()
    #: The Enterprise Grid organisation of ``team_id``, when the workspace is in one.
    enterprise_id: str | None = None

    @property
    def workspace(self) -> Workspace:
        """The workspace the batch is asked for in."""
        return Workspace(self.team_id or "", self.enterprise_id)


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
    #: The Enterprise Grid organisation of ``team_id``, when the workspace is in one.
    enterprise_id: str | None = None

    @property
    def workspace(self) -> Workspace:
        """The workspace the batch's message is in, whose token every Slack call for it uses."""
        return Workspace(self.team_id or "", self.enterprise_id)


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
    #: Words and names the provider is told to expect, as typed.
    vocabulary: list[str] = field(default_factory=list)
    #: A sentence about this channel's conversations, for the provider.
    context: str | None = None
    #: The translation asked for, as :attr:`TranscriptionOptions.translation`.
    translation: tuple[str, ...] = ()
    #: Mark the words the provider was unsure of.
    mark_doubtful: bool = False

    def transcription_options(self) -> TranscriptionOptions:
        """What a batch created now records of these settings."""
        return TranscriptionOptions(
            terms=tuple(self.vocabulary),
            context=self.context or None,
            translation=self.translation,
            mark_doubtful=self.mark_doubtful,
        )


# -- who the speakers are -----------------------------------------------------------------------

#: Who the speakers of a batch's transcripts are: job id -> the provider's speaker label (``1``)
#: -> the Slack user id of the person. Speakers left out are shown as the provider numbered them.
SpeakerNames = dict[str, dict[str, str]]


@dataclass(slots=True)
class SpeakerNaming:
    """A delivered batch's speaker names, and how far its reply shows them.

    Each change of ``names`` counts up ``version``; the reply (and its attached files) are
    rendered again until ``shown`` reaches it. The names are the truth; the reply follows them.
    """

    batch_id: str
    names: SpeakerNames
    version: int
    #: The version the reply's message shows.
    shown: int
    #: The version the reply's attached files show.
    files_version: int
    #: Set while the attached files are being replaced: their new versions may have been uploaded
    #: (since this time) before a crash, so the thread is looked at before uploading again.
    replacing_since: datetime | None
    attempts: int
    next_attempt_at: datetime | None
    #: When showing the names first failed; cleared once they are shown.
    failing_since: datetime | None
    updated_at: datetime

    @property
    def is_shown(self) -> bool:
        return self.shown >= self.version


@dataclass(frozen=True, slots=True)
class ReplyFile:
    """A file attached to a batch's reply (a transcript or subtitles) in its thread."""

    file_id: str
    filename: str
    #: To be deleted once its replacement is up (or already replaced: delete it now).
    retiring: bool = False


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


# -- installations (Slack workspaces and organisations the app is installed in) ------------------


@dataclass(frozen=True, slots=True)
class Workspace:
    """The Slack workspace a piece of work belongs to: its team id, and its Enterprise Grid
    organisation's id when it is in one. Work, settings and status are kept apart by it (by the
    team id: Slack's team ids are unique across organisations). A team id of ``''`` with an
    enterprise id names a whole organisation (:meth:`storage.store.Store.remove_workspace`)."""

    team_id: str
    enterprise_id: str | None = None


@dataclass(frozen=True, slots=True)
class WorkspaceKey:
    """Which installation: a workspace (``team_id``, with its organisation's ``enterprise_id``
    when it is in one), or a whole Enterprise Grid organisation (``is_enterprise_install``:
    ``enterprise_id`` alone, no ``team_id``)."""

    enterprise_id: str | None
    team_id: str | None
    is_enterprise_install: bool = False

    @classmethod
    def of(
        cls, enterprise_id: str | None, team_id: str | None, *, is_enterprise_install: bool
    ) -> WorkspaceKey:
        """The key Slack's ids name, as Bolt asks for it: an organisation-wide install ignores the
        workspace an event came from; empty ids count as none."""
        if is_enterprise_install:
            return cls(enterprise_id or None, None, True)
        return cls(enterprise_id or None, team_id or None, False)

    @property
    def problem(self) -> str | None:
        """Why no installation can have this key; None when one can."""
        if self.is_enterprise_install and not self.enterprise_id:
            return "an organisation-wide installation needs its enterprise id"
        if not self.is_enterprise_install and not self.team_id:
            return "a workspace installation needs its team id"
        return None


@dataclass(frozen=True, slots=True)
class SlackInstallation:
    """The app installed in a workspace or an organisation: its bot's credentials and who
    installed it. One per :class:`WorkspaceKey`; installing again replaces it.

    The tokens are secrets: they are left out of ``repr`` so that logging an installation cannot
    show them."""

    key: WorkspaceKey
    #: None once the bot's tokens were revoked (the installation itself stays until deleted).
    bot_token: str | None = field(repr=False)
    bot_user_id: str | None
    bot_id: str | None
    bot_scopes: tuple[str, ...]
    installer_user_id: str | None
    installed_at: datetime
    #: With token rotation: the token that gets the next bot token, and when this one expires.
    bot_refresh_token: str | None = field(default=None, repr=False)
    bot_token_expires_at: datetime | None = None
    app_id: str | None = None
    team_name: str | None = None
    enterprise_name: str | None = None
    enterprise_url: str | None = None


# -- leases ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leases:
    """The rows one owner holds under a lease, by id: the jobs whose steps it runs, and the
    batches whose reply or progress message it posts."""

    jobs: frozenset[str] = frozenset()
    batches: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.jobs or self.batches)
