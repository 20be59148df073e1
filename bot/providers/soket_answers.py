"""What Soket.ai's answers mean: its JSON read with care, its errors as :mod:`bot.errors`, and its
results as progress and transcripts.

:mod:`bot.providers.soket` makes the calls; everything here reads an answer and nothing more, so
it takes what Soket sends (a body, a response) and gives back what the pipeline understands. Much
of what Soket sends is not documented (the statuses of its error bodies, the fields of a file's
``result``), so every reader here accepts what it does not expect and falls back instead of
failing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from bot.errors import NotReadyYet, PermanentError, TemporaryError, WorkLost
from bot.providers.base import (
    Progress,
    ProgressStatus,
    ProviderJob,
    Submitted,
    retry_after_seconds,
)
from bot.transcript import Segment, Transcript

LOST_BATCH_MESSAGE = "Soket lost this transcription."
UNREADABLE_ANSWER_MESSAGE = "Soket gave an answer this app does not understand."
#: The documented error of a batch Soket does not know, whatever the HTTP status beside it.
_BATCH_NOT_FOUND = "batch not found"
_GONE_MESSAGES = {
    "file not found": "Soket no longer has this file. Share it again to retry.",
    "upload not found": "Soket no longer has this upload. Share the file again to retry.",
}
_TERMINAL_FILE_STATES = frozenset({"completed", "failed"})
#: Keys under which a list of timed pieces of text may sit inside an undocumented ``result``.
_SEGMENT_KEYS = ("segments", "utterances", "sentences", "chunks")


# -- small readers of untrusted JSON --------------------------------------------------------------


def json_object(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        # A proxy's HTML page or a cut answer: likely gone on the next try.
        raise TemporaryError(
            f"soket {what}: unreadable answer ({response.status_code}: {response.text[:200]!r})"
        ) from exc
    if not isinstance(body, dict):
        raise PermanentError(
            f"soket {what}: expected an object, got {body!r:.200}",
            user_message=UNREADABLE_ANSWER_MESSAGE,
        )
    return body


def dict_list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def seconds_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


def _milliseconds(seconds: Any, milliseconds: Any) -> int | None:
    if (value := seconds_or_none(seconds)) is not None:
        return round(value * 1000)
    if (value := seconds_or_none(milliseconds)) is not None:
        return round(value)
    return None


def error_reason(errors: Any) -> str:
    """Soket's error list (strings or objects with a message) as one readable line."""
    items = errors if isinstance(errors, list) else [errors]
    reasons: list[str] = []
    for item in items:
        if isinstance(item, dict):
            found = next(
                (
                    text
                    for key in ("message", "error", "detail", "reason")
                    if (text := text_or_none(item.get(key)))
                ),
                None,
            )
            if found:
                reasons.append(found)
        elif (text := text_or_none(item)) is not None:
            reasons.append(text)
    return "; ".join(dict.fromkeys(reason.strip() for reason in reasons)) or "no reason given"


# -- errors ---------------------------------------------------------------------------------------


def error_text(response: httpx.Response) -> str:
    """The message of an error answer: ``{"error": …}`` as documented, else what is there."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if (text := text_or_none(body.get(key))) is not None:
                return text[:200]
    return response.text[:200]


def raise_error_in_body(response: httpx.Response, body: dict[str, Any], what: str) -> None:
    """Raise the error an accepted answer carries instead of its content.

    The reference gives Soket's error bodies without their statuses, so ``{"error": …}`` may
    come with a 200: read as a page, it would look like a batch still running, for hours.
    """
    message = text_or_none(body.get("error"))
    if message is None:
        return
    detail = f"soket {what}: {response.status_code} {message[:200]}"
    if is_batch_not_found(message):
        raise WorkLost(detail, user_message=LOST_BATCH_MESSAGE)
    if "files" in body or "batch_id" in body:
        return
    # Some other trouble in a success status: retried with backoff, until the age limit.
    raise TemporaryError(detail)


def is_batch_not_found(message: str) -> bool:
    return message.strip().lower() == _BATCH_NOT_FOUND


def not_found_error(response: httpx.Response, what: str) -> PermanentError:
    """A 404: Soket no longer has the batch, file or upload (its body says which)."""
    message = error_text(response)
    return PermanentError(
        f"soket {what}: {response.status_code} {message}",
        user_message=_GONE_MESSAGES.get(
            message.strip().lower(), f"Soket could not find what this app asked for ({message})."
        ),
    )


def call_error(response: httpx.Response, what: str) -> PermanentError | TemporaryError:
    """A refused call as our error; 401 and 429/5xx are handled before this."""
    message = error_text(response)
    detail = f"soket {what}: {response.status_code} {message}"
    status = response.status_code
    if is_batch_not_found(message):
        return WorkLost(detail, user_message=LOST_BATCH_MESSAGE)
    if status == 404:
        return not_found_error(response, what)
    if status == 409:
        return NotReadyYet(detail, retry_after=retry_after_seconds(response))
    if status == 413:
        return PermanentError(detail, user_message="This file is too large for Soket.")
    if 400 <= status < 500:
        return PermanentError(detail, user_message=f"Soket refused this file: {message}")
    return TemporaryError(detail)


# -- uploads and batches --------------------------------------------------------------------------


def match_entries(
    names: Sequence[str], entries: Sequence[dict[str, Any]]
) -> list[dict[str, Any] | None]:
    """Pair what was sent (by its unique name) with Soket's answer entries.

    By name when the answer carries the names we sent, else by position when the counts agree
    (Soket may rewrite a name), else only the names that match.
    """
    by_name: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = text_or_none(entry.get("filename"))
        if name is not None:
            by_name.setdefault(name, entry)
    if all(name in by_name for name in names):
        return [by_name[name] for name in names]
    if len(entries) == len(names):
        return list(entries)
    return [by_name.get(name) for name in names]


def batch_outcomes(
    body: dict[str, Any],
    uploaded: Sequence[ProviderJob],
    links: Sequence[ProviderJob],
    link_names: Sequence[str],
) -> dict[str, Submitted | PermanentError]:
    """Per job, what the answer to ``POST /batch`` says: in the batch, or left out of it.

    Uploaded files are known by their ``file_id``; links get theirs in this answer, matched by
    the names they were sent under. An answer without a ``jobs`` list leaves everything in.
    """
    batch_id = text_or_none(body.get("batch_id"))
    if batch_id is None:
        raise PermanentError(
            f"soket submit batch: no batch_id in {body!r:.300}",
            user_message=UNREADABLE_ANSWER_MESSAGE,
        )
    eta = seconds_or_none(body.get("estimated_completion_seconds"))
    listed = body.get("jobs")
    entries = dict_list(listed)
    by_file = {text_or_none(entry.get("file_id")): entry for entry in entries}
    uploaded_ids = {job.file_id for job in uploaded}
    link_entries = [
        entry for entry in entries if text_or_none(entry.get("file_id")) not in uploaded_ids
    ]
    missing = PermanentError(
        f"soket batch {batch_id} left a file out",
        user_message="Soket did not take this file into the transcription batch.",
    )
    outcomes: dict[str, Submitted | PermanentError] = {}
    for job in uploaded:
        if isinstance(listed, list) and job.file_id not in by_file:
            outcomes[job.job_id] = missing
        else:
            outcomes[job.job_id] = Submitted(remote_id=batch_id, eta_seconds=eta)
    matched = match_entries(link_names, link_entries) if link_entries else [None] * len(links)
    for job, entry in zip(links, matched, strict=True):
        file_id = text_or_none(entry.get("file_id")) if entry is not None else None
        if file_id is None and isinstance(listed, list):
            outcomes[job.job_id] = missing
        else:
            # Without a job list the link is still in the batch: poll finds it by filename.
            outcomes[job.job_id] = Submitted(remote_id=batch_id, eta_seconds=eta, file_id=file_id)
    return outcomes


# -- results --------------------------------------------------------------------------------------


def is_terminal(entry: Mapping[str, Any]) -> bool:
    return entry.get("status") in _TERMINAL_FILE_STATES


def file_progress(entry: dict[str, Any] | None) -> Progress:
    """One file's merged result entry as progress; a file not listed yet is still processing."""
    if entry is None:
        return Progress(ProgressStatus.PROCESSING)
    state = entry.get("status")
    if state == "completed":
        return Progress(
            ProgressStatus.COMPLETED,
            transcript=transcript_from_result(entry.get("result")),
            raw=entry,
        )
    if state == "failed":
        reason = error_reason(entry.get("errors"))
        return Progress(
            ProgressStatus.FAILED,
            raw=entry,
            error=PermanentError(
                f"soket file {entry.get('file_id')} failed: {reason}",
                user_message=f"Soket could not transcribe this file: {reason}",
            ),
        )
    if state == "queued":
        return Progress(ProgressStatus.QUEUED, raw=entry)
    # processing, retrying, or a state added later: all mean "ask again".
    return Progress(ProgressStatus.PROCESSING, raw=entry)


def transcript_from_result(result: Any) -> Transcript:
    """Read a ``result`` whose layout Soket does not document.

    Text: ``transcript``, else ``text``, else the joined text of the timed pieces. Speakers and
    timestamps: ``speech_information`` entries when present, else a segment list. Speaker ids such
    as ``SPEAKER_00`` become ``1``, ``2``… in order of appearance, as people would say them.
    """
    if isinstance(result, str):
        return Transcript(text=result.strip())
    if not isinstance(result, dict):
        return Transcript(text="")
    pieces = dict_list(result.get("speech_information"))
    if not pieces:
        pieces = next((found for key in _SEGMENT_KEYS if (found := dict_list(result.get(key)))), [])
    segments = _segments(pieces)
    text = text_or_none(result.get("transcript"))
    if text is None:
        text = text_or_none(result.get("text"))
    if text is None:
        text = " ".join(segment.text for segment in segments if segment.text)
    language = text_or_none(result.get("language"))
    duration = seconds_or_none(result.get("duration_seconds", result.get("duration")))
    return Transcript(
        text=text.strip(),
        segments=segments,
        language=language,
        duration_ms=round(duration * 1000) if duration is not None else None,
    )


def _segments(pieces: Sequence[dict[str, Any]]) -> list[Segment]:
    speakers: dict[str, str] = {}
    segments: list[Segment] = []
    for piece in pieces:
        text = text_or_none(piece.get("text"))
        if not text or not text.strip():
            continue
        raw_speaker = piece.get("speaker_id", piece.get("speaker"))
        speaker = None
        if raw_speaker is not None and raw_speaker != "":
            speaker = speakers.setdefault(str(raw_speaker), str(len(speakers) + 1))
        segments.append(
            Segment(
                text=text.strip(),
                speaker=speaker,
                start_ms=_milliseconds(piece.get("start"), piece.get("start_ms")),
                end_ms=_milliseconds(piece.get("end"), piece.get("end_ms")),
            )
        )
    return segments
