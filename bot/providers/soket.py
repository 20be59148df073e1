"""Soket.ai Dhrith ASR batch API: every file of one Slack message travels as one batch.

Soket is built around batches, so this provider is ``batch_native``: the pipeline hands it all jobs
of a message at once and each step is one request for the whole group, not one per file.

1. **Upload**: all spool files in one multipart ``POST /files/upload`` (repeated ``files`` field,
   streamed from open file objects). Soket answers 202 with a ``batch_upload_id`` and a ``file_id``
   per file, then moves the files to its storage in the background.
2. **Ready?**: ``GET /files/upload/{batch_upload_id}`` until every file says ``completed``. A
   ``failed`` file fails its job alone; a file the answer does not list is left for the
   submission to decide.
3. **Submit**: one ``POST /batch`` naming the live jobs' ``file_ids`` plus ``sources`` for links.
   Soket answers 409 while an upload is still moving; that is a wait, not a failure. Links get
   their ``file_id`` here, and every job gets the ``batch_id`` as its remote id.
4. **Poll**: one walk over every page of ``GET /results/batch/{batch_id}``. ``completed`` and
   ``failed`` files are final; while others run, ``GET /status/batch/{batch_id}`` gives Soket's
   estimate, which decides when the next poll is worth making. Either call may answer
   ``{"error": "batch not found"}`` with a status the reference does not give (a 200 or a 5xx
   among them), even beside other fields: the batch is lost, and its jobs come back as
   :class:`~bot.errors.WorkLost` for the pipeline to submit again.
5. **Clean up**: one ``DELETE /files`` for the group's files, which also drops their jobs at Soket.

The fields inside a file's ``result`` are not documented, so :func:`transcript_from_result` reads
several plausible layouts and every result is kept raw next to the parsed transcript.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import ExitStack, suppress
from pathlib import PurePosixPath
from typing import IO, Any

import httpx
from pydantic import AnyHttpUrl, SecretStr

from bot.errors import NotReadyYet, PermanentError, ProviderAuthError, TemporaryError, WorkLost
from bot.providers.base import (
    Progress,
    ProgressStatus,
    Provider,
    ProviderJob,
    Submitted,
    Uploaded,
    retry_after_seconds,
    send,
    server_error,
)
from bot.providers.spec import ProviderContext, ProviderSettings, ProviderSpec
from bot.transcript import Segment, Transcript

log = logging.getLogger(__name__)

#: Results per page: the documented maximum, so a batch of a Slack message is one page.
RESULTS_PAGE_LIMIT = 200
#: A runaway ``total_pages`` must not turn one poll into an endless walk.
MAX_RESULT_PAGES = 500
#: The wait suggested after a 409, plus one second per this many uploaded bytes, up to the cap:
#: Soket moves uploads to its storage in the background, and bigger uploads take longer.
UPLOAD_WAIT_SECONDS = 2.0
UPLOAD_BYTES_PER_SECOND = 50 * 1024 * 1024
MAX_UPLOAD_WAIT_SECONDS = 30.0

AUTH_USER_MESSAGE = (
    "Soket rejected the API token of this app; an admin needs to fix SOKET_API_TOKEN."
)
LOST_BATCH_MESSAGE = "Soket lost this transcription."
#: The documented error of a batch Soket does not know, whatever the HTTP status beside it.
_BATCH_NOT_FOUND = "batch not found"
_GONE_MESSAGES = {
    "file not found": "Soket no longer has this file. Share it again to retry.",
    "upload not found": "Soket no longer has this upload. Share the file again to retry.",
}
_TERMINAL_FILE_STATES = frozenset({"completed", "failed"})
#: Keys under which a list of timed pieces of text may sit inside an undocumented ``result``.
_SEGMENT_KEYS = ("segments", "utterances", "sentences", "chunks")

UploadFiles = list[tuple[str, tuple[str, IO[bytes], str]]]


class SoketProvider(Provider):
    name = "soket"
    display_name = "Soket.ai"
    batch_native = True
    # Soket documents no limit on size or duration: MAX_FILE_MB alone applies.

    def __init__(self, client: httpx.AsyncClient, *, api_url: str, api_token: str) -> None:
        self._client = client
        self._base = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_token}"}
        #: A wrong token fails every call; the operator needs one loud line, not one per job.
        self._auth_failure_logged = False

    # -- Provider ----------------------------------------------------------------------------

    async def check_credentials(self) -> None:
        # Asking about a batch that cannot exist is cheap and touches nothing: "batch not
        # found" proves the token was accepted, 401 that it was not.
        with suppress(WorkLost):
            await self._request(
                "GET",
                f"/status/batch/{uuid.uuid4()}",
                what="check token",
                accept=(200, 404),
                about_batch=True,
            )

    async def upload(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded | PermanentError]:
        if not jobs:
            return {}
        # Soket matches files by name in its answer; two "memo.wav" of one message must differ.
        names = unique_names(job.filename for job in jobs)
        with ExitStack() as stack:
            files: UploadFiles = []
            for job, name in zip(jobs, names, strict=True):
                assert job.spool_path is not None, "upload needs a spool file"
                # httpx streams file objects in 64 KiB pieces with a Content-Length computed
                # from the file size: no file is ever read whole into memory.
                audio = stack.enter_context(job.spool_path.open("rb"))
                files.append(("files", (name, audio, job.mimetype or "application/octet-stream")))
            response = await self._request(
                "POST",
                "/files/upload",
                what=f"upload {len(jobs)} file(s)",
                accept=(200, 201, 202),
                files=files,
            )
        body = _json_object(response, "upload")
        upload_id = _text(body.get("batch_upload_id"))
        entries = _dict_list(body.get("files"))
        outcomes: dict[str, Uploaded | PermanentError] = {}
        for job, entry in zip(jobs, match_entries(names, entries), strict=True):
            file_id = _text(entry.get("file_id")) if entry is not None else None
            if file_id is None:
                outcomes[job.job_id] = PermanentError(
                    f"soket upload {upload_id}: no file_id for {job.filename!r} in {body!r:.300}",
                    user_message="Soket did not confirm receiving this file. Share it again.",
                )
            else:
                outcomes[job.job_id] = Uploaded(file_id=file_id, upload_id=upload_id)
        return outcomes

    async def uploads_ready(
        self, jobs: Sequence[ProviderJob]
    ) -> Mapping[str, bool | PermanentError]:
        outcomes: dict[str, bool | PermanentError] = {}
        by_upload: dict[str, list[ProviderJob]] = {}
        for job in jobs:
            if job.upload_id is None:
                # Nothing to ask about; submitting answers 409 if the file is not stored yet.
                outcomes[job.job_id] = True
            else:
                by_upload.setdefault(job.upload_id, []).append(job)
        for upload_id, members in by_upload.items():
            response = await self._request(
                "GET", f"/files/upload/{upload_id}", what="upload status", accept=(200, 404)
            )
            if response.status_code == 404:
                gone = _not_found(response, "upload status")
                outcomes.update({job.job_id: gone for job in members})
                continue
            body = _json_object(response, "upload status")
            by_file = {
                file_id: entry
                for entry in _dict_list(body.get("files"))
                if (file_id := _text(entry.get("file_id"))) is not None
            }
            for job in members:
                outcomes[job.job_id] = _upload_readiness(
                    upload_id, job, by_file.get(job.file_id or "")
                )
        return outcomes

    async def submit(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted | PermanentError]:
        outcomes: dict[str, Submitted | PermanentError] = {}
        uploaded = [job for job in jobs if job.file_id is not None]
        links = [job for job in jobs if job.file_id is None and job.url is not None]
        for job in jobs:
            if job.file_id is None and job.url is None:
                outcomes[job.job_id] = PermanentError(
                    f"job {job.job_id} has neither a file nor a link",
                    user_message="There was nothing to send to Soket for this file.",
                )
        if not uploaded and not links:
            return outcomes

        # Only ``file_ids``, never ``batch_upload_id``: the upload id would pull in every stored
        # file of that upload, including those whose jobs already failed or, after a restart,
        # were submitted before.
        request: dict[str, Any] = {}
        if uploaded:
            request["file_ids"] = list(dict.fromkeys(str(job.file_id) for job in uploaded))
        link_names = unique_names(
            (job.filename for job in links), taken={job.filename for job in uploaded}
        )
        if links:
            request["sources"] = [
                {"url": job.url, "filename": name}
                for job, name in zip(links, link_names, strict=True)
            ]
        response = await self._request(
            "POST", "/batch", what="submit batch", accept=(200, 201, 202, 409), json=request
        )
        if response.status_code == 409:
            raise NotReadyYet(
                f"soket submit batch: 409 {_error_text(response)}",
                retry_after=retry_after_seconds(response) or upload_wait_seconds(uploaded),
            )
        body = _json_object(response, "submit batch")
        batch_id = _text(body.get("batch_id"))
        if batch_id is None:
            raise PermanentError(
                f"soket submit batch: no batch_id in {body!r:.300}",
                user_message="Soket gave an answer this app does not understand.",
            )
        eta = _seconds(body.get("estimated_completion_seconds"))
        listed = body.get("jobs")
        entries = _dict_list(listed)
        by_file = {_text(entry.get("file_id")): entry for entry in entries}
        uploaded_ids = {job.file_id for job in uploaded}
        link_entries = [
            entry for entry in entries if _text(entry.get("file_id")) not in uploaded_ids
        ]
        missing = PermanentError(
            f"soket batch {batch_id} left a file out",
            user_message="Soket did not take this file into the transcription batch.",
        )
        for job in uploaded:
            if isinstance(listed, list) and job.file_id not in by_file:
                outcomes[job.job_id] = missing
            else:
                outcomes[job.job_id] = Submitted(remote_id=batch_id, eta_seconds=eta)
        matched = match_entries(link_names, link_entries) if link_entries else [None] * len(links)
        for job, entry in zip(links, matched, strict=True):
            file_id = _text(entry.get("file_id")) if entry is not None else None
            if file_id is None and isinstance(listed, list):
                outcomes[job.job_id] = missing
            else:
                # Without a job list the link is still in the batch: poll finds it by filename.
                outcomes[job.job_id] = Submitted(
                    remote_id=batch_id, eta_seconds=eta, file_id=file_id
                )
        return outcomes

    async def poll(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Progress]:
        outcomes: dict[str, Progress] = {}
        by_batch: dict[str, list[ProviderJob]] = {}
        for job in jobs:
            assert job.remote_id is not None, "poll needs a batch id"
            by_batch.setdefault(job.remote_id, []).append(job)
        for batch_id, members in by_batch.items():
            try:
                entries = await self._results(batch_id)
            except PermanentError as exc:
                if isinstance(exc, ProviderAuthError):
                    raise
                # The batch itself is gone or refused: its jobs fail, other batches go on.
                log.warning("soket batch %s: %s", batch_id, exc.detail)
                outcomes.update(
                    {job.job_id: Progress(ProgressStatus.FAILED, error=exc) for job in members}
                )
                continue
            by_file = {entry_id: e for e in entries if (entry_id := _text(e.get("file_id")))}
            by_name = {name: e for e in entries if (name := _text(e.get("filename")))}
            waiting: list[ProviderJob] = []
            listed = False
            for job in members:
                entry = by_file.get(job.file_id) if job.file_id else by_name.get(job.filename)
                listed = listed or entry is not None
                progress = file_progress(entry)
                outcomes[job.job_id] = progress
                if not progress.status.is_terminal:
                    waiting.append(job)
            if not waiting:
                continue
            try:
                eta = await self._eta(batch_id)
            except WorkLost as exc:
                if listed:
                    # Results that list our files outweigh a status call that lost track.
                    log.warning("soket batch %s: results listed, status lost: %s", batch_id, exc)
                    eta = None
                else:
                    log.warning("soket batch %s: %s", batch_id, exc.detail)
                    outcomes.update(
                        {job.job_id: Progress(ProgressStatus.FAILED, error=exc) for job in waiting}
                    )
                    continue
            for job in waiting:
                outcomes[job.job_id].eta_seconds = eta
        return outcomes

    async def clean_up(self, jobs: Sequence[ProviderJob]) -> None:
        file_ids = list(dict.fromkeys(job.file_id for job in jobs if job.file_id is not None))
        if not file_ids:
            return
        response = await self._request(
            "DELETE",
            "/files",
            what="delete files",
            accept=(200, 202, 204, 404),
            json={"file_ids": file_ids},
        )
        if response.status_code != 404 or len(file_ids) == 1:
            return
        # Soket refuses the whole request when one id is unknown (deleted before, say): delete
        # the rest one by one so a single missing file does not leave the others behind.
        for file_id in file_ids:
            await self._request(
                "DELETE",
                "/files",
                what="delete file",
                accept=(200, 202, 204, 404),
                json={"file_ids": [file_id]},
            )

    # -- calls and pages ----------------------------------------------------------------------

    async def _results(self, batch_id: str) -> list[dict[str, Any]]:
        """Every file entry of the batch, walking all pages; each file once, finished ones win."""
        entries: dict[str, dict[str, Any]] = {}
        unnamed: list[dict[str, Any]] = []
        page, total_pages = 1, 1
        while page <= min(total_pages, MAX_RESULT_PAGES):
            response = await self._request(
                "GET",
                f"/results/batch/{batch_id}",
                what="batch results",
                about_batch=True,
                params={
                    "speech_information": "true",
                    "limit": RESULTS_PAGE_LIMIT,
                    "page": page,
                },
            )
            body = _json_object(response, "batch results")
            _raise_error_in_body(response, body, "batch results")
            files = _dict_list(body.get("files"))
            for entry in files:
                file_id = _text(entry.get("file_id"))
                if file_id is None:
                    unnamed.append(entry)
                elif file_id not in entries or not _is_terminal(entries[file_id]):
                    # A file finishing between two page reads may show up twice.
                    entries[file_id] = entry
            pages = body.get("total_pages")
            total_pages = pages if isinstance(pages, int) and not isinstance(pages, bool) else 1
            if not files:
                break
            page += 1
        return [*entries.values(), *unnamed]

    async def _eta(self, batch_id: str) -> float | None:
        """Soket's estimate for the batch, or None: without it the pipeline polls at its pace."""
        try:
            response = await self._request(
                "GET", f"/status/batch/{batch_id}", what="batch status", about_batch=True
            )
            body = _json_object(response, "batch status")
            _raise_error_in_body(response, body, "batch status")
        except (ProviderAuthError, WorkLost):
            raise
        except (TemporaryError, PermanentError) as exc:
            log.info("soket batch %s: no estimate (%s)", batch_id, exc.detail)
            return None
        return _seconds(body.get("estimated_completion_seconds"))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        accept: tuple[int, ...] = (200,),
        about_batch: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one call; statuses in ``accept`` come back, others become :mod:`bot.errors`.

        A call ``about_batch`` reads the body of a 5xx too: "batch not found" says the batch is
        lost whatever the status, and a lost batch is never found by asking again.
        """
        request = self._client.build_request(
            method, f"{self._base}{path}", headers=self._headers, **kwargs
        )
        response = await send(
            self._client, request, what=f"soket {what}", read_server_errors=about_batch
        )
        if response.status_code >= 500 and not _is_batch_not_found(_error_text(response)):
            raise server_error(response, f"soket {what}")
        if response.status_code in (401, 403):
            raise self._auth_error(response, what)
        self._auth_failure_logged = False
        if response.status_code in accept:
            return response
        raise _error(response, what)

    def _auth_error(self, response: httpx.Response, what: str) -> ProviderAuthError:
        detail = f"soket {what}: {response.status_code} {_error_text(response)}"
        if not self._auth_failure_logged:
            self._auth_failure_logged = True
            log.error("Soket rejected SOKET_API_TOKEN (%s); every Soket job will fail", detail)
        return ProviderAuthError(detail, user_message=AUTH_USER_MESSAGE)


# -- mapping answers ------------------------------------------------------------------------------


def unique_names(names: Iterable[str], *, taken: Iterable[str] = ()) -> list[str]:
    """``names`` made unique in order: the second ``memo.wav`` becomes ``memo (2).wav``.

    Soket answers with filenames, so two files of one request must not share one.
    """
    seen = set(taken)
    unique: list[str] = []
    for name in names:
        name = name or "audio"
        suffix = PurePosixPath(name).suffix
        stem = name[: len(name) - len(suffix)] if suffix else name
        candidate, number = name, 2
        while candidate in seen:
            candidate = f"{stem} ({number}){suffix}"
            number += 1
        seen.add(candidate)
        unique.append(candidate)
    return unique


def match_entries(
    names: Sequence[str], entries: Sequence[dict[str, Any]]
) -> list[dict[str, Any] | None]:
    """Pair what was sent (by its unique name) with Soket's answer entries.

    By name when the answer carries the names we sent, else by position when the counts agree
    (Soket may rewrite a name), else only the names that match.
    """
    by_name: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = _text(entry.get("filename"))
        if name is not None:
            by_name.setdefault(name, entry)
    if all(name in by_name for name in names):
        return [by_name[name] for name in names]
    if len(entries) == len(names):
        return list(entries)
    return [by_name.get(name) for name in names]


def upload_wait_seconds(jobs: Sequence[ProviderJob]) -> float:
    """How long to wait after a 409: a couple of seconds, more for big uploads."""
    total = sum(job.size_bytes or 0 for job in jobs)
    return min(MAX_UPLOAD_WAIT_SECONDS, UPLOAD_WAIT_SECONDS + total / UPLOAD_BYTES_PER_SECOND)


def _upload_readiness(
    upload_id: str, job: ProviderJob, entry: dict[str, Any] | None
) -> bool | PermanentError:
    if entry is None:
        # The shape of this answer is not documented, so a file it leaves out is not known to
        # be lost: submitting decides, as ``POST /batch`` answers 409 while the upload is still
        # moving and 404 once Soket no longer has the file.
        log.info(
            "soket upload %s does not list file %s; submitting decides", upload_id, job.file_id
        )
        return True
    state = entry.get("upload_status")
    if state == "completed":
        return True
    if state == "failed":
        reason = _reason(entry.get("error") or entry.get("errors") or entry.get("message"))
        return PermanentError(
            f"soket upload {upload_id} file {job.file_id} failed: {reason}",
            user_message=f"Soket could not store this file ({reason}). Share it again to retry.",
        )
    if state not in ("pending", "uploading"):
        log.warning("soket upload %s: unknown upload_status %r; waiting", upload_id, state)
    return False


def _is_terminal(entry: Mapping[str, Any]) -> bool:
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
        reason = _reason(entry.get("errors"))
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
    pieces = _dict_list(result.get("speech_information"))
    if not pieces:
        pieces = next(
            (found for key in _SEGMENT_KEYS if (found := _dict_list(result.get(key)))), []
        )
    segments = _segments(pieces)
    text = _text(result.get("transcript"))
    if text is None:
        text = _text(result.get("text"))
    if text is None:
        text = " ".join(segment.text for segment in segments if segment.text)
    language = _text(result.get("language"))
    duration = _seconds(result.get("duration_seconds", result.get("duration")))
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
        text = _text(piece.get("text"))
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


# -- small readers of untrusted JSON --------------------------------------------------------------


def _json_object(response: httpx.Response, what: str) -> dict[str, Any]:
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
            user_message="Soket gave an answer this app does not understand.",
        )
    return body


def _dict_list(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


def _milliseconds(seconds: Any, milliseconds: Any) -> int | None:
    if (value := _seconds(seconds)) is not None:
        return round(value * 1000)
    if (value := _seconds(milliseconds)) is not None:
        return round(value)
    return None


def _reason(errors: Any) -> str:
    """Soket's error list (strings or objects with a message) as one readable line."""
    items = errors if isinstance(errors, list) else [errors]
    reasons: list[str] = []
    for item in items:
        if isinstance(item, dict):
            found = next(
                (
                    text
                    for key in ("message", "error", "detail", "reason")
                    if (text := _text(item.get(key)))
                ),
                None,
            )
            if found:
                reasons.append(found)
        elif (text := _text(item)) is not None:
            reasons.append(text)
    return "; ".join(dict.fromkeys(reason.strip() for reason in reasons)) or "no reason given"


def _error_text(response: httpx.Response) -> str:
    """The message of an error answer: ``{"error": …}`` as documented, else what is there."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        for key in ("error", "detail", "message"):
            if (text := _text(body.get(key))) is not None:
                return text[:200]
    return response.text[:200]


def _raise_error_in_body(response: httpx.Response, body: dict[str, Any], what: str) -> None:
    """Raise the error an accepted answer carries instead of its content.

    The reference gives Soket's error bodies without their statuses, so ``{"error": …}`` may
    come with a 200: read as a page, it would look like a batch still running, for hours.
    """
    message = _text(body.get("error"))
    if message is None:
        return
    detail = f"soket {what}: {response.status_code} {message[:200]}"
    if _is_batch_not_found(message):
        raise WorkLost(detail, user_message=LOST_BATCH_MESSAGE)
    if "files" in body or "batch_id" in body:
        return
    # Some other trouble in a success status: retried with backoff, until the age limit.
    raise TemporaryError(detail)


def _is_batch_not_found(message: str) -> bool:
    return message.strip().lower() == _BATCH_NOT_FOUND


def _not_found(response: httpx.Response, what: str) -> PermanentError:
    """A 404: Soket no longer has the batch, file or upload (its body says which)."""
    message = _error_text(response)
    return PermanentError(
        f"soket {what}: {response.status_code} {message}",
        user_message=_GONE_MESSAGES.get(
            message.strip().lower(), f"Soket could not find what this app asked for ({message})."
        ),
    )


def _error(response: httpx.Response, what: str) -> PermanentError | TemporaryError:
    """A refused call as our error; 401 and 429/5xx are handled before this."""
    message = _error_text(response)
    detail = f"soket {what}: {response.status_code} {message}"
    status = response.status_code
    if _is_batch_not_found(message):
        return WorkLost(detail, user_message=LOST_BATCH_MESSAGE)
    if status == 404:
        return _not_found(response, what)
    if status == 409:
        return NotReadyYet(detail, retry_after=retry_after_seconds(response))
    if status == 413:
        return PermanentError(detail, user_message="This file is too large for Soket.")
    if 400 <= status < 500:
        return PermanentError(detail, user_message=f"Soket refused this file: {message}")
    return TemporaryError(detail)


# -- registration ---------------------------------------------------------------------------------


class SoketSettings(ProviderSettings):
    """``SOKET_*``: the token and where the API is."""

    api_token: SecretStr | None = None
    api_url: AnyHttpUrl = AnyHttpUrl("https://api.soket.ai/transcribe")

    def build(self, context: ProviderContext) -> SoketProvider:
        if self.api_token is None:
            raise ValueError("SOKET_API_TOKEN is not set")
        return SoketProvider(
            context.http, api_url=str(self.api_url), api_token=self.api_token.get_secret_value()
        )


SPEC = ProviderSpec(provider=SoketProvider, settings=SoketSettings, required=("api_token",))
