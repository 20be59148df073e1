"""Soniox async API v1: one file, one transcription.

Upload (``POST /files``) → create (``POST /transcriptions`` with the file id and our job id as
``client_reference_id``) → poll (the listing ``GET /transcriptions`` for many at once, else
``GET /transcriptions/{id}``) → fetch the transcript once ``completed`` → after delivery, delete
the transcription and the file: Soniox keeps both until told.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import httpx
from pydantic import AnyHttpUrl, Field, SecretStr

from bot.errors import (
    AccountProblem,
    NotReadyYet,
    PermanentError,
    ProviderAuthError,
    TemporaryError,
    TranscribeError,
)
from bot.providers.base import (
    Progress,
    ProgressStatus,
    Provider,
    ProviderJob,
    Submitted,
    Uploaded,
    each_alone,
    send,
)
from bot.providers.soniox_tokens import transcript_from_tokens
from bot.providers.spec import (
    ProviderContext,
    ProviderSettings,
    ProviderSpec,
    WebhookRoute,
    WebhookTarget,
)

log = logging.getLogger(__name__)

_FRIENDLY_ERRORS = {
    "unauthenticated": "The Soniox API key of this app was rejected; an admin needs to fix it.",
    "invalid_request": "Soniox could not accept this file: {message}",
    "file_not_found": "Soniox lost the uploaded file; try again.",
}

#: What a 402 (Payment Required) says is used up, by ``error_type``; the account takes no new
#: transcriptions until an admin adds funds or raises the budget in the Soniox console.
_ACCOUNT_PROBLEMS = {
    "organization_balance_exhausted": "the organization's balance is used up",
    "organization_monthly_budget_exhausted": "the organization's monthly budget is used up",
    "project_monthly_budget_exhausted": "the project's monthly budget is used up",
}
#: A 402 with an ``error_type`` not known here.
PAYMENT_REQUIRED = "payment_required"

# fmt: off
#: The languages Soniox transcribes, and translates into and between (any pair): the ISO 639-1
#: codes of its documented list of supported languages.
SUPPORTED_LANGUAGES = frozenset({
    "af", "sq", "ar", "az", "eu", "be", "bn", "bs", "bg", "ca", "zh", "hr", "cs", "da", "nl",
    "en", "et", "fi", "fr", "gl", "de", "el", "gu", "he", "hi", "hu", "id", "it", "ja", "kn",
    "kk", "ko", "lv", "lt", "mk", "ms", "ml", "mr", "no", "fa", "pl", "pt", "pa", "ro", "ru",
    "sr", "sk", "sl", "es", "sw", "sv", "tl", "ta", "te", "th", "tr", "uk", "ur", "vi", "cy",
})
# fmt: on

#: Soniox takes at most 8,000 tokens of ``context``, "about 10,000 characters": the vocabulary
#: and the context sentence together are held to that many characters.
MAX_CONTEXT_CHARS = 10_000


class SonioxProvider(Provider):
    name = "soniox"
    display_name = "Soniox"
    batch_native = False
    # Soniox's per-file limits; the duration cannot be raised on request.
    max_file_bytes = 524_288_000
    max_duration_seconds = 300 * 60.0
    account_problem_reasons = (*_ACCOUNT_PROBLEMS, PAYMENT_REQUIRED)
    polls_many = True
    keeps_to_language_hints = True
    supports_context = True
    max_context_chars = MAX_CONTEXT_CHARS
    supports_translation = True
    translation_languages = SUPPORTED_LANGUAGES
    reports_confidence = True

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_url: str,
        api_key: str,
        model: str,
        max_pending: int | None = 50,
        max_files: int | None = None,
        max_storage_bytes: int | None = None,
        webhook: WebhookTarget | None = None,
    ) -> None:
        self.max_in_flight = max_pending
        self.max_stored_files = max_files
        self.max_stored_bytes = max_storage_bytes
        self._webhook = webhook
        self.notifies_completion = webhook is not None
        self._client = client
        self._base = api_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._model = model

    # -- Provider ----------------------------------------------------------------------------

    async def check_credentials(self) -> None:
        await self._call("GET", "/transcriptions", what="list transcriptions", params={"limit": 1})

    async def upload(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded | PermanentError]:
        outcomes: dict[str, Uploaded | PermanentError] = {}
        for job in jobs:
            assert job.spool_path is not None, "upload needs a spool file"
            with job.spool_path.open("rb") as audio:
                # httpx streams a file object in 64 KiB pieces with a Content-Length: the file is
                # never read whole.
                body = await self._call(
                    "POST",
                    "/files",
                    what=f"upload {job.filename}",
                    files={
                        "file": (job.filename, audio, job.mimetype or "application/octet-stream")
                    },
                    data={"client_reference_id": job.job_id},
                )
            outcomes[job.job_id] = Uploaded(file_id=str(body["id"]))
        return outcomes

    async def find_uploaded(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded]:
        # Every upload carries our job id as client_reference_id.
        found = await self._by_reference("/files", "files", {job.job_id for job in jobs})
        return {job_id: Uploaded(file_id=item_id) for job_id, item_id in found.items()}

    async def find_submitted(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted]:
        found = await self._by_reference(
            "/transcriptions", "transcriptions", {job.job_id for job in jobs}
        )
        return {job_id: Submitted(remote_id=item_id) for job_id, item_id in found.items()}

    async def _by_reference(self, path: str, key: str, references: set[str]) -> dict[str, str]:
        """Walk a Soniox listing for items whose client_reference_id is one of ``references``.

        Bounded by the account's own limits (1,000 files, 2,000 transcriptions), so at most a few
        pages; it only runs after a crash mid-call.
        """
        found: dict[str, str] = {}
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            body = await self._call("GET", path, what=f"list {key}", params=params)
            for item in body.get(key) or []:
                reference = item.get("client_reference_id")
                if reference in references and reference not in found:
                    found[reference] = str(item["id"])
            cursor = body.get("next_page_cursor")
            if not cursor or len(found) == len(references):
                break
        return found

    async def submit(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted | PermanentError]:
        outcomes: dict[str, Submitted | PermanentError] = {}
        for job in jobs:
            request: dict[str, Any] = {
                "model": self._model,
                "enable_speaker_diarization": True,
                # Each token then carries its language: the reply names the languages spoken.
                "enable_language_identification": True,
                "client_reference_id": job.job_id,
            }
            if job.file_id is not None:
                request["file_id"] = job.file_id
            elif job.url is not None:
                request["audio_url"] = job.url
            else:
                raise PermanentError(f"job {job.job_id} has neither a file nor a link")
            if job.language_hints:
                request["language_hints"] = job.language_hints
                if job.language_hints_strict:
                    request["language_hints_strict"] = True
            context = _context(job)
            if context:
                request["context"] = context
            if job.translation:
                request["translation"] = _translation(job.translation)
            if self._webhook is not None:
                request["webhook_url"] = self._webhook.url
                request["webhook_auth_header_name"] = self._webhook.header_name
                request["webhook_auth_header_value"] = self._webhook.header_value
            try:
                body = await self._call(
                    "POST", "/transcriptions", what="create transcription", json=request
                )
            except ProviderAuthError:
                raise
            except PermanentError as exc:
                outcomes[job.job_id] = exc
                continue
            outcomes[job.job_id] = Submitted(remote_id=str(body["id"]))
        return outcomes

    async def poll(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Progress]:
        return {job.job_id: await self._poll_one(job) for job in jobs}

    async def poll_many(
        self, jobs: Sequence[ProviderJob]
    ) -> Mapping[str, Progress | TranscribeError]:
        """One listing answers for every running transcription: a page holds up to 1,000, so
        a cycle's polls cost one call instead of one each. A transcription the listing did not
        show is asked about alone, and transcripts are fetched only for finished ones."""
        listed: dict[str, dict[str, Any]] = {}
        if len(jobs) > 1:
            # For one job, its own GET costs one call for sure; a listing may take pages.
            listed = await self._listed({job.remote_id for job in jobs if job.remote_id})

        async def poll_one(job: ProviderJob) -> Progress:
            return await self._poll_one(job, listed.get(job.remote_id or ""))

        return await each_alone(jobs, poll_one)

    async def _poll_one(self, job: ProviderJob, status: dict[str, Any] | None = None) -> Progress:
        assert job.remote_id is not None, "poll needs a transcription id"
        if status is None:
            status = await self._call(
                "GET", f"/transcriptions/{job.remote_id}", what="get transcription"
            )
        return await self._progress(job, status)

    async def _listed(self, remote_ids: set[str]) -> dict[str, dict[str, Any]]:
        """The listing's entries for ``remote_ids``, by id, read page by page until all are
        seen or the listing ends.

        Soniox does not document the listing's order, and the account may hold many other
        transcriptions. Paging also stops once it has cost as many calls as ids are still
        missing: asking those alone costs no more than that.
        """
        found: dict[str, dict[str, Any]] = {}
        cursor: str | None = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
            if cursor:
                params["cursor"] = cursor
            body = await self._call(
                "GET", "/transcriptions", what="list transcriptions", params=params
            )
            pages += 1
            for item in body.get("transcriptions") or []:
                if isinstance(item, dict) and item.get("id") in remote_ids:
                    found[str(item["id"])] = item
            cursor = body.get("next_page_cursor")
            missing = len(remote_ids) - len(found)
            if not cursor or missing == 0 or pages >= missing:
                return found

    async def clean_up(self, jobs: Sequence[ProviderJob]) -> None:
        for job in jobs:
            # The transcription first: Soniox refuses to delete a file a transcription still uses.
            if job.remote_id is not None:
                await self._delete(f"/transcriptions/{job.remote_id}", what="delete transcription")
            if job.file_id is not None:
                await self._delete(f"/files/{job.file_id}", what="delete file")

    # -- helpers -----------------------------------------------------------------------------

    async def _progress(self, job: ProviderJob, status: dict[str, Any]) -> Progress:
        state = status.get("status")
        if state in ("queued", "processing"):
            return Progress(ProgressStatus(state), raw=status, eta_seconds=_eta(status))
        if state == "completed":
            try:
                transcript = await self._call(
                    "GET", f"/transcriptions/{job.remote_id}/transcript", what="get transcript"
                )
            except NotReadyYet:
                return Progress(ProgressStatus.PROCESSING, raw=status)
            return Progress(
                ProgressStatus.COMPLETED,
                transcript=transcript_from_tokens(
                    transcript,
                    status.get("audio_duration_ms"),
                    word_confidence=job.word_confidence,
                ),
                raw=status,
            )
        if state in ("error", "failed"):
            message = status.get("error_message") or "no reason given"
            return Progress(
                ProgressStatus.FAILED,
                raw=status,
                error=PermanentError(
                    f"soniox {status.get('error_type')}: {message}",
                    user_message=f"Soniox could not transcribe this file: {message}",
                ),
            )
        # An unknown status is most likely a new intermediate one: keep polling.
        log.warning("soniox transcription %s has unknown status %r", job.remote_id, state)
        return Progress(ProgressStatus.PROCESSING, raw=status)

    async def _delete(self, path: str, *, what: str) -> None:
        try:
            await self._call("DELETE", path, what=what)
        except PermanentError as exc:
            log.info("%s: nothing to delete (%s)", what, exc.detail)

    async def _call(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        request = self._client.build_request(
            method, f"{self._base}{path}", headers=self._headers, **kwargs
        )
        response = await send(self._client, request, what=f"soniox {what}")
        if response.status_code in (200, 201):
            return response.json()
        if response.status_code == 204:
            return None
        raise _error(response, what)


#: The largest page Soniox's listings give (``limit`` is 1 to 1,000).
LIST_PAGE_SIZE = 1000
#: An account holds at most 1,000 files and 2,000 transcriptions unless raised: a few pages.
MAX_LIST_PAGES = 5

#: Soniox documents no processing speed; async transcription runs far faster than real time, so
#: a twentieth of the audio's length is a cautious guess for when a poll is worth making.
ASSUMED_SPEED_FACTOR = 20


def _eta(status: dict[str, Any]) -> float | None:
    duration_ms = status.get("audio_duration_ms")
    if not isinstance(duration_ms, (int, float)) or duration_ms <= 0:
        return None
    return duration_ms / 1000 / ASSUMED_SPEED_FACTOR


def _error(response: httpx.Response, what: str) -> Exception:
    """Map a Soniox error body (``{status_code, error_type, message, …}``) to our errors."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    error_type = body.get("error_type", "") if isinstance(body, dict) else ""
    message = body.get("message", response.text[:200]) if isinstance(body, dict) else ""
    detail = f"soniox {what}: {response.status_code} {error_type}: {message}"
    if response.status_code == 401 or error_type == "unauthenticated":
        return ProviderAuthError(detail, user_message=_FRIENDLY_ERRORS["unauthenticated"])
    if response.status_code == 402 or error_type in _ACCOUNT_PROBLEMS:
        reason = error_type if error_type in _ACCOUNT_PROBLEMS else PAYMENT_REQUIRED
        what_is_used_up = _ACCOUNT_PROBLEMS.get(reason, "payment is required")
        return AccountProblem(
            detail,
            provider=SonioxProvider.name,
            reason=reason,
            user_message=(
                f"The Soniox account of this app cannot take new work: {what_is_used_up}. "
                "An admin needs to add funds or raise the limit in the Soniox console."
            ),
        )
    if error_type == "transcription_invalid_state":
        return NotReadyYet(detail)
    if response.status_code == 404:
        return PermanentError(
            detail,
            user_message=_FRIENDLY_ERRORS.get(error_type, "Soniox no longer has this file."),
        )
    if 400 <= response.status_code < 500:
        validation = body.get("validation_errors") if isinstance(body, dict) else None
        if validation:
            message = "; ".join(str(item.get("message", "")) for item in validation) or message
        return PermanentError(
            detail, user_message=_FRIENDLY_ERRORS["invalid_request"].format(message=message)
        )
    return TemporaryError(detail)


def _context(job: ProviderJob) -> dict[str, Any]:
    """The ``context`` object of a create body: ``terms`` and ``text``, when there are any."""
    context: dict[str, Any] = {}
    if job.terms:
        context["terms"] = list(job.terms)
    if job.context:
        context["text"] = job.context
    return context


def _translation(languages: tuple[str, ...]) -> dict[str, str]:
    """``translation`` of a create body: one language is one-way, two are two-way."""
    if len(languages) == 1:
        return {"type": "one_way", "target_language": languages[0]}
    language_a, language_b = languages
    return {"type": "two_way", "language_a": language_a, "language_b": language_b}


# -- registration ---------------------------------------------------------------------------------


class SonioxSettings(ProviderSettings):
    """``SONIOX_*``: the key, where the API is, the model, and the caps on work kept there."""

    api_key: SecretStr | None = None
    api_url: AnyHttpUrl = AnyHttpUrl("https://api.soniox.com/v1")
    model: str = "stt-async-v5"
    #: Transcriptions submitted and not finished at once; Soniox refuses more than 100.
    max_pending: Annotated[int, Field(ge=1, le=100)] = 50
    #: Files, and megabytes, the bot keeps at Soniox at once: Soniox keeps at most 1,000 files
    #: and 10 GB per account (more on request), and refuses uploads beyond. 9536 MiB stays under
    #: 10 GB even if Soniox counts 10^10 bytes.
    max_files: Annotated[int, Field(ge=1)] = 1000
    max_storage_mb: Annotated[int, Field(ge=1)] = 9536

    def build(self, context: ProviderContext) -> SonioxProvider:
        if self.api_key is None:
            raise ValueError("SONIOX_API_KEY is not set")
        return SonioxProvider(
            context.http,
            api_url=str(self.api_url),
            api_key=self.api_key.get_secret_value(),
            model=self.model,
            max_pending=self.max_pending,
            max_files=self.max_files,
            max_storage_bytes=self.max_storage_mb * 1024 * 1024,
            webhook=context.webhook,
        )


def _finished_transcription(notice: Any) -> str:
    # Soniox posts {"id": ..., "status": ...} and nothing else.
    return str(notice["id"])


SPEC = ProviderSpec(
    provider=SonioxProvider,
    settings=SonioxSettings,
    required=("api_key",),
    webhook=WebhookRoute(
        path="/webhooks/soniox",
        finished_id=_finished_transcription,
        expected_body="expected {id, status}",
        # Soniox refuses a longer webhook_url, and with it every transcription.
        max_url_length=256,
    ),
)
