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

What the answers mean is read in :mod:`bot.providers.soket_answers`. The fields inside a file's
``result`` are not documented, so
:func:`~bot.providers.soket_answers.transcript_from_result` reads several plausible layouts and
every result is kept raw next to the parsed transcript.
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
from bot.providers.soket_answers import (
    batch_outcomes,
    call_error,
    dict_list,
    error_reason,
    error_text,
    file_progress,
    is_batch_not_found,
    is_terminal,
    json_object,
    match_entries,
    not_found_error,
    raise_error_in_body,
    seconds_or_none,
    text_or_none,
)
from bot.providers.spec import ProviderContext, ProviderSettings, ProviderSpec

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
        body = json_object(response, "upload")
        upload_id = text_or_none(body.get("batch_upload_id"))
        entries = dict_list(body.get("files"))
        outcomes: dict[str, Uploaded | PermanentError] = {}
        for job, entry in zip(jobs, match_entries(names, entries), strict=True):
            file_id = text_or_none(entry.get("file_id")) if entry is not None else None
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
                gone = not_found_error(response, "upload status")
                outcomes.update({job.job_id: gone for job in members})
                continue
            body = json_object(response, "upload status")
            by_file = {
                file_id: entry
                for entry in dict_list(body.get("files"))
                if (file_id := text_or_none(entry.get("file_id"))) is not None
            }
            for job in members:
                outcomes[job.job_id] = _upload_readiness(
                    upload_id, job, by_file.get(job.file_id or "")
                )
        return outcomes

    async def submit(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted | PermanentError]:
        uploaded = [job for job in jobs if job.file_id is not None]
        links = [job for job in jobs if job.file_id is None and job.url is not None]
        outcomes: dict[str, Submitted | PermanentError] = {
            job.job_id: PermanentError(
                f"job {job.job_id} has neither a file nor a link",
                user_message="There was nothing to send to Soket for this file.",
            )
            for job in jobs
            if job.file_id is None and job.url is None
        }
        if not uploaded and not links:
            return outcomes
        link_names = unique_names(
            (job.filename for job in links), taken={job.filename for job in uploaded}
        )
        response = await self._request(
            "POST",
            "/batch",
            what="submit batch",
            accept=(200, 201, 202, 409),
            json=batch_request(uploaded, links, link_names),
        )
        if response.status_code == 409:
            raise NotReadyYet(
                f"soket submit batch: 409 {error_text(response)}",
                retry_after=retry_after_seconds(response) or upload_wait_seconds(uploaded),
            )
        body = json_object(response, "submit batch")
        outcomes.update(batch_outcomes(body, uploaded, links, link_names))
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
            by_file = {entry_id: e for e in entries if (entry_id := text_or_none(e.get("file_id")))}
            by_name = {name: e for e in entries if (name := text_or_none(e.get("filename")))}
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
            body = json_object(response, "batch results")
            raise_error_in_body(response, body, "batch results")
            files = dict_list(body.get("files"))
            for entry in files:
                file_id = text_or_none(entry.get("file_id"))
                if file_id is None:
                    unnamed.append(entry)
                elif file_id not in entries or not is_terminal(entries[file_id]):
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
            body = json_object(response, "batch status")
            raise_error_in_body(response, body, "batch status")
        except (ProviderAuthError, WorkLost):
            raise
        except (TemporaryError, PermanentError) as exc:
            log.info("soket batch %s: no estimate (%s)", batch_id, exc.detail)
            return None
        return seconds_or_none(body.get("estimated_completion_seconds"))

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
        if response.status_code >= 500 and not is_batch_not_found(error_text(response)):
            raise server_error(response, f"soket {what}")
        if response.status_code in (401, 403):
            raise self._auth_error(response, what)
        self._auth_failure_logged = False
        if response.status_code in accept:
            return response
        raise call_error(response, what)

    def _auth_error(self, response: httpx.Response, what: str) -> ProviderAuthError:
        detail = f"soket {what}: {response.status_code} {error_text(response)}"
        if not self._auth_failure_logged:
            self._auth_failure_logged = True
            log.error("Soket rejected SOKET_API_TOKEN (%s); every Soket job will fail", detail)
        return ProviderAuthError(detail, user_message=AUTH_USER_MESSAGE)


# -- what is sent, and when it is ready -----------------------------------------------------------


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


def batch_request(
    uploaded: Sequence[ProviderJob], links: Sequence[ProviderJob], link_names: Sequence[str]
) -> dict[str, Any]:
    """The body of ``POST /batch``: the uploaded files by id, the links under unique names.

    Only ``file_ids``, never ``batch_upload_id``: the upload id would pull in every stored file of
    that upload, including those whose jobs already failed or, after a restart, were submitted
    before.
    """
    request: dict[str, Any] = {}
    if uploaded:
        request["file_ids"] = list(dict.fromkeys(str(job.file_id) for job in uploaded))
    if links:
        request["sources"] = [
            {"url": job.url, "filename": name} for job, name in zip(links, link_names, strict=True)
        ]
    return request


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
        reason = error_reason(entry.get("error") or entry.get("errors") or entry.get("message"))
        return PermanentError(
            f"soket upload {upload_id} file {job.file_id} failed: {reason}",
            user_message=f"Soket could not store this file ({reason}). Share it again to retry.",
        )
    if state not in ("pending", "uploading"):
        log.warning("soket upload %s: unknown upload_status %r; waiting", upload_id, state)
    return False


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
