"""From a Slack message (or a request about one) to a recorded batch.

Intake does no network I/O: it only writes the batch to SQLite, so it can run before Slack gets its
ack. Once the ack is sent Slack will not redeliver, so the database must already hold the work.

What becomes a job: audio and video files Slack hosts (downloaded with the bot token, after the ack)
and links that look like audio (handed to the provider, which fetches them itself: the bot never
fetches a link a person pasted, and never sends a token with one).
"""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.limits import FileLimits
from bot.media import is_media_file, link_filename, looks_like_audio_link, parse_url
from bot.providers.base import Provider
from storage.models import (
    Batch,
    ChannelSettings,
    Job,
    JobKind,
    JobState,
    NewBatch,
    NewJob,
    Workspace,
)
from storage.store import Store

log = logging.getLogger(__name__)

#: Message subtypes of a person's own message, the ones that can carry shared files and links.
FILE_SUBTYPES = frozenset({None, "file_share", "slack_audio", "slack_video", "thread_broadcast"})


#: How Slack writes a link in message text: ``<https://…>`` or ``<https://…|label>``.
_SLACK_LINK = re.compile(r"<(https?://[^<>|\s]+)(?:\|[^<>]*)?>", re.IGNORECASE)


def _unwrapped(token: str) -> str:
    token = token.strip()
    if token.startswith("<") and token.endswith(">"):
        token = token[1:-1].split("|", 1)[0]
    return token


def link_from_token(token: str) -> str | None:
    """One link of a message's text, bare (``https://…``) or marked up (``<https://…|x>``), or
    None when it is not an http(s) link with a host."""
    # Slack escapes &, < and > in text; the provider must get the link as it was written.
    url = html.unescape(_unwrapped(token))
    return url if parse_url(url) is not None else None


def link_as_typed(token: str) -> str | None:
    """Like :func:`link_from_token`, for text already decoded: nothing in it is decoded again."""
    url = _unwrapped(token)
    return url if parse_url(url) is not None else None


def links_in_text(text: str) -> list[str]:
    """The links Slack marked up in a message's text, in order, each once."""
    found: dict[str, None] = {}
    for match in _SLACK_LINK.finditer(text or ""):
        url = link_from_token(match.group(1))
        if url is not None:
            found.setdefault(url, None)
    return list(found)


def audio_links_in_text(text: str) -> list[str]:
    """The links of a message that look like audio or video files (by their path's extension)."""
    return [url for url in links_in_text(text) if looks_like_audio_link(url)]


def job_for_link(url: str, *, dedupe_key: str | None) -> NewJob:
    return NewJob(kind=JobKind.URL, filename=link_filename(url), url=url, dedupe_key=dedupe_key)


def slack_duration_ms(file: Mapping[str, Any]) -> int | None:
    """The ``duration_ms`` Slack gives clips and many media files, when it is a length."""
    value = file.get("duration_ms")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return int(value)


def job_for_file(file: dict[str, Any], *, dedupe_key: str | None) -> NewJob | None:
    """A job for one entry of a message's ``files``, or None when it is not media."""
    file_id = str(file.get("id") or "")
    if not file_id:
        return None
    if file.get("file_access") == "check_file_info":
        # Slack Connect stub: name, type and size come from files.info, after the ack.
        return NewJob(
            kind=JobKind.SLACK_FILE,
            filename=str(file.get("name") or f"file {file_id}"),
            slack_file_id=file_id,
            needs_file_info=True,
            dedupe_key=dedupe_key,
        )
    if not is_media_file(file):
        return None
    size = file.get("size")
    size = int(size) if isinstance(size, int) else None
    return NewJob(
        kind=JobKind.SLACK_FILE,
        filename=str(file.get("name") or file.get("title") or file_id),
        slack_file_id=file_id,
        download_url=file.get("url_private_download") or file.get("url_private"),
        mimetype=file.get("mimetype"),
        size_bytes=size,
        duration_ms=slack_duration_ms(file),
        dedupe_key=dedupe_key,
    )


class Intake:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Callable[[], datetime],
        providers: Mapping[str, Provider] | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        #: Configured providers, for their limits on files.
        self._providers = providers or {}

    async def take_message(self, event: dict[str, Any], workspace: Workspace) -> Batch | None:
        """Record the media files and audio links of a message shared in ``workspace`` when the
        channel has automatic transcription on there; None when there is nothing new to do."""
        if event.get("subtype") not in FILE_SUBTYPES or event.get("bot_id"):
            return None
        channel = event.get("channel")
        ts = event.get("ts")
        if not channel or not ts or not (event.get("files") or event.get("text")):
            return None
        # Each file and link is taken once per message, however often Slack delivers the event.
        # The key's first part is the team id ("None" when Slack named none), as it always was.
        team = workspace.team_id or None
        jobs = self.jobs_for_message(event, dedupe_prefix=f"{team}:{channel}:{ts}")
        if not jobs:
            return None  # most messages: decided without reading the database
        settings = await self._store.channel_settings(workspace, channel)
        if not settings.auto:
            return None
        has_files = any(job.kind is JobKind.SLACK_FILE for job in jobs)
        batch = await self._record(
            settings,
            workspace=workspace,
            message_ts=ts,
            thread_ts=event.get("thread_ts") or ts,
            user_id=event.get("user"),
            source="upload" if has_files else "link",
            jobs=jobs,
        )
        if batch is None:
            log.info("message %s in %s was taken before; ignoring", ts, channel)
        else:
            log.info("batch %s: %d item(s) from %s in %s", batch.id, len(jobs), ts, channel)
        return batch

    def jobs_for_message(
        self, message: dict[str, Any], *, dedupe_prefix: str | None
    ) -> list[NewJob]:
        """Jobs for a message's media files, then its audio links.

        With ``dedupe_prefix``, each job gets a key unique to its message, so a redelivered event
        finds them taken; without it (explicit requests) the same message can be transcribed again.
        """
        jobs: list[NewJob] = []
        for file in message.get("files") or []:
            key = f"{dedupe_prefix}:{file.get('id')}" if dedupe_prefix else None
            job = job_for_file(file, dedupe_key=key)
            if job is not None:
                jobs.append(job)
        for url in audio_links_in_text(str(message.get("text") or "")):
            key = f"{dedupe_prefix}:{url}" if dedupe_prefix else None
            jobs.append(job_for_link(url, dedupe_key=key))
        return jobs

    async def take_request(
        self,
        message: dict[str, Any],
        *,
        channel: str,
        workspace: Workspace,
        user_id: str | None,
        source: str,
    ) -> Requested:
        """Record the media of ``message`` because someone asked for it (the shortcut, a mention):
        whatever the channel's ``auto`` setting, in the message's thread."""
        ts = str(message.get("ts") or "")
        if not ts:
            return Requested(batch=None)
        jobs = self.jobs_for_message(message, dedupe_prefix=None)
        if not jobs:
            return Requested(batch=None)
        settings = await self._store.channel_settings(workspace, channel)
        batch = await self._record(
            settings,
            workspace=workspace,
            message_ts=ts,
            thread_ts=str(message.get("thread_ts") or ts),
            user_id=user_id,
            source=source,
            jobs=jobs,
            unless_running=True,
        )
        if batch is None:
            # Asked twice while the first answer is pending: the first one goes on.
            running = await self._store.active_batch_for_message(workspace, channel, ts)
            return Requested(batch=None, running=running)
        log.info("batch %s: %d item(s) of %s in %s (%s)", batch.id, len(jobs), ts, channel, source)
        return Requested(batch=batch)

    async def take_links(
        self,
        urls: Sequence[str],
        *,
        channel: str,
        workspace: Workspace,
        user_id: str | None,
        message_ts: str,
    ) -> Batch:
        """Record links given to ``/transcribe``, answered in the thread of ``message_ts`` (the
        message the command posted). Any http(s) link is taken: the person asked explicitly."""
        settings = await self._store.channel_settings(workspace, channel)
        batch = await self._record(
            settings,
            workspace=workspace,
            message_ts=message_ts,
            thread_ts=message_ts,
            user_id=user_id,
            source="command",
            jobs=[job_for_link(url, dedupe_key=None) for url in urls],
        )
        assert batch is not None, "jobs without a dedupe key are always taken"
        log.info("batch %s: %d link(s) by command in %s", batch.id, len(urls), channel)
        return batch

    async def resubmit(self, failed: Batch, jobs: Sequence[Job]) -> Batch:
        """A new batch with copies of the failed ``jobs`` of ``failed``, in the same thread, on the
        channel's current provider and language hints (changing them is often the fix)."""
        copies = [
            NewJob(
                kind=job.kind,
                filename=job.filename,
                slack_file_id=job.slack_file_id,
                url=job.url,
                download_url=job.download_url,
                mimetype=job.mimetype,
                size_bytes=job.size_bytes,
                duration_ms=job.duration_ms,
                needs_file_info=job.needs_file_info,
            )
            for job in jobs
            if job.state is JobState.FAILED
        ]
        settings = await self._store.channel_settings(failed.workspace, failed.channel_id)
        batch = await self._record(
            settings,
            workspace=failed.workspace,
            message_ts=failed.message_ts,
            thread_ts=failed.thread_ts,
            user_id=failed.user_id,
            source="retry",
            jobs=copies,
        )
        assert batch is not None, "jobs without a dedupe key are always taken"
        log.info("batch %s: retry of %d job(s) of %s", batch.id, len(copies), failed.id)
        return batch

    async def _record(
        self,
        settings: ChannelSettings,
        *,
        workspace: Workspace,
        message_ts: str,
        thread_ts: str,
        user_id: str | None,
        source: str,
        jobs: Sequence[NewJob],
        unless_running: bool = False,
    ) -> Batch | None:
        # The provider, language hints and transcription options are fixed on the batch now, so
        # changing the channel's settings later never disturbs work in flight.
        provider = settings.provider or self._settings.transcribe_provider.value
        limits = FileLimits.of(self._settings.max_file_bytes, self._providers.get(provider))
        return await self._store.create_batch(
            NewBatch(
                team_id=workspace.team_id or None,
                enterprise_id=workspace.enterprise_id,
                channel_id=settings.channel_id,
                message_ts=message_ts,
                thread_ts=thread_ts,
                user_id=user_id,
                provider=provider,
                source=source,
                language_hints=list(settings.language_hints),
                language_hints_strict=settings.language_hints_strict
                and bool(settings.language_hints),
                options=settings.transcription_options(),
            ),
            [refused_over_limits(job, limits) for job in jobs],
            self._clock(),
            unless_running=unless_running,
        )


def refused_over_limits(job: NewJob, limits: FileLimits) -> NewJob:
    """``job``, refused when Slack says its file is over a limit: nothing is downloaded."""
    if job.kind is not JobKind.SLACK_FILE or job.refused_reason is not None:
        return job
    reason = limits.refusal(size_bytes=job.size_bytes, duration_ms=job.duration_ms)
    return dataclasses.replace(job, refused_reason=reason) if reason else job


@dataclass
class Requested:
    """What an explicit request led to: a new batch, the batch already working on that message,
    or neither (the message has nothing to transcribe)."""

    batch: Batch | None
    running: Batch | None = None
