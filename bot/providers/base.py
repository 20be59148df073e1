"""The interface every speech-to-text provider implements.

The pipeline owns state; a provider owns nothing but its HTTP calls. The pipeline hands a provider
a **group** of :class:`ProviderJob` and records what comes back before taking the next step, so a
crash between two calls never makes the pipeline repeat a call whose result it has recorded.

A group is one job for a per-file provider (``batch_native = False``, e.g. Soniox) and every job of
one Slack message for a batch-native provider (``batch_native = True``, e.g. Soket, which uploads
many files in one request and transcribes them as one batch). The steps, in order:

1. :meth:`Provider.upload` sends the spool files of the group (jobs with ``spool_path``);
   after a crash during an upload, :meth:`Provider.find_uploaded` is asked first.
2. :meth:`Provider.uploads_ready` says whether the provider can use the uploaded files yet.
3. :meth:`Provider.submit` starts transcription of the group (uploaded files and links);
   after a crash during a submission, :meth:`Provider.find_submitted` is asked first.
4. :meth:`Provider.poll` reports progress; terminal outcomes carry the transcript or the reason.
   A provider that can report many transcriptions in one call (``polls_many``) is instead handed
   the running jobs of every due unit at once, through :meth:`Provider.poll_many`.
5. :meth:`Provider.clean_up` deletes the provider's copies: a per-file provider's as soon as
   the job has ended (its transcript is in the database), a batch-native one's once the reply
   is posted.

Errors: a method raises :mod:`bot.errors` exceptions for the whole group (a 5xx, a timeout, a bad
token). A failure of one job alone (a file the provider rejected) is returned in the result mapping
as a :class:`~bot.errors.PermanentError` for that job, so its siblings go on.
"""

from __future__ import annotations

import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar

import httpx

from bot import metrics
from bot.errors import (
    PermanentError,
    ProviderAuthError,
    RateLimited,
    TemporaryError,
    TranscribeError,
)
from bot.transcript import Transcript


@dataclass
class ProviderJob:
    """What a provider is told about one job; the ``*_id`` fields are what it returned before."""

    job_id: str
    filename: str
    spool_path: Path | None = None
    url: str | None = None
    size_bytes: int | None = None
    mimetype: str | None = None
    language_hints: list[str] = field(default_factory=list)
    #: Keep to the hinted languages rather than only lean towards them (Soniox only).
    language_hints_strict: bool = False
    #: Words and names to expect, for a provider that ``supports_context``.
    terms: list[str] = field(default_factory=list)
    #: A sentence about what the recording is about, likewise.
    context: str | None = None
    #: ISO 639-1 codes, for a provider that ``supports_translation``: one, every turn translated
    #: into it; two, each turn into the other; none, no translation.
    translation: tuple[str, ...] = ()
    #: Keep each word's confidence in the transcript, for a provider that
    #: ``reports_confidence``.
    word_confidence: bool = False
    #: The provider's id of the uploaded file.
    file_id: str | None = None
    #: The provider's id of the upload request that carried the file (Soket's batch_upload_id).
    upload_id: str | None = None
    #: The provider's id of the transcription work (Soniox transcription, Soket batch).
    remote_id: str | None = None


@dataclass
class Uploaded:
    file_id: str
    upload_id: str | None = None


@dataclass
class Submitted:
    remote_id: str
    #: Seconds until the provider expects to be done, when it says.
    eta_seconds: float | None = None
    #: Set when submitting gave the job its file id (Soket links).
    file_id: str | None = None


class ProgressStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (ProgressStatus.COMPLETED, ProgressStatus.FAILED)


@dataclass
class Progress:
    status: ProgressStatus
    transcript: Transcript | None = None
    #: The provider's own answer for this job, stored as it came.
    raw: Any = None
    #: Why it failed, in words a Slack user understands.
    error: PermanentError | None = None
    eta_seconds: float | None = None


#: Per job id: the outcome, or the reason this job alone failed.
Outcomes = Mapping[str, Any]


class Provider(ABC):
    name: ClassVar[str]
    #: The provider's name as people read it in replies.
    display_name: ClassVar[str] = "The transcription service"
    #: True when all jobs of one Slack message travel as one group.
    batch_native: ClassVar[bool] = False
    #: The largest file the provider takes, whatever ``MAX_FILE_MB`` says. None: none known.
    max_file_bytes: int | None = None
    #: The longest recording the provider takes. None: none known.
    max_duration_seconds: float | None = None
    #: Most jobs submitted and not yet finished at once; the pipeline holds the rest back so a
    #: provider-side cap (Soniox: 100 pending transcriptions) is never reached. None: no limit.
    max_in_flight: int | None = None
    #: Most files, and bytes, the provider keeps for us at once (Soniox: 1,000 files and 10 GB):
    #: the pipeline holds back uploads beyond, until deleting finished ones frees room. None: no
    #: limit.
    max_stored_files: int | None = None
    max_stored_bytes: int | None = None
    #: True when the provider calls back (a webhook) as each job ends: polls are then only the
    #: fallback, and the pipeline makes them rarely.
    notifies_completion: bool = False
    #: The ``reason`` of each :class:`~bot.errors.AccountProblem` the provider can report (a
    #: used-up balance, say); the metrics show each, at zero while it does not stand.
    account_problem_reasons: ClassVar[tuple[str, ...]] = ()
    #: True when :meth:`poll_many` answers the running jobs of many units in fewer calls than
    #: one poll per unit: each cycle then hands it all of them in one call.
    polls_many: ClassVar[bool] = False
    #: True when the provider can keep to the hinted languages (``language_hints_strict``)
    #: rather than only lean towards them; ``/transcribe language`` says which ones can.
    keeps_to_language_hints: ClassVar[bool] = False
    #: True when the provider takes a vocabulary and a sentence of context with each file
    #: (``/transcribe vocabulary``, ``context``), up to ``max_context_chars`` characters of
    #: both together.
    supports_context: ClassVar[bool] = False
    max_context_chars: ClassVar[int] = 0
    #: True when the provider translates transcripts (``/transcribe translate``), into and
    #: between the languages of ``translation_languages`` (ISO 639-1).
    supports_translation: ClassVar[bool] = False
    translation_languages: ClassVar[frozenset[str]] = frozenset()
    #: True when the provider says how sure it is of each word (``/transcribe confidence``).
    reports_confidence: ClassVar[bool] = False

    @abstractmethod
    async def check_credentials(self) -> None:
        """Make one cheap authenticated call; raise ProviderAuthError when the key is wrong."""

    @abstractmethod
    async def upload(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded | PermanentError]:
        """Stream each job's ``spool_path`` to the provider."""

    async def uploads_ready(
        self, jobs: Sequence[ProviderJob]
    ) -> Mapping[str, bool | PermanentError]:
        """Whether each uploaded file can be submitted now. Most providers: at once."""
        return {job.job_id: True for job in jobs}

    async def find_uploaded(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded]:
        """What an :meth:`upload` sent before a crash already created, for these jobs.

        Called instead of uploading blind when the pipeline recorded that an upload was sent
        but not its answer. Jobs left out are uploaded again. Default: nothing can be found.
        """
        return {}

    async def find_submitted(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted]:
        """What a :meth:`submit` sent before a crash already started, for these jobs."""
        return {}

    @abstractmethod
    async def submit(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted | PermanentError]:
        """Start transcription of uploaded files (``file_id``) and links (``url``)."""

    @abstractmethod
    async def poll(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Progress]:
        """Report each submitted job's progress; fetch the transcript of completed ones."""

    async def poll_many(
        self, jobs: Sequence[ProviderJob]
    ) -> Mapping[str, Progress | TranscribeError]:
        """Report the progress of the running jobs of many units at once.

        Unlike :meth:`poll`, a failure of one job alone is that job's entry, so the others'
        answers are kept; an exception raised is a failure of the whole call. Jobs left out are
        asked again later. Default: each job is polled alone.
        """

        async def poll_alone(job: ProviderJob) -> Progress | None:
            return (await self.poll([job])).get(job.job_id)

        return await each_alone(jobs, poll_alone)

    @abstractmethod
    async def clean_up(self, jobs: Sequence[ProviderJob]) -> None:
        """Delete what the provider still holds for these jobs. Missing things are fine."""


async def each_alone(
    jobs: Sequence[ProviderJob], poll_one: Callable[[ProviderJob], Awaitable[Progress | None]]
) -> dict[str, Progress | TranscribeError]:
    """``poll_one`` each job in turn, keeping each job's own failure as its entry."""
    outcomes: dict[str, Progress | TranscribeError] = {}
    for index, job in enumerate(jobs):
        try:
            progress = await poll_one(job)
        except (ProviderAuthError, RateLimited) as exc:
            # About the account, not the job: the jobs not asked yet would meet it too.
            outcomes.update((rest.job_id, exc) for rest in jobs[index:])
            break
        except TranscribeError as exc:
            outcomes[job.job_id] = exc
        else:
            if progress is not None:
                outcomes[job.job_id] = progress
    return outcomes


# -- shared HTTP handling -------------------------------------------------------------------------


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Read ``Retry-After`` as seconds or an HTTP date."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time())


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    what: str,
    stream: bool = False,
    follow_redirects: bool | None = None,
    read_server_errors: bool = False,
) -> httpx.Response:
    """Send ``request``; transport trouble becomes :class:`TemporaryError`, 429 and 5xx too.

    Other statuses come back for the caller to interpret: only it knows its error bodies.
    ``follow_redirects=False`` hands redirects back too, for a caller that checks where each
    one leads. ``read_server_errors=True`` hands 5xx back too, for a caller whose provider may
    say something lasting in a 5xx body; it raises :func:`server_error` for the rest.
    """
    started = time.perf_counter()
    if follow_redirects is None:
        follow_redirects = client.follow_redirects
    try:
        response = await client.send(request, stream=stream, follow_redirects=follow_redirects)
    except httpx.TimeoutException as exc:
        metrics.record_provider_call(what, request, "timeout", time.perf_counter() - started)
        raise TemporaryError(f"{what}: timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        metrics.record_provider_call(
            what, request, "connection_error", time.perf_counter() - started
        )
        raise TemporaryError(f"{what}: connection failed ({type(exc).__name__})") from exc
    # Every call is counted here, where all provider traffic passes, with its status: a rise in
    # 4xx after a provider changes its API shows up without any code at the call sites.
    metrics.record_provider_call(what, request, response.status_code, time.perf_counter() - started)
    if (response.status_code == 429 or response.status_code >= 500) and stream:
        await response.aread()  # the error text is small; reading it releases the connection
    if response.status_code == 429:
        raise RateLimited(
            f"{what}: rate limited ({response.text[:200]})",
            retry_after=retry_after_seconds(response),
        )
    if response.status_code >= 500 and not read_server_errors:
        raise server_error(response, what)
    return response


def server_error(response: httpx.Response, what: str) -> TemporaryError:
    """A 5xx as the passing trouble it usually is."""
    return TemporaryError(
        f"{what}: server error {response.status_code} ({response.text[:200]})",
        retry_after=retry_after_seconds(response),
    )
