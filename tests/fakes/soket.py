"""A loopback stand-in for the Soket.ai Dhrith ASR batch API.

It follows the public reference: uploads under ``/transcribe/files/upload``, submissions under
``/transcribe/batch``, progress under ``/transcribe/status`` and merged results under
``/transcribe/results``, with the documented status codes and ``{"error": …}`` bodies. Where the
reference is silent (the fields inside ``result``, the 401 body) the fake offers switchable shapes
so the app can be shown to be tolerant rather than tuned to one guess.

Nothing moves on a timer: uploads advance when their upload status is read, transcriptions when the
batch's results are read, so tests are deterministic. Uploads are streamed and only their size,
sha256 and first bytes are kept. Outcomes come from content and URLs through the rules shared with
:mod:`tests.fakes.soniox`.
"""

from __future__ import annotations

import itertools
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from aiohttp.multipart import BodyPartReader

from tests.fakes.server import LoopbackServer
from tests.fakes.soniox import (
    DECODE_ERROR_MESSAGE,
    DOWNLOAD_ERROR_MESSAGE,
    Outcome,
    StreamedFile,
    default_turns,
    filename_from_url,
    outcome_for,
    stream_part,
    timed_words,
)

__all__ = ["FAILED_UPLOAD_MESSAGE", "FakeSoket", "ResultShape"]

Turns = list[tuple[str, str]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ResultShape = Literal["transcript", "text", "segments"]

FAILED_UPLOAD_MESSAGE = "storage upload failed"
#: Bytes per second assumed when estimating durations (16 kHz, 16-bit mono).
BYTES_PER_SECOND = 32000
#: Duration assumed for audio the fake only knows by URL.
URL_AUDIO_SECONDS = 30.0

_RESULT_STATUSES = frozenset({"completed", "failed", "retrying", "processing"})
_TERMINAL = frozenset({"completed", "failed"})
_IN_FLIGHT_UPLOAD = frozenset({"pending", "uploading"})
_MAX_LIMIT = 200
_DEFAULT_LIMIT = 50


def _error(status: int, message: str) -> web.Response:
    """The documented Soket error shape: a single ``error`` string."""
    return web.json_response({"error": message}, status=status)


def _flag(request: web.Request, name: str) -> bool | None:
    """Parse a boolean query flag; ``None`` means the value was not a boolean."""
    raw = request.query.get(name)
    if raw is None:
        return False
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    return None


@dataclass
class _Job:
    """One file's transcription inside one batch."""

    job_id: str
    batch_id: str
    file_id: str
    filename: str
    head: bytes
    url: str | None
    seq: int
    status: str = "queued"
    calls: int = 0
    turns: Turns = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)


class FakeSoket(LoopbackServer):
    """The Soket.ai batch transcription API on 127.0.0.1."""

    def __init__(
        self,
        token: str = "soket-fake-token",
        *,
        upload_polls_until_complete: int = 1,
        polls_until_complete: int = 1,
        estimated_completion_seconds: float = 2.0,
    ) -> None:
        super().__init__()
        self.token = token
        #: Upload-status reads after which an upload's files are stored (or failed).
        self.upload_polls_until_complete = upload_polls_until_complete
        #: Results reads of a batch after which its files are finished.
        self.polls_until_complete = polls_until_complete
        #: Reported as ``estimated_completion_seconds`` on submissions and batch status.
        self.estimated_completion_seconds = estimated_completion_seconds
        #: Insert one ``retrying`` step before files finish, as a retried job shows it.
        self.retrying_once = False
        #: Which undocumented layout ``result`` takes; see the module docstring.
        self.result_shape: ResultShape = "transcript"
        #: The HTTP status of ``{"error": "batch not found"}`` from the results and status of a
        #: batch the fake does not know: the reference gives the body, not the status.
        self.missing_batch_status = 404
        #: How many of the next accepted batches Soket loses at once (they are answered as
        #: unknown batches; their files stay stored and can be submitted again).
        self.batches_to_lose = 0
        #: The ids of the batches lost so far, in order.
        self.lost_batches: list[str] = []
        #: Filenames left out of ``files[]`` in upload-status answers (the counters still count
        #: them): the reference does not say that every file is always listed.
        self.unlisted_in_upload_status: set[str] = set()
        #: Every known file by ``file_id`` (uploads and URL sources) with ``sha256`` and ``head``.
        self.files: dict[str, dict[str, Any]] = {}
        #: Upload requests by ``batch_upload_id``: ``file_ids``, ``spool_seconds``, ``polls``.
        self.uploads: dict[str, dict[str, Any]] = {}
        #: Submitted batches by ``batch_id``: ``job_ids`` and the estimates given.
        self.batches: dict[str, dict[str, Any]] = {}
        #: Bodies of accepted ``POST /transcribe/batch`` calls, in order.
        self.batch_bodies: list[dict[str, Any]] = []
        #: Results requests per ``batch_id``, known or not, to check polling discipline.
        self.results_calls: dict[str, int] = {}
        self.deleted_files: list[str] = []
        self._jobs: dict[str, _Job] = {}
        self._seq = itertools.count(1)
        self._transcripts: dict[str, Turns] = {}

    # -- test-facing API -----------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The value for the app's ``SOKET_API_URL``."""
        return f"{self.base_url}/transcribe"

    def set_transcript(self, filename: str, turns: Turns) -> None:
        """Make files named ``filename`` transcribe to ``turns`` of ``(speaker, text)``."""
        self._transcripts[filename] = list(turns)

    def lose_batch(self, batch_id: str) -> None:
        """Forget a submitted batch and its jobs, as a Soket that lost it would; its files stay."""
        batch = self.batches.pop(batch_id)
        for job_id in batch["job_ids"]:
            self._jobs.pop(job_id, None)
        self.lost_batches.append(batch_id)

    def jobs_for(self, batch_id: str) -> list[dict[str, Any]]:
        """The batch's jobs as raw records, for assertions."""
        return [self._raw_job(job) for job in self._batch_jobs(batch_id)]

    # -- routing -------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._auth)
        app.router.add_post("/transcribe/files/upload", self._upload)
        app.router.add_get("/transcribe/files/upload/{batch_upload_id}", self._upload_status)
        app.router.add_post("/transcribe/batch", self._submit)
        app.router.add_get("/transcribe/status/batch/{batch_id}", self._batch_status)
        app.router.add_get("/transcribe/results/batch/{batch_id}", self._batch_results)
        app.router.add_get("/transcribe/results/file/{file_id}", self._file_result)
        app.router.add_delete("/transcribe/files", self._delete_files)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            # Not the documented error shape on purpose: the reference does not give one.
            return web.json_response({"detail": "Invalid or expired token"}, status=401)
        return await handler(request)

    # -- uploads -------------------------------------------------------------------------------

    async def _upload(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        streamed: list[StreamedFile] = []
        if request.content_type.startswith("multipart/"):
            try:
                reader = await request.multipart()
                while (part := await reader.next()) is not None:
                    if not isinstance(part, BodyPartReader):
                        continue
                    if part.name == "files":
                        streamed.append(await stream_part(part))
                    else:
                        await part.release()
            except ValueError:
                return _error(400, "malformed multipart body")
        if not streamed:
            return _error(400, "no files provided")

        batch_upload_id = str(uuid.uuid4())
        file_ids: list[str] = []
        for upload in streamed:
            file_id = str(uuid.uuid4())
            file_ids.append(file_id)
            self.files[file_id] = {
                "file_id": file_id,
                "filename": upload.filename,
                "size_bytes": upload.size,
                "estimated_duration_seconds": round(upload.size / BYTES_PER_SECOND, 3),
                "upload_status": "pending",
                "batch_upload_id": batch_upload_id,
                "sha256": upload.sha256,
                "head": upload.head,
                "url": None,
                "gcs_key": None,
                "error": None,
            }
        self.uploads[batch_upload_id] = {
            "batch_upload_id": batch_upload_id,
            "file_ids": file_ids,
            "spool_seconds": round(time.perf_counter() - started, 3),
            "polls": 0,
        }
        await self.notify()
        view = self._upload_view(batch_upload_id)
        for name in ("completed", "failed", "uploading", "pending"):
            del view[name]
        return web.json_response(view, status=202)

    async def _upload_status(self, request: web.Request) -> web.Response:
        batch_upload_id = request.match_info["batch_upload_id"]
        upload = self.uploads.get(batch_upload_id)
        if upload is None:
            return _error(404, "upload not found")
        upload["polls"] += 1
        changed = False
        for file_id in upload["file_ids"]:
            stored = self.files[file_id]
            if stored["upload_status"] not in _IN_FLIGHT_UPLOAD:
                continue
            changed = True
            if upload["polls"] < self.upload_polls_until_complete:
                stored["upload_status"] = "uploading"
            elif bytes(stored["head"]).startswith(b"FAILUPLOAD"):
                stored["upload_status"] = "failed"
                stored["error"] = FAILED_UPLOAD_MESSAGE
            else:
                stored["upload_status"] = "completed"
                stored["gcs_key"] = f"uploads/{batch_upload_id}/{file_id}/{stored['filename']}"
        if changed:
            await self.notify()
        view = self._upload_view(batch_upload_id)
        view["files"] = [
            entry
            for entry in view["files"]
            if entry["filename"] not in self.unlisted_in_upload_status
        ]
        return web.json_response(view)

    def _upload_view(self, batch_upload_id: str) -> dict[str, Any]:
        upload = self.uploads[batch_upload_id]
        files = [self._upload_file_view(file_id) for file_id in upload["file_ids"]]
        counts = {name: 0 for name in ("completed", "failed", "uploading", "pending")}
        for entry in files:
            counts[entry["upload_status"]] += 1
        in_flight = counts["pending"] + counts["uploading"]
        return {
            "batch_upload_id": batch_upload_id,
            "status": "accepted" if in_flight else "completed",
            "total_files": len(files),
            "spool_seconds": upload["spool_seconds"],
            "files": files,
            **counts,
        }

    def _upload_file_view(self, file_id: str) -> dict[str, Any]:
        stored = self.files[file_id]
        view = {
            key: stored[key]
            for key in (
                "file_id",
                "filename",
                "size_bytes",
                "estimated_duration_seconds",
                "upload_status",
            )
        }
        if stored["upload_status"] == "completed":
            view["gcs_key"] = stored["gcs_key"]
        if stored["upload_status"] == "failed":
            view["error"] = stored["error"]
        return view

    # -- submission ----------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid JSON body")
        if not isinstance(body, dict):
            return _error(400, "invalid JSON body")

        selected: list[str] = []
        in_progress = False

        def consider(file_id: str) -> None:
            nonlocal in_progress
            status = self.files[file_id]["upload_status"]
            if status in _IN_FLIGHT_UPLOAD:
                in_progress = True
            elif status == "completed" and file_id not in selected:
                selected.append(file_id)

        batch_upload_id = body.get("batch_upload_id")
        if batch_upload_id is not None:
            if not isinstance(batch_upload_id, str):
                return _error(400, "batch_upload_id must be a string")
            if batch_upload_id not in self.uploads:
                return _error(404, "upload not found")
            for file_id in self.uploads[batch_upload_id]["file_ids"]:
                consider(file_id)
        file_ids = body.get("file_ids")
        if file_ids is not None:
            if not isinstance(file_ids, list) or not all(isinstance(f, str) for f in file_ids):
                return _error(400, "file_ids must be a list of strings")
            for file_id in file_ids:
                if file_id not in self.files:
                    return _error(404, "file not found")
                consider(file_id)
        sources = body.get("sources")
        if sources is not None and not _valid_sources(sources):
            return _error(400, "each source must include a url or gcs_key")
        if in_progress:
            return _error(409, "uploads still in progress")
        for source in sources or []:
            selected.append(self._add_source(source))
        if not selected:
            return _error(400, "no files to transcribe")

        batch_id = str(uuid.uuid4())
        jobs = [self._new_job(batch_id, file_id) for file_id in selected]
        audio_seconds = round(
            sum(float(self.files[file_id]["estimated_duration_seconds"]) for file_id in selected), 3
        )
        self.batches[batch_id] = {
            "batch_id": batch_id,
            "job_ids": [job.job_id for job in jobs],
            "estimated_audio_seconds": audio_seconds,
            "estimated_completion_seconds": self.estimated_completion_seconds,
        }
        self.batch_bodies.append(body)
        if self.batches_to_lose > 0:
            self.batches_to_lose -= 1
            self.lose_batch(batch_id)
        await self.notify()
        return web.json_response(
            {
                "batch_id": batch_id,
                "total_jobs": len(jobs),
                "estimated_audio_seconds": audio_seconds,
                "estimated_completion_seconds": self.estimated_completion_seconds,
                "jobs": [
                    {
                        "file_id": job.file_id,
                        "filename": job.filename,
                        "batch_id": batch_id,
                        "status": job.status,
                    }
                    for job in jobs
                ],
            }
        )

    def _add_source(self, source: dict[str, Any]) -> str:
        """Register a URL or storage-key source as a new file and return its ``file_id``."""
        file_id = str(uuid.uuid4())
        url = source.get("url") if isinstance(source.get("url"), str) else None
        gcs_key = source.get("gcs_key") if url is None else None
        known = next((f for f in self.files.values() if gcs_key and f["gcs_key"] == gcs_key), None)
        fallback = filename_from_url(url) if url else str(gcs_key).rsplit("/", 1)[-1]
        filename = source.get("filename") or (known["filename"] if known else fallback)
        self.files[file_id] = {
            "file_id": file_id,
            "filename": str(filename),
            "size_bytes": known["size_bytes"] if known else None,
            "estimated_duration_seconds": (
                known["estimated_duration_seconds"] if known else URL_AUDIO_SECONDS
            ),
            "upload_status": "completed",
            "batch_upload_id": None,
            "sha256": known["sha256"] if known else None,
            "head": known["head"] if known else b"",
            "url": url,
            "gcs_key": gcs_key,
            "error": None,
        }
        return file_id

    def _new_job(self, batch_id: str, file_id: str) -> _Job:
        stored = self.files[file_id]
        job = _Job(
            job_id=str(uuid.uuid4()),
            batch_id=batch_id,
            file_id=file_id,
            filename=str(stored["filename"]),
            head=bytes(stored["head"]),
            url=stored["url"],
            seq=next(self._seq),
        )
        self._jobs[job.job_id] = job
        return job

    # -- progress and results ------------------------------------------------------------------

    def _batch_jobs(self, batch_id: str) -> list[_Job]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return []
        return [self._jobs[job_id] for job_id in batch["job_ids"] if job_id in self._jobs]

    async def _batch_status(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        batch = self.batches.get(batch_id)
        if batch is None:
            return _error(self.missing_batch_status, "batch not found")
        jobs = self._batch_jobs(batch_id)
        completed = sum(1 for job in jobs if job.status == "completed")
        failed = sum(1 for job in jobs if job.status == "failed")
        return web.json_response(
            {
                "batch_id": batch_id,
                "total_files": len(jobs),
                "files_completed": completed,
                "files_failed": failed,
                "estimated_audio_seconds": batch["estimated_audio_seconds"],
                "estimated_completion_seconds": batch["estimated_completion_seconds"],
                "status": "completed" if completed + failed == len(jobs) else "processing",
            }
        )

    def _advance(self, jobs: list[_Job]) -> bool:
        """Move every unfinished job one step; this is what a results read does."""
        steps = max(1, self.polls_until_complete) + (1 if self.retrying_once else 0)
        changed = False
        for job in jobs:
            if job.status in _TERMINAL:
                continue
            changed = True
            job.calls += 1
            if job.calls >= steps:
                self._finish(job)
            elif self.retrying_once and job.calls == 1:
                job.status = "retrying"
            else:
                job.status = "processing"
        return changed

    def _finish(self, job: _Job) -> None:
        outcome = outcome_for(job.head, job.url)
        if outcome is Outcome.UNREACHABLE:
            job.status = "failed"
            job.errors = [{"message": DOWNLOAD_ERROR_MESSAGE}]
        elif outcome is Outcome.CORRUPT:
            job.status = "failed"
            job.errors = [{"message": DECODE_ERROR_MESSAGE}]
        else:
            job.status = "completed"
            if outcome is Outcome.TRANSCRIPT:
                job.turns = self._transcripts.get(job.filename) or default_turns(job.filename)

    async def _batch_results(self, request: web.Request) -> web.Response:
        batch_id = request.match_info["batch_id"]
        self.results_calls[batch_id] = self.results_calls.get(batch_id, 0) + 1
        await self.notify()
        status = request.query.get("status")
        if status is not None and status not in _RESULT_STATUSES:
            return _error(422, "invalid status")
        page = _int_query(request, "page", 1)
        if page is None or page < 1:
            return _error(422, "invalid page")
        limit = _int_query(request, "limit", _DEFAULT_LIMIT)
        if limit is None or not 1 <= limit <= _MAX_LIMIT:
            return _error(422, "invalid limit")
        flags: dict[str, bool] = {}
        for name in ("raw", "chunks", "speech_information"):
            value = _flag(request, name)
            if value is None:
                return _error(422, f"invalid {name}")
            flags[name] = value

        if batch_id not in self.batches and status is None:
            return _error(self.missing_batch_status, "batch not found")
        jobs = self._batch_jobs(batch_id)
        if self._advance(jobs):
            await self.notify()

        if flags["raw"]:
            selected = [job for job in jobs if status is None or job.status == status]
            records = [self._raw_job(job) for job in selected]
            chunk = records[(page - 1) * limit : page * limit]
            return web.json_response(
                {
                    "batch_id": batch_id,
                    "page": page,
                    "limit": limit,
                    "total_pages": math.ceil(len(records) / limit),
                    "total_jobs": len(records),
                    "count": len(chunk),
                    "jobs": chunk,
                }
            )
        merged = self._merged_jobs(jobs)
        selected = [job for job in merged if status is None or job.status == status]
        chunk_jobs = selected[(page - 1) * limit : page * limit]
        files = [self._entry(job, flags["speech_information"]) for job in chunk_jobs]
        return web.json_response(
            {
                "batch_id": batch_id,
                "page": page,
                "limit": limit,
                "total_pages": math.ceil(len(selected) / limit),
                "total_files": len(selected),
                "count": len(files),
                "files": files,
            }
        )

    async def _file_result(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        jobs = [job for job in self._jobs.values() if job.file_id == file_id]
        if file_id not in self.files or not jobs:
            return _error(404, "file not found")
        speech_information = _flag(request, "speech_information") is True
        latest = max(jobs, key=lambda job: job.seq)
        return web.json_response(self._entry(latest, speech_information))

    @staticmethod
    def _merged_jobs(jobs: list[_Job]) -> list[_Job]:
        """One job per file, the latest, as merged results report each file once."""
        latest: dict[str, _Job] = {}
        for job in jobs:
            if job.file_id not in latest or job.seq > latest[job.file_id].seq:
                latest[job.file_id] = job
        return list(latest.values())

    def _entry(self, job: _Job, speech_information: bool) -> dict[str, Any]:
        """A merged per-file result: ``{file_id, filename, status, result, errors, …}``."""
        result: dict[str, Any] = {}
        if job.status == "completed":
            result = self._result(job.turns, speech_information)
        return {
            "file_id": job.file_id,
            "filename": job.filename,
            "status": job.status,
            "result": result,
            "errors": list(job.errors),
            "chunk_results": [],
        }

    def _raw_job(self, job: _Job) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "batch_id": job.batch_id,
            "file_id": job.file_id,
            "filename": job.filename,
            "status": job.status,
            "attempts": job.calls,
            "result": self._result(job.turns, False) if job.status == "completed" else {},
            "errors": list(job.errors),
        }

    def _result(self, turns: Turns, speech_information: bool) -> dict[str, Any]:
        """The ``result`` object in the layout chosen by :attr:`result_shape`."""
        spans = _turn_spans(turns)
        text = " ".join(span["text"] for span in spans)
        if self.result_shape == "text":
            return {"text": text}
        if self.result_shape == "segments":
            return {
                "segments": [
                    {"text": span["text"], "start": span["start"], "end": span["end"]}
                    for span in spans
                ]
            }
        result: dict[str, Any] = {"transcript": text, "language": "en"}
        if speech_information:
            result["speech_information"] = [
                {
                    "speaker_id": span["speaker_id"],
                    "start": span["start"],
                    "end": span["end"],
                    "text": span["text"],
                    "tone": "neutral",
                    "accent": "neutral",
                }
                for span in spans
            ]
        return result

    # -- deletion ------------------------------------------------------------------------------

    async def _delete_files(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "invalid JSON body")
        file_ids = body.get("file_ids") if isinstance(body, dict) else None
        if (
            not isinstance(file_ids, list)
            or not file_ids
            or not all(isinstance(f, str) for f in file_ids)
        ):
            return _error(400, "file_ids must be a non-empty list of strings")
        if any(file_id not in self.files for file_id in file_ids):
            return _error(404, "file not found")
        doomed = set(file_ids)
        for file_id in doomed:
            del self.files[file_id]
        for job_id in [j.job_id for j in self._jobs.values() if j.file_id in doomed]:
            del self._jobs[job_id]
        for upload in self.uploads.values():
            upload["file_ids"] = [f for f in upload["file_ids"] if f not in doomed]
        for batch in self.batches.values():
            batch["job_ids"] = [j for j in batch["job_ids"] if j in self._jobs]
        self.deleted_files.extend(dict.fromkeys(file_ids))
        await self.notify()
        return web.json_response({"deleted": len(doomed)})


def _valid_sources(sources: object) -> bool:
    """Whether ``sources`` is a list of objects that each name a ``url`` or a ``gcs_key``."""
    return isinstance(sources, list) and all(
        isinstance(s, dict) and (isinstance(s.get("url"), str) or isinstance(s.get("gcs_key"), str))
        for s in sources
    )


def _int_query(request: web.Request, name: str, default: int) -> int | None:
    """An integer query parameter, or ``None`` when it is not an integer."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        return None


def _turn_spans(turns: Turns) -> list[dict[str, Any]]:
    """Per-turn text and seconds, with speakers renamed ``SPEAKER_00``… in order of appearance."""
    speakers: dict[str, str] = {}
    spans: list[dict[str, Any]] = []
    words = timed_words(turns)
    for index, (speaker, _text) in enumerate(turns):
        in_turn = [w for w in words if w.turn == index]
        if not in_turn:
            continue
        speaker_id = speakers.setdefault(speaker, f"SPEAKER_{len(speakers):02d}")
        spans.append(
            {
                "speaker_id": speaker_id,
                "start": round(in_turn[0].start_ms / 1000, 3),
                "end": round(in_turn[-1].end_ms / 1000, 3),
                "text": " ".join(w.word for w in in_turn),
            }
        )
    return spans
