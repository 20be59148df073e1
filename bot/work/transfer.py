"""From Slack to the provider: resolve a Slack Connect stub, stream the file to the spool, upload
it. Transfers can take minutes: the cycle starts them in the background and does not wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from slack_sdk.errors import SlackApiError

from bot.errors import PermanentError, RateLimited, TemporaryError
from bot.intake import slack_duration_ms
from bot.limits import FileLimits
from bot.media import is_media_file
from bot.messages import work as texts
from bot.providers.base import Provider, Uploaded
from bot.slack_api import retry_after, slack_error_code
from bot.work.accounts import UPLOAD_STEP, Accounts
from bot.work.context import (
    Downloader,
    WorkContext,
    failure_of,
    is_due,
    mirror_failure,
    needs_transfer,
)
from bot.work.room import StorageRoom
from bot.work.verdicts import Verdicts
from storage.models import FileInfo, Job, JobKind, JobState, Upload, Workspace

log = logging.getLogger(__name__)


class Transfers:
    def __init__(
        self,
        ctx: WorkContext,
        verdicts: Verdicts,
        accounts: Accounts,
        room: StorageRoom,
        downloader: Downloader,
    ) -> None:
        self._ctx = ctx
        self._verdicts = verdicts
        self._accounts = accounts
        self._room = room
        self._downloader = downloader
        self._slots = asyncio.Semaphore(ctx.config.max_concurrent_transfers)

    async def transfer(self, jobs: list[Job]) -> None:
        """Download the unit's Slack files and upload them to the provider."""
        # Read again now that this task holds the unit: the cycle's snapshot may predate a
        # transfer that ended since. One that succeeded must not fetch and upload a second
        # time; one that failed was given its retry time, which going on now would skip.
        fresh = [
            job
            for job in await self._ctx.store.get_jobs([job.id for job in jobs])
            if not job.state.is_terminal
        ]
        if any(needs_transfer(job) for job in fresh) and is_due(fresh, self._ctx.clock()):
            async with self._slots:
                await self._verdicts.run_step(fresh, self._download_and_upload)

    async def _download_and_upload(self, provider: Provider, jobs: list[Job]) -> None:
        workspace: Workspace | None = None
        for job in jobs:
            # Only Slack files: a link beside them in a provider batch is fetched by the provider.
            if job.kind is JobKind.SLACK_FILE and job.state in (
                JobState.QUEUED,
                JobState.DOWNLOADING,
            ):
                # A unit's jobs are of one batch, so of one workspace: read once.
                workspace = workspace or await self._workspace_of(job)
                await self._download(job, workspace)
        uploading = [job for job in jobs if job.state is JobState.UPLOADING]
        if uploading:
            await self._upload(provider, uploading)

    # -- from Slack to the spool -------------------------------------------------------------

    async def _workspace_of(self, job: Job) -> Workspace:
        batch = await self._ctx.store.get_batch(job.batch_id)
        if batch is None:
            raise TemporaryError(f"job {job.id}: its batch {job.batch_id} is not found")
        return batch.workspace

    async def _download(self, job: Job, workspace: Workspace) -> None:
        """Resolve, then stream the Slack file to the spool with the bot token of its
        ``workspace``; ``job`` is updated in place."""
        try:
            if job.needs_file_info and not await self._resolve_stub(job, workspace):
                return
            limits = FileLimits.of(
                self._ctx.config.max_file_bytes, self._ctx.providers.get(job.provider)
            )
            refusal = limits.refusal(size_bytes=job.size_bytes, duration_ms=job.duration_ms)
            if refusal is not None:
                # What Slack says of the file is enough: the provider would refuse it anyway.
                raise PermanentError(
                    f"file over its limits ({job.size_bytes} bytes, {job.duration_ms} ms)",
                    user_message=refusal,
                )
            if not job.download_url:
                raise PermanentError(
                    f"slack file {job.slack_file_id} has no download URL",
                    user_message=texts.NO_DOWNLOAD_URL,
                )
            # Asked first: a workspace that cannot be reached leaves the job as it was.
            token = await self._ctx.workspaces.file_token(workspace)
            now = self._ctx.clock()
            if not await self._ctx.store.start_download(job.id, now):
                return  # moved on meanwhile (failed, say): nothing to fetch
            job.state, job.updated_at = JobState.DOWNLOADING, now
            spool = self._ctx.config.spool_dir / job.id
            size = await self._downloader.download(
                job.download_url,
                spool,
                token=token,
                max_bytes=limits.max_bytes,
                too_large_message=limits.too_large(None),
            )
            log.info("job %s: downloaded %s (%d bytes)", job.id, job.filename, size)
            await self._record_download(job, spool, size)
        except PermanentError as exc:
            await self._verdicts.fail([job], exc)

    async def _record_download(self, job: Job, spool: Path, size: int) -> None:
        now = self._ctx.clock()
        if not await self._ctx.store.record_download(
            job.id, spool_path=str(spool), size_bytes=size, now=now
        ):
            spool.unlink(missing_ok=True)  # the job moved on meanwhile: the file is not needed
            return
        job.state, job.spool_path, job.size_bytes = JobState.UPLOADING, str(spool), size
        job.stalled_since, job.updated_at = None, now

    async def _resolve_stub(self, job: Job, workspace: Workspace) -> bool:
        """Ask Slack what a Slack Connect stub's file is; False when there is nothing to fetch
        (not audio or video: skipped), or the job moved on meanwhile."""
        assert job.slack_file_id is not None
        try:
            file = await (await self._ctx.slack_for(workspace)).file_info(job.slack_file_id)
        except SlackApiError as exc:
            code = slack_error_code(exc)
            reason = texts.FILE_INFO_ERRORS.get(code)
            if reason is not None:
                raise PermanentError(f"files.info: {code}", user_message=reason) from exc
            wait = retry_after(exc)
            if wait is not None:
                raise RateLimited(f"files.info: {code}", retry_after=wait) from exc
            raise TemporaryError(f"files.info failed: {code}") from exc
        now = self._ctx.clock()
        if not is_media_file(file):
            if await self._ctx.store.skip_job(job.id, now):
                job.state, job.finished_at, job.updated_at = JobState.SKIPPED, now, now
            return False
        size = file.get("size") if isinstance(file.get("size"), int) else None
        # Its size and duration are checked against the limits before the download.
        info = FileInfo(
            filename=str(file.get("name") or job.filename),
            download_url=file.get("url_private_download") or file.get("url_private"),
            mimetype=file.get("mimetype"),
            size_bytes=size,
            duration_ms=slack_duration_ms(file),
        )
        if not await self._ctx.store.record_file_info(job.id, info, now):
            return False
        job.needs_file_info, job.filename, job.download_url = (
            False,
            info.filename,
            info.download_url,
        )
        job.mimetype, job.size_bytes, job.duration_ms = info.mimetype, size, info.duration_ms
        job.updated_at = now
        return True

    # -- from the spool to the provider ------------------------------------------------------

    async def _upload(self, provider: Provider, jobs: list[Job]) -> None:
        present = []
        for job in jobs:
            if job.spool_path and Path(job.spool_path).is_file():
                present.append(job)
            else:
                # The spool is gone (a new machine, a cleaned disk): fetch from Slack again.
                log.warning("job %s: spool file missing; downloading again", job.id)
                now = self._ctx.clock()
                if await self._ctx.store.download_again(job.id, now):
                    job.state, job.spool_path, job.updated_at = JobState.QUEUED, None, now
        if not present:
            return
        self._accounts.raise_if_refuses(provider, UPLOAD_STEP)
        resent = [job for job in present if job.sent_at is not None]
        # Room first: a file that waits for room costs no call at the provider. Without room,
        # the files stay here (with their spool) until there is, and nothing is written: still
        # due, they keep their place at the head of the queue (StorageRoom.plan), where a later,
        # smaller file cannot take the room freed for them.
        if not await self._room.take(provider, present):
            return
        outcomes: dict[str, Uploaded | PermanentError] = {}
        if resent:
            # An upload was sent before and its answer lost (a crash): use what it created.
            outcomes.update(await provider.find_uploaded(await self._ctx.provider_jobs(resent)))
        to_send = [job for job in present if job.id not in outcomes]
        if to_send:
            sent = await self._ctx.send(to_send, provider.upload)
            outcomes.update(sent)
            if any(isinstance(outcome, Uploaded) for outcome in sent.values()):
                await self._accounts.works(provider, UPLOAD_STEP)
        await self._record_uploads(present, outcomes)

    async def _record_uploads(
        self, jobs: Sequence[Job], outcomes: Mapping[str, Uploaded | PermanentError]
    ) -> None:
        """Record each answered upload (a refusal is an answer too, not a lost one), then drop
        the spool files the provider no longer needs."""
        uploads = [
            Upload(job.id, outcome.file_id, outcome.upload_id)
            for job in jobs
            if isinstance(outcome := outcomes.get(job.id), Uploaded)
        ]
        refused = {
            job.id: failure_of(outcome)
            for job in jobs
            if isinstance(outcome := outcomes.get(job.id), PermanentError)
        }
        if not uploads and not refused:
            return
        now = self._ctx.clock()
        moved = await self._ctx.store.record_uploads(uploads, refused, now)
        by_id = {job.id: job for job in jobs}
        for upload in uploads:
            job = by_id[upload.job_id]
            if job.id in moved:
                job.state, job.attempts, job.sent_at = JobState.UPLOADED, 0, None
                job.provider_file_id, job.provider_upload_id = upload.file_id, upload.upload_id
                job.next_attempt_at, job.stalled_since, job.updated_at = None, None, now
        for job in jobs:
            if job.id in refused and job.id in moved:
                mirror_failure(job, refused[job.id], now)
                job.sent_at = None
            if job.id in moved:
                await self._ctx.drop_spool(job)
