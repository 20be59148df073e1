"""The states a job and a batch move through, and the one table of the moves allowed between them.

Every store moves a row only along a move of this table, and only from that move's source states
(a guarded write): two actors that race for the same row (a cancel and a delivery, say) cannot
both win, because the second finds the row no longer in a source state and is told so.

The finished states are the ones no move leaves; they are defined here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar


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
        """Finished: no move leaves this state."""
        return self in FINISHED_JOB_STATES


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


#: Jobs that will not change state any more.
FINISHED_JOB_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.SKIPPED})
#: Jobs with a step left.
UNFINISHED_JOB_STATES = frozenset(JobState) - FINISHED_JOB_STATES
#: Batches that will not change state any more: their reply is posted, refused, or not wanted.
FINISHED_BATCH_STATES = frozenset(
    {BatchState.DELIVERED, BatchState.UNDELIVERABLE, BatchState.CANCELLED}
)
#: Batches whose reply is still to come.
RUNNING_BATCH_STATES = frozenset(BatchState) - FINISHED_BATCH_STATES

_State = TypeVar("_State", JobState, BatchState)


@dataclass(frozen=True)
class Move(Generic[_State]):
    """One allowed state change: from any of ``sources`` to ``target``."""

    sources: frozenset[_State]
    target: _State


_RUNNING_AT_PROVIDER = frozenset({JobState.SUBMITTED, JobState.PROCESSING})
_DOWNLOAD_PENDING = frozenset({JobState.QUEUED, JobState.DOWNLOADING})


class JobMoves:
    """Every state change a job may make. A job starts ``QUEUED`` (``FAILED`` when refused at
    intake)."""

    #: The download begins (again, after a restart mid-download).
    START_DOWNLOAD = Move(_DOWNLOAD_PENDING, JobState.DOWNLOADING)
    #: A Slack Connect stub turned out not to be audio or video.
    SKIP = Move(_DOWNLOAD_PENDING, JobState.SKIPPED)
    #: The spool file is complete.
    FINISH_DOWNLOAD = Move(frozenset({JobState.DOWNLOADING}), JobState.UPLOADING)
    #: The spool file went missing before its upload: fetch it from Slack again.
    DOWNLOAD_AGAIN = Move(frozenset({JobState.UPLOADING}), JobState.QUEUED)
    #: The provider holds the file.
    FINISH_UPLOAD = Move(frozenset({JobState.UPLOADING}), JobState.UPLOADED)
    #: The provider took the file (or the link, which it fetches itself) for transcription.
    SUBMIT = Move(frozenset({JobState.QUEUED, JobState.UPLOADED}), JobState.SUBMITTED)
    #: The provider is still at work.
    KEEP_RUNNING = Move(_RUNNING_AT_PROVIDER, JobState.PROCESSING)
    #: The provider gave the transcript.
    COMPLETE = Move(_RUNNING_AT_PROVIDER, JobState.COMPLETED)
    #: The provider lost the work, and still holds the file: submit it again.
    RESUBMIT_STORED = Move(_RUNNING_AT_PROVIDER, JobState.UPLOADED)
    #: The provider lost the work of a link, or of a file it no longer holds: start over.
    RESUBMIT_FROM_START = Move(_RUNNING_AT_PROVIDER, JobState.QUEUED)
    #: Given up: a refusal, an error no retry can fix, or the age limit.
    FAIL = Move(UNFINISHED_JOB_STATES, JobState.FAILED)


class BatchMoves:
    """Every state change a batch may make. A batch starts ``OPEN``."""

    #: Every job has finished and the reply is about to be posted.
    BEGIN_DELIVERY = Move(frozenset({BatchState.OPEN}), BatchState.DELIVERING)
    #: The reply is posted, or there was nothing to post.
    DELIVER = Move(frozenset({BatchState.OPEN, BatchState.DELIVERING}), BatchState.DELIVERED)
    #: Slack refuses the reply for good.
    GIVE_UP = Move(frozenset({BatchState.OPEN, BatchState.DELIVERING}), BatchState.UNDELIVERABLE)
    #: Someone cancelled it before its reply began: nothing more is posted for it.
    CANCEL = Move(frozenset({BatchState.OPEN}), BatchState.CANCELLED)


#: Every job move, and every batch move.
JOB_MOVES: tuple[Move[JobState], ...] = tuple(
    move for move in vars(JobMoves).values() if isinstance(move, Move)
)
BATCH_MOVES: tuple[Move[BatchState], ...] = tuple(
    move for move in vars(BatchMoves).values() if isinstance(move, Move)
)


def job_move_allowed(source: JobState, target: JobState) -> bool:
    """Whether some move takes a job from ``source`` to ``target``."""
    return any(source in move.sources and move.target is target for move in JOB_MOVES)


def batch_move_allowed(source: BatchState, target: BatchState) -> bool:
    """Whether some move takes a batch from ``source`` to ``target``."""
    return any(source in move.sources and move.target is target for move in BATCH_MOVES)
