"""A loopback stand-in for the Soniox async speech-to-text API (v1).

It follows the public reference (``/v1/files`` and ``/v1/transcriptions``): the same paths, status
codes, JSON shapes and error bodies, so the app's Soniox client can be tested end to end without
the network. What it answers is decided by the uploaded content or the URL alone (see
:func:`outcome_for`), which lets a test pick an outcome by choosing the bytes it sends.

Uploads are streamed: only the size, a sha256 and the first :data:`HEAD_BYTES` bytes of each file
are kept, because benchmarks push files of several hundred megabytes through this fake.

The content rules and transcript builders at the top of this module are shared with
:mod:`tests.fakes.soket`, so both providers react the same way to the same bytes.

Beyond transcription it models, from Soniox's references:

* ``context``: an object of up to four sections (``general``: ``[{key, value}]``, ``text``: a
  string, ``terms``: strings, ``translation_terms``: ``[{source, target}]``), or the older plain
  string. Soniox takes at most 8,000 tokens of it, "about 10,000 characters"; the fake counts
  the characters of every string in it and answers a longer one, or one of another shape, with
  the documented 400 ``invalid_request``. Accepted bodies are kept in
  :attr:`FakeSoniox.create_bodies`.
* ``translation``: ``{"type": "one_way", "target_language": "de"}`` or ``{"type": "two_way",
  "language_a": "en", "language_b": "es"}``, in the languages of :data:`LANGUAGES`. Every token
  then carries a ``translation_status``: ``original`` for spoken words that are translated,
  ``none`` for those that are not (already in the target language; in two-way, neither of the
  two), and ``translation`` for the translated words, which follow the spoken ones they
  translate, carry the translation's ``language`` and the spoken ``source_language``, and (like
  the fake's every translation) no timestamps. The translation of a turn is what the test
  registered (:meth:`FakeSoniox.set_transcript`), else ``[de] `` and the spoken text.
* ``confidence``: every token has one, 0 to 1; the words a test names as ``unsure`` get a low one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import itertools
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.multipart import BodyPartReader

from tests.fakes.server import LoopbackServer

__all__ = [
    "ACCOUNT_ERROR_TYPES",
    "DECODE_ERROR_MESSAGE",
    "DOWNLOAD_ERROR_MESSAGE",
    "HEAD_BYTES",
    "LANGUAGES",
    "MAX_CONTEXT_CHARACTERS",
    "MODELS",
    "FakeSoniox",
    "Outcome",
    "StreamedFile",
    "TimedWord",
    "default_turns",
    "filename_from_url",
    "outcome_for",
    "soniox_error",
    "stream_part",
    "timed_words",
    "utc_now",
]

logger = logging.getLogger(__name__)

Turns = list[tuple[str, str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# -- content rules shared by the fakes ---------------------------------------------------------

#: How many leading bytes of an upload are kept: enough to recognise the marker prefixes below.
HEAD_BYTES = 64
#: Read size for uploads; large enough that a 1 GB body is not a million tiny reads.
CHUNK_SIZE = 256 * 1024
#: Milliseconds of audio per spoken word in generated transcripts.
WORD_MS = 300

DECODE_ERROR_MESSAGE = "Audio could not be decoded"
DOWNLOAD_ERROR_MESSAGE = "Audio could not be downloaded from the given URL"


class Outcome(enum.Enum):
    """How a transcription ends, chosen from the audio's first bytes or its URL."""

    TRANSCRIPT = "transcript"
    SILENCE = "silence"
    CORRUPT = "corrupt"
    UNREACHABLE = "unreachable"


def outcome_for(head: bytes, url: str | None = None) -> Outcome:
    """Pick the outcome for some audio, so tests can steer a fake by content alone.

    ``CORRUPT…`` content or a URL containing ``corrupt`` fails to decode, a URL containing
    ``unreachable`` fails to download, ``SILENCE…`` content completes with no words, and anything
    else completes with the registered (or default) transcript.
    """
    lowered = (url or "").lower()
    if "unreachable" in lowered:
        return Outcome.UNREACHABLE
    if head.startswith(b"CORRUPT") or "corrupt" in lowered:
        return Outcome.CORRUPT
    if head.startswith(b"SILENCE"):
        return Outcome.SILENCE
    return Outcome.TRANSCRIPT


def default_turns(filename: str) -> Turns:
    """The transcript used when a test registered none: two speakers, so diarization shows."""
    return [("1", f"Hello from {filename}."), ("2", "Thanks, that is clear.")]


def filename_from_url(url: str, fallback: str = "audio") -> str:
    """The last path segment of ``url``, as providers name a file they fetched themselves."""
    segment = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
    return segment or fallback


def utc_now() -> str:
    """An ISO 8601 UTC timestamp ending in ``Z``, like the providers' ``created_at``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StreamedFile:
    """What is kept of an upload: enough to describe it and pick its outcome, never its bytes."""

    filename: str
    size: int
    sha256: str
    head: bytes


async def stream_part(part: BodyPartReader, fallback_name: str = "file") -> StreamedFile:
    """Read one multipart file part chunk by chunk, counting and hashing it without storing it."""
    digest = hashlib.sha256()
    head = bytearray()
    size = 0
    while not part.at_eof():
        chunk = await part.read_chunk(CHUNK_SIZE)
        if not chunk:
            continue
        size += len(chunk)
        digest.update(chunk)
        if len(head) < HEAD_BYTES:
            head += chunk[: HEAD_BYTES - len(head)]
    return StreamedFile(
        filename=part.filename or fallback_name,
        size=size,
        sha256=digest.hexdigest(),
        head=bytes(head),
    )


@dataclass(frozen=True)
class TimedWord:
    """One word of a generated transcript with its place on the audio timeline."""

    speaker: str
    word: str
    start_ms: int
    end_ms: int
    #: Index of the turn the word belongs to.
    turn: int


def timed_words(turns: Turns) -> list[TimedWord]:
    """Lay the words of ``turns`` out at :data:`WORD_MS` each, so timings always increase."""
    words: list[TimedWord] = []
    position = 0
    for turn_index, (speaker, text) in enumerate(turns):
        for word in text.split():
            start = position * WORD_MS
            words.append(TimedWord(speaker, word, start, start + WORD_MS - 40, turn_index))
            position += 1
    return words


_PUNCTUATION = re.compile(r"^(.*?)([.,!?;:]*)$", re.DOTALL)
_PUNCTUATION_AROUND = re.compile(r"^\W+|\W+$")


def _sub_word_tokens(
    words: list[TimedWord],
    *,
    with_speaker: bool,
    language_of: Callable[[TimedWord], str] | None = None,
    unsure: Callable[[TimedWord], bool] | None = None,
    spaced: bool = False,
) -> list[dict[str, Any]]:
    """Cut words into Soniox-like tokens.

    Soniox returns sub-word pieces: a word is one or two tokens, the first carrying the leading
    space, and punctuation is a token of its own. Joining every token's ``text`` gives the
    transcript text, which is what clients are expected to do. With language identification
    (``language_of``), every token carries its word's ``language``. The tokens of an ``unsure``
    word have a low ``confidence``. ``spaced``: the first word follows others, so it too
    carries a leading space.
    """
    tokens: list[dict[str, Any]] = []
    for index, timed in enumerate(words):
        match = _PUNCTUATION.match(timed.word)
        assert match is not None
        core, punctuation = match.group(1), match.group(2)
        if not core:
            core, punctuation = punctuation, ""
        half = (len(core) + 1) // 2
        pieces = [core] if len(core) < 4 else [core[:half], core[half:]]
        if index > 0 or spaced:
            pieces[0] = " " + pieces[0]
        spoken_end = timed.start_ms + (timed.end_ms - timed.start_ms) * 4 // 5
        step = (spoken_end - timed.start_ms) // len(pieces)
        spans = [
            (timed.start_ms + i * step, timed.start_ms + (i + 1) * step) for i in range(len(pieces))
        ]
        if punctuation:
            pieces.append(punctuation)
            spans.append((spoken_end, timed.end_ms))
        for piece_index, (piece, (start, end)) in enumerate(zip(pieces, spans, strict=True)):
            doubtful = unsure is not None and unsure(timed)
            token: dict[str, Any] = {
                "text": piece,
                "start_ms": start,
                "end_ms": end,
                "confidence": (0.97 if piece_index == 0 else 0.93) * (0.3 if doubtful else 1),
            }
            if with_speaker:
                token["speaker"] = timed.speaker
            if language_of is not None:
                token["language"] = language_of(timed)
            tokens.append(token)
    return tokens


# -- the Soniox fake ---------------------------------------------------------------------------

#: Models the fake accepts, as listed in the reference.
MODELS = ("stt-async-v5", "stt-async-v4")
#: ``error_type`` values of failed jobs. The shared reference does not list them, so clients should
#: only show them, never branch on them.
DECODE_ERROR_TYPE = "audio_decode_error"
DOWNLOAD_ERROR_TYPE = "audio_download_error"

_MAX_REFERENCE_LENGTH = 256
_MAX_LIST_LIMIT = 1000
#: Soniox takes at most 8,000 tokens of ``context``: "about 10,000 characters", which the fake
#: counts over every string of it.
MAX_CONTEXT_CHARACTERS = 10_000
_CONTEXT_SECTIONS = ("general", "text", "terms", "translation_terms")
#: The languages Soniox transcribes and translates into and between, as its list of supported
#: languages gives their ISO 639-1 codes.
LANGUAGES = frozenset({
    "af", "sq", "ar", "az", "eu", "be", "bn", "bs", "bg", "ca", "zh", "hr", "cs", "da", "nl",
    "en", "et", "fi", "fr", "gl", "de", "el", "gu", "he", "hi", "hu", "id", "it", "ja", "kn",
    "kk", "ko", "lv", "lt", "mk", "ms", "ml", "mr", "no", "fa", "pl", "pt", "pa", "ro", "ru",
    "sr", "sk", "sl", "es", "sw", "sv", "tl", "ta", "te", "th", "tr", "uk", "ur", "vi", "cy",
})  # fmt: skip
_MASKED_SECRET = "******************"
_ERROR_MESSAGES = {
    "invalid_request": (
        "Your request did not pass validation. One or more fields in the request body are "
        "missing or have invalid values. See `validation_errors` for the specific field and "
        "retry with corrected values."
    ),
    "unauthenticated": (
        "Incorrect API key provided. You can get an API key at https://console.soniox.com"
    ),
    "file_not_found": "File not found.",
    "transcription_not_found": "Transcription not found.",
    "transcription_invalid_state": "Transcription is not in a valid state for this operation.",
    "limit_exceeded": (
        "Pending transcriptions limit has been exceeded for your organization. "
        "Wait for some transcriptions to finish."
    ),
    "file_count_exceeded": (
        "Total file count limit has been exceeded for your organization. Please delete some."
    ),
    "file_size_exceeded": (
        "Total file size limit has been exceeded for your organization. Please delete some."
    ),
    "organization_balance_exhausted": (
        "The balance of your organization is exhausted. Add funds in the Soniox Console."
    ),
    "organization_monthly_budget_exhausted": (
        "The monthly budget of your organization is exhausted. Raise it in the Soniox Console."
    ),
    "project_monthly_budget_exhausted": (
        "The monthly budget of this project is exhausted. Raise it in the Soniox Console."
    ),
    "internal_error": (
        "The server encountered an error. Please try again. If the issue persists contact "
        "support@soniox.com."
    ),
}
#: ``error_type`` values of a 402: the account may not start paid work.
ACCOUNT_ERROR_TYPES = (
    "organization_balance_exhausted",
    "organization_monthly_budget_exhausted",
    "project_monthly_budget_exhausted",
)
#: The account's storage caps, as documented: 1,000 files and 10 GB, read as 10^10 bytes, the
#: stricter of its two readings.
DEFAULT_MAX_FILES = 1000
DEFAULT_MAX_STORAGE_BYTES = 10**10
_FILE_FIELDS = ("id", "filename", "size", "created_at", "client_reference_id")
_PENDING = frozenset({"queued", "processing"})


def soniox_error(
    status: int,
    error_type: str,
    message: str | None = None,
    validation_errors: list[dict[str, str]] | None = None,
) -> web.Response:
    """An error response with exactly the documented ``ApiError`` body."""
    body = {
        "status_code": status,
        "error_type": error_type,
        "message": message or _ERROR_MESSAGES.get(error_type, error_type),
        "validation_errors": validation_errors or [],
        "request_id": str(uuid.uuid4()),
        "more_info": (
            "https://soniox.com/docs/api-reference/errors#" + error_type.replace("_", "-")
        ),
    }
    return web.json_response(body, status=status)


def _invalid(location: str, message: str, error_type: str = "value_error") -> web.Response:
    """A 400 ``invalid_request`` naming one offending field."""
    return soniox_error(
        400,
        "invalid_request",
        validation_errors=[{"error_type": error_type, "location": location, "message": message}],
    )


@dataclass
class _Job:
    """A transcription with the facts kept out of its public JSON."""

    public: dict[str, Any]
    seq: int
    size: int | None
    head: bytes
    webhook_auth_header_value: str | None
    #: Asked for at creation; the documented transcription JSON does not show them.
    language_hints_strict: bool = False
    translation: dict[str, Any] | None = None
    polls: int = 0
    turns: Turns = field(default_factory=list)
    #: The language of each turn (ISO 639-1); turns beyond the list are English.
    languages: list[str] = field(default_factory=list)
    #: The translation of each turn, as registered; a turn beyond the list gets a made-up one.
    translations: list[str] = field(default_factory=list)
    #: Words (lower case, without punctuation) the transcript is unsure of.
    unsure: frozenset[str] = frozenset()
    outcome: Outcome | None = None

    def is_unsure(self, word: TimedWord) -> bool:
        return _PUNCTUATION_AROUND.sub("", word.word).lower() in self.unsure

    def translated_into(self, spoken: str) -> str | None:
        """The language the ``translation`` asked for puts speech in ``spoken`` into; None for
        speech it leaves as it is."""
        asked = self.translation or {}
        if asked.get("type") == "one_way":
            target = str(asked["target_language"])
            return None if spoken == target else target
        if asked.get("type") == "two_way":
            pair = {
                asked["language_a"]: asked["language_b"],
                asked["language_b"]: asked["language_a"],
            }
            found = pair.get(spoken)
            return str(found) if found is not None else None
        return None

    def tokens(self) -> list[dict[str, Any]]:
        """The transcript's tokens; with ``translation``, each turn's translation after it."""
        with_speaker = bool(self.public["enable_speaker_diarization"])
        language_of = self.language_of if self.public["enable_language_identification"] else None
        words = timed_words(self.turns)
        if not self.translation:
            return _sub_word_tokens(
                words, with_speaker=with_speaker, language_of=language_of, unsure=self.is_unsure
            )
        tokens: list[dict[str, Any]] = []
        for index, (speaker, text) in enumerate(self.turns):
            spoken = [word for word in words if word.turn == index]
            if not spoken:
                continue
            turn_tokens = _sub_word_tokens(
                spoken,
                with_speaker=with_speaker,
                language_of=language_of,
                unsure=self.is_unsure,
                spaced=bool(tokens),
            )
            source = self.language_of(spoken[0])
            target = self.translated_into(source)
            for token in turn_tokens:
                token["translation_status"] = "none" if target is None else "original"
            tokens += turn_tokens
            if target is None:
                continue
            translation = (
                self.translations[index] if index < len(self.translations) else f"[{target}] {text}"
            )
            for word in translation.split():
                token = {
                    "text": f" {word}",
                    "confidence": 0.9,
                    "translation_status": "translation",
                    "language": target,
                    "source_language": source,
                }
                if with_speaker:
                    token["speaker"] = speaker
                tokens.append(token)
        return tokens

    def language_of(self, word: TimedWord) -> str:
        """What language identification labels ``word`` with. Strict hints keep the labels to
        the hinted languages: Soniox then strongly prefers them (best effort, the reference
        says; the fake always does)."""
        spoken = self.languages[word.turn] if word.turn < len(self.languages) else "en"
        hints = self.public["language_hints"] or []
        if self.language_hints_strict and hints and spoken not in hints:
            return str(hints[0])
        return spoken


class FakeSoniox(LoopbackServer):
    """The Soniox async API on 127.0.0.1.

    Jobs advance only when observed (each ``GET /v1/transcriptions/{id}``, and each listing page
    that shows them) or when a test calls :meth:`complete`, so tests never sleep and never race a
    timer. Every request is recorded (:attr:`requests`), so tests and benchmarks count calls.
    """

    def __init__(
        self,
        api_key: str = "soniox-fake-key",
        *,
        polls_until_complete: int = 1,
        max_pending: int = 100,
        max_files: int = DEFAULT_MAX_FILES,
        max_storage_bytes: int = DEFAULT_MAX_STORAGE_BYTES,
        list_newest_first: bool = False,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        #: Observations of a job (its GET, or a listing page showing it) after which it reaches
        #: its final state (1: the first one finishes it).
        self.polls_until_complete = polls_until_complete
        #: The order of ``GET /v1/transcriptions``. The reference does not document it, so the
        #: app must not depend on it; tests can try both.
        self.list_newest_first = list_newest_first
        #: Queued plus processing jobs allowed before creating one answers 429.
        self.max_pending = max_pending
        #: The account's storage caps: an upload that would pass either answers 429.
        self.max_files = max_files
        self.max_storage_bytes = max_storage_bytes
        #: Uploads refused for the storage caps, and the most ever stored at once.
        self.storage_refusals = 0
        self.peak_files = 0
        self.peak_storage_bytes = 0
        #: Uploaded files by id: the public fields plus ``sha256`` and ``head``.
        self.files: dict[str, dict[str, Any]] = {}
        #: Public JSON of every live transcription, by id.
        self.transcriptions: dict[str, dict[str, Any]] = {}
        #: Bodies of accepted ``POST /v1/transcriptions`` calls, in order.
        self.create_bodies: list[dict[str, Any]] = []
        self.deleted_files: list[str] = []
        self.deleted_transcriptions: list[str] = []
        #: Every webhook attempt: url, body, headers, and ``status`` or ``error``.
        self.webhook_deliveries: list[dict[str, Any]] = []
        self.peak_pending = 0
        #: While set (an ``ACCOUNT_ERROR_TYPES`` value), creating a transcription answers 402
        #: (and uploading too, with ``account_refuses_uploads``); see :meth:`exhaust_account`.
        self.account_problem: str | None = None
        self.account_refuses_uploads = False
        #: Requests answered 402 so far.
        self.payment_refusals = 0
        self._jobs: dict[str, _Job] = {}
        self._file_seq: dict[str, int] = {}
        self._seq = itertools.count(1)
        self._transcripts: dict[str, Turns] = {}
        self._languages: dict[str, list[str]] = {}
        self._translations: dict[str, list[str]] = {}
        self._unsure: dict[str, frozenset[str]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._deliveries: set[asyncio.Task[None]] = set()

    # -- test-facing API -----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The value for the app's ``SONIOX_API_URL``."""
        return f"{self.base_url}/v1"

    @property
    def pending_count(self) -> int:
        """Jobs that count against the pending limit: queued or processing."""
        return sum(1 for job in self.transcriptions.values() if job["status"] in _PENDING)

    def times_seen(self) -> dict[str, int]:
        """How often a client has seen each live transcription while it was running: its GET,
        or a listing page that showed it."""
        return {transcription_id: job.polls for transcription_id, job in self._jobs.items()}

    def set_transcript(
        self,
        filename: str,
        turns: Turns,
        languages: Sequence[str] = (),
        *,
        translations: Sequence[str] = (),
        unsure: Sequence[str] = (),
    ) -> None:
        """Make jobs for ``filename`` transcribe to ``turns`` of ``(speaker, text)``, spoken in
        ``languages`` (ISO 639-1, one per turn; English where none is given). A transcription
        asked to translate translates each turn to its ``translations`` entry; the words in
        ``unsure`` (any case, without punctuation) get a low confidence."""
        self._transcripts[filename] = list(turns)
        self._languages[filename] = list(languages)
        self._translations[filename] = list(translations)
        self._unsure[filename] = frozenset(
            _PUNCTUATION_AROUND.sub("", word).lower() for word in unsure
        )

    def add_others(self, count: int) -> list[str]:
        """``count`` finished transcriptions made by someone else with the same account (another
        app, the console): listings show them beside the app's own. Returns their ids."""
        ids = []
        for _ in range(count):
            body = {"model": MODELS[0], "audio_url": "https://example.com/other.mp3"}
            job = self._new_job(body, filename="other.mp3", size=None, head=b"")
            job.public.update(status="completed", audio_duration_ms=1000)
            job.outcome = Outcome.SILENCE
            ids.append(job.public["id"])
        return ids

    def exhaust_account(
        self, error_type: str = "organization_balance_exhausted", *, uploads: bool = False
    ) -> None:
        """Refuse paid work with 402 ``error_type`` until :meth:`restore_account`."""
        assert error_type in ACCOUNT_ERROR_TYPES
        self.account_problem = error_type
        self.account_refuses_uploads = uploads

    def restore_account(self) -> None:
        self.account_problem = None
        self.account_refuses_uploads = False

    def _payment_required(self) -> web.Response:
        assert self.account_problem is not None
        self.payment_refusals += 1
        return soniox_error(402, self.account_problem)

    async def complete(self, transcription_id: str) -> dict[str, Any]:
        """Finish one job now (success or error per its content) and return its JSON."""
        job = self._jobs[transcription_id]
        if job.public["status"] in _PENDING:
            self._finish(job)
        await self.notify()
        return job.public

    async def complete_all(self) -> None:
        """Finish every queued or processing job."""
        for job in list(self._jobs.values()):
            if job.public["status"] in _PENDING:
                self._finish(job)
        await self.notify()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        await super().start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def stop(self) -> None:
        if self._deliveries:
            await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        await super().stop()

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._auth)
        app.router.add_post("/v1/files", self._upload_file)
        app.router.add_get("/v1/files", self._list_files)
        app.router.add_get("/v1/files/{id}", self._get_file)
        app.router.add_delete("/v1/files/{id}", self._delete_file)
        app.router.add_post("/v1/transcriptions", self._create_transcription)
        app.router.add_get("/v1/transcriptions", self._list_transcriptions)
        app.router.add_get("/v1/transcriptions/{id}", self._get_transcription)
        app.router.add_get("/v1/transcriptions/{id}/transcript", self._get_transcript)
        app.router.add_delete("/v1/transcriptions/{id}", self._delete_transcription)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return soniox_error(401, "unauthenticated")
        return await handler(request)

    # -- files ---------------------------------------------------------------------------------

    async def _upload_file(self, request: web.Request) -> web.Response:
        if self.account_problem is not None and self.account_refuses_uploads:
            await request.release()  # read to the end, so the client sees the answer
            return self._payment_required()
        if not request.content_type.startswith("multipart/"):
            return _invalid("file", "Expected a multipart/form-data body", "value_error")
        upload: StreamedFile | None = None
        reference: str | None = None
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    continue
                if part.name == "file" and upload is None:
                    upload = await stream_part(part)
                elif part.name == "client_reference_id":
                    reference = await part.text()
                else:
                    await part.release()
        except ValueError:
            return _invalid("file", "Malformed multipart body")
        if upload is None:
            return _invalid("file.file", "Field required", "missing")
        if reference is not None and len(reference) > _MAX_REFERENCE_LENGTH:
            return _invalid(
                "file.client_reference_id",
                f"String should have at most {_MAX_REFERENCE_LENGTH} characters",
                "string_too_long",
            )
        if len(upload.filename) > _MAX_REFERENCE_LENGTH:
            return _invalid(
                "file.filename",
                f"String should have at most {_MAX_REFERENCE_LENGTH} characters",
                "string_too_long",
            )
        stored = sum(int(f["size"]) for f in self.files.values())
        if len(self.files) >= self.max_files or stored + upload.size > self.max_storage_bytes:
            # Kept, as Soniox keeps it, only within the account's caps: the message names which.
            self.storage_refusals += 1
            over = "file_count" if len(self.files) >= self.max_files else "file_size"
            return soniox_error(429, "limit_exceeded", _ERROR_MESSAGES[f"{over}_exceeded"])
        file_id = str(uuid.uuid4())
        self.files[file_id] = {
            "id": file_id,
            "filename": upload.filename,
            "size": upload.size,
            "created_at": utc_now(),
            "client_reference_id": reference,
            "sha256": upload.sha256,
            "head": upload.head,
        }
        self._file_seq[file_id] = next(self._seq)
        self.peak_files = max(self.peak_files, len(self.files))
        self.peak_storage_bytes = max(self.peak_storage_bytes, stored + upload.size)
        await self.notify()
        return web.json_response(self._public_file(file_id), status=201)

    def _public_file(self, file_id: str) -> dict[str, Any]:
        stored = self.files[file_id]
        return {key: stored[key] for key in _FILE_FIELDS}

    async def _get_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["id"]
        if file_id not in self.files:
            return soniox_error(404, "file_not_found")
        return web.json_response(self._public_file(file_id))

    async def _list_files(self, request: web.Request) -> web.Response:
        ordered = sorted(self.files, key=self._file_seq.__getitem__)
        page = _paginate(request, "files", ordered, self._file_seq.__getitem__)
        if isinstance(page, web.Response):
            return page
        items, cursor = page
        return web.json_response(
            {"files": [self._public_file(i) for i in items], "next_page_cursor": cursor}
        )

    async def _delete_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["id"]
        if file_id not in self.files:
            return soniox_error(404, "file_not_found")
        del self.files[file_id]
        del self._file_seq[file_id]
        self.deleted_files.append(file_id)
        await self.notify()
        return web.Response(status=204)

    # -- transcriptions ------------------------------------------------------------------------

    async def _create_transcription(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _invalid("body", "Request body is not valid JSON", "json_invalid")
        if not isinstance(body, dict):
            return _invalid("body", "Input should be a valid object", "model_type")
        problem = _validate_create(body)
        if problem is not None:
            return problem
        file_id = body.get("file_id")
        audio_url = body.get("audio_url")
        size: int | None = None
        head = b""
        if file_id is not None:
            if file_id not in self.files:
                return soniox_error(404, "file_not_found")
            stored = self.files[file_id]
            filename = str(stored["filename"])
            size, head = int(stored["size"]), bytes(stored["head"])
        else:
            filename = filename_from_url(str(audio_url))
        if self.account_problem is not None:
            return self._payment_required()
        if self.pending_count >= self.max_pending:
            return soniox_error(429, "limit_exceeded")

        job = self._new_job(body, filename=filename, size=size, head=head)
        self.create_bodies.append(body)
        self.peak_pending = max(self.peak_pending, self.pending_count)
        await self.notify()
        return web.json_response(job.public, status=201)

    def _new_job(
        self, body: dict[str, Any], *, filename: str, size: int | None, head: bytes
    ) -> _Job:
        """Record a queued transcription as ``body`` (a valid create body) asks."""
        transcription_id = str(uuid.uuid4())
        header_value = body.get("webhook_auth_header_value")
        public: dict[str, Any] = {
            "id": transcription_id,
            "status": "queued",
            "created_at": utc_now(),
            "model": body["model"],
            "audio_url": body.get("audio_url"),
            "file_id": body.get("file_id"),
            "filename": filename,
            "language_hints": body.get("language_hints"),
            "enable_speaker_diarization": bool(body.get("enable_speaker_diarization", False)),
            "enable_language_identification": bool(
                body.get("enable_language_identification", False)
            ),
            "context": body.get("context"),
            "audio_duration_ms": None,
            "error_type": None,
            "error_message": None,
            "webhook_url": body.get("webhook_url"),
            "webhook_auth_header_name": body.get("webhook_auth_header_name"),
            "webhook_auth_header_value": _MASKED_SECRET if header_value else None,
            "webhook_status_code": None,
            "client_reference_id": body.get("client_reference_id"),
        }
        job = self._jobs[transcription_id] = _Job(
            public=public,
            seq=next(self._seq),
            size=size,
            head=head,
            webhook_auth_header_value=header_value,
            language_hints_strict=body.get("language_hints_strict") is True,
            translation=body.get("translation"),
        )
        self.transcriptions[transcription_id] = public
        return job

    async def _get_transcription(self, request: web.Request) -> web.Response:
        job = self._jobs.get(request.match_info["id"])
        if job is None:
            return soniox_error(404, "transcription_not_found")
        self._observe(job)
        await self.notify()
        return web.json_response(job.public)

    async def _get_transcript(self, request: web.Request) -> web.Response:
        job = self._jobs.get(request.match_info["id"])
        if job is None:
            return soniox_error(404, "transcription_not_found")
        if job.public["status"] != "completed":
            return soniox_error(
                409,
                "transcription_invalid_state",
                f"Transcription is not completed (status: {job.public['status']}).",
            )
        tokens = job.tokens()
        return web.json_response(
            {
                "id": job.public["id"],
                "text": "".join(token["text"] for token in tokens),
                "tokens": tokens,
            }
        )

    async def _delete_transcription(self, request: web.Request) -> web.Response:
        transcription_id = request.match_info["id"]
        job = self._jobs.get(transcription_id)
        if job is None:
            return soniox_error(404, "transcription_not_found")
        if job.public["status"] in _PENDING:
            return soniox_error(
                409,
                "transcription_invalid_state",
                "A queued or processing transcription cannot be deleted.",
            )
        del self._jobs[transcription_id]
        del self.transcriptions[transcription_id]
        self.deleted_transcriptions.append(transcription_id)
        await self.notify()
        return web.Response(status=204)

    async def _list_transcriptions(self, request: web.Request) -> web.Response:
        ordered = sorted(
            self._jobs, key=lambda i: self._jobs[i].seq, reverse=self.list_newest_first
        )
        page = _paginate(
            request,
            "transcriptions",
            ordered,
            lambda i: self._jobs[i].seq,
            descending=self.list_newest_first,
        )
        if isinstance(page, web.Response):
            return page
        items, cursor = page
        for transcription_id in items:
            self._observe(self._jobs[transcription_id])
        await self.notify()
        return web.json_response(
            {
                "transcriptions": [self._jobs[i].public for i in items],
                "next_page_cursor": cursor,
            }
        )

    # -- job progress --------------------------------------------------------------------------

    def _observe(self, job: _Job) -> None:
        """A client saw ``job`` (its GET, or a listing page that shows it): it moves on."""
        if job.public["status"] in _PENDING:
            job.polls += 1
            if job.polls >= self.polls_until_complete:
                self._finish(job)
            else:
                job.public["status"] = "processing"

    def _finish(self, job: _Job) -> None:
        """Move ``job`` to ``completed`` or ``error`` and send its webhook, if one was asked for."""
        public = job.public
        job.outcome = outcome_for(job.head, public["audio_url"])
        if job.outcome is Outcome.UNREACHABLE:
            public.update(
                status="error", error_type=DOWNLOAD_ERROR_TYPE, error_message=DOWNLOAD_ERROR_MESSAGE
            )
        elif job.outcome is Outcome.CORRUPT:
            public.update(
                status="error", error_type=DECODE_ERROR_TYPE, error_message=DECODE_ERROR_MESSAGE
            )
        else:
            public["status"] = "completed"
            public["audio_duration_ms"] = job.size // 32 if job.size is not None else 30000
            if job.outcome is Outcome.TRANSCRIPT:
                filename = str(public["filename"])
                job.turns = self._transcripts.get(filename) or default_turns(filename)
                job.languages = self._languages.get(filename, [])
                job.translations = self._translations.get(filename, [])
                job.unsure = self._unsure.get(filename, frozenset())
        if public["webhook_url"]:
            task = asyncio.get_running_loop().create_task(self._deliver_webhook(job))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)

    async def _deliver_webhook(self, job: _Job) -> None:
        """POST ``{"id", "status"}`` once; a failure is logged and otherwise ignored."""
        public = job.public
        body = {"id": public["id"], "status": public["status"]}
        headers: dict[str, str] = {}
        if public["webhook_auth_header_name"] and job.webhook_auth_header_value is not None:
            headers[str(public["webhook_auth_header_name"])] = job.webhook_auth_header_value
        record: dict[str, Any] = {
            "url": public["webhook_url"],
            "body": body,
            "headers": headers,
            "status": None,
            "error": None,
        }
        if self._session is None:
            record["error"] = "the fake is stopped"
        else:
            try:
                async with self._session.post(
                    str(public["webhook_url"]), json=body, headers=headers
                ) as response:
                    await response.read()
                    record["status"] = response.status
                    public["webhook_status_code"] = response.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                record["error"] = repr(exc)
        if record["error"] is not None:
            logger.warning(
                "webhook for %s to %s failed: %s", body["id"], record["url"], record["error"]
            )
        self.webhook_deliveries.append(record)
        await self.notify()


def _validate_create(body: dict[str, Any]) -> web.Response | None:
    """Check a create-transcription body against the documented field rules."""
    errors: list[dict[str, str]] = []

    def fail(location: str, message: str, error_type: str = "value_error") -> None:
        errors.append(
            {"error_type": error_type, "location": f"body.{location}", "message": message}
        )

    model = body.get("model")
    if model is None:
        fail("model", "Field required", "missing")
    elif model not in MODELS:
        expected = " or ".join(f"'{name}'" for name in MODELS)
        fail("model", f"Input should be {expected}", "literal_error")
    has_url = body.get("audio_url") is not None
    has_file = body.get("file_id") is not None
    if has_url == has_file:
        errors.append(
            {
                "error_type": "value_error",
                "location": "body",
                "message": "Exactly one of audio_url or file_id must be specified",
            }
        )
    url = body.get("audio_url")
    if has_url and not (isinstance(url, str) and re.fullmatch(r"https?://\S+", url)):
        fail("audio_url", "Must be an http or https URL", "string_pattern_mismatch")
    if has_file and not isinstance(body.get("file_id"), str):
        fail("file_id", "Input should be a valid string", "string_type")
    hints = body.get("language_hints")
    if hints is not None and not (
        isinstance(hints, list) and all(isinstance(h, str) for h in hints)
    ):
        fail("language_hints", "Input should be a list of strings", "list_type")
    webhook = body.get("webhook_url")
    if webhook is not None and not (
        isinstance(webhook, str) and re.fullmatch(r"https?://\S+", webhook)
    ):
        fail("webhook_url", "Must be an http or https URL", "string_pattern_mismatch")
    for name in (
        "webhook_url",
        "webhook_auth_header_name",
        "webhook_auth_header_value",
        "client_reference_id",
    ):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > _MAX_REFERENCE_LENGTH):
            fail(
                name,
                f"String should have at most {_MAX_REFERENCE_LENGTH} characters",
                "string_too_long",
            )
    _validate_context(body.get("context"), fail)
    _validate_translation(body.get("translation"), fail)
    for name in (
        "enable_speaker_diarization",
        "enable_language_identification",
        "language_hints_strict",
    ):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            fail(name, "Input should be a valid boolean", "bool_type")
    if errors:
        return soniox_error(400, "invalid_request", validation_errors=errors)
    return None


def _validate_context(context: Any, fail: Callable[[str, str, str], None]) -> None:
    """``context``: the plain string, or the object of up to four sections; all of it within
    :data:`MAX_CONTEXT_CHARACTERS`."""
    if context is None:
        return
    if isinstance(context, str):
        size = len(context)
    elif isinstance(context, dict):
        size = 0
        for name in set(context) - set(_CONTEXT_SECTIONS):
            fail(f"context.{name}", "Extra inputs are not permitted", "extra_forbidden")
        text = context.get("text")
        if text is not None and not isinstance(text, str):
            fail("context.text", "Input should be a valid string", "string_type")
        size += len(text) if isinstance(text, str) else 0
        terms = context.get("terms")
        if terms is not None and not (
            isinstance(terms, list) and all(isinstance(term, str) for term in terms)
        ):
            fail("context.terms", "Input should be a list of strings", "list_type")
        elif terms:
            size += sum(len(term) for term in terms)
        for name, fields in (
            ("general", ("key", "value")),
            ("translation_terms", ("source", "target")),
        ):
            items = context.get(name)
            if items is None:
                continue
            if not isinstance(items, list) or not all(
                isinstance(item, dict)
                and set(item) == set(fields)
                and all(isinstance(item[key], str) for key in fields)
                for item in items
            ):
                wanted = " and ".join(fields)
                fail(
                    f"context.{name}",
                    f"Input should be a list of objects with {wanted}",
                    "list_type",
                )
                continue
            size += sum(len(item[key]) for item in items for key in fields)
    else:
        fail("context", "Input should be a valid string or object", "model_type")
        return
    if size > MAX_CONTEXT_CHARACTERS:
        fail(
            "context",
            f"Context is too long: {size} characters, at most 8000 tokens "
            f"(about {MAX_CONTEXT_CHARACTERS} characters) are allowed",
            "too_long",
        )


def _validate_translation(translation: Any, fail: Callable[[str, str, str], None]) -> None:
    """``translation``: one way into a supported language, or two ways between two."""
    if translation is None:
        return
    if not isinstance(translation, dict):
        fail("translation", "Input should be a valid object", "model_type")
        return
    kind = translation.get("type")
    fields = {"one_way": ("target_language",), "two_way": ("language_a", "language_b")}.get(
        str(kind)
    )
    if fields is None:
        fail("translation.type", "Input should be 'one_way' or 'two_way'", "literal_error")
        return
    for name in set(translation) - {"type", *fields}:
        fail(f"translation.{name}", "Extra inputs are not permitted", "extra_forbidden")
    for name in fields:
        language = translation.get(name)
        if language not in LANGUAGES:
            fail(f"translation.{name}", f"Unsupported language: {language!r}", "value_error")
    if kind == "two_way" and translation.get("language_a") == translation.get("language_b"):
        fail("translation", "language_a and language_b must differ", "value_error")


def _paginate(
    request: web.Request,
    kind: str,
    ordered: list[str],
    seq_of: Callable[[str], int],
    *,
    descending: bool = False,
) -> tuple[list[str], str | None] | web.Response:
    """One page of ``ordered`` ids (by creation sequence, ``descending`` for newest first) from
    the ``cursor`` on, and the cursor of the next page.

    Cursors hold the creation sequence of the next item rather than an offset, so deleting items
    while walking the pages neither skips nor repeats any.
    """
    raw_limit = request.query.get("limit", str(_MAX_LIST_LIMIT))
    try:
        limit = int(raw_limit)
    except ValueError:
        limit = 0
    if not 1 <= limit <= _MAX_LIST_LIMIT:
        return _invalid(
            "query.limit", f"Input should be between 1 and {_MAX_LIST_LIMIT}", "range_error"
        )
    start_seq: int | None = None
    cursor = request.query.get("cursor")
    if cursor:
        try:
            prefix, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
            start_seq = int(number)
            if prefix != kind:
                raise ValueError(cursor)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return _invalid("query.cursor", "Invalid cursor")
    remaining = [
        item
        for item in ordered
        if start_seq is None
        or (seq_of(item) <= start_seq if descending else seq_of(item) >= start_seq)
    ]
    items = remaining[:limit]
    next_cursor = None
    if len(remaining) > limit:
        token = f"{kind}:{seq_of(remaining[limit])}".encode()
        next_cursor = base64.urlsafe_b64encode(token).decode()
    return items, next_cursor
