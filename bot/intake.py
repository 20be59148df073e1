"""From a Slack message to a recorded batch.

Intake runs before Slack gets its ack and does no network I/O: it only writes the batch to SQLite.
Once the ack is sent Slack will not redeliver, so the database must already hold the work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.config import Settings
from bot.media import is_media_file
from storage.models import Batch, JobKind, NewBatch, NewJob
from storage.repository import Repository

log = logging.getLogger(__name__)

#: Message subtypes that can carry files a person shared.
FILE_SUBTYPES = frozenset({None, "file_share", "slack_audio", "slack_video", "thread_broadcast"})


def too_large_reason(size: int, max_bytes: int) -> str:
    return (
        f"This file is {size / (1024 * 1024):,.0f} MB; the limit of this app is "
        f"{max_bytes // (1024 * 1024)} MB. Trim or compress it and share it again."
    )


def job_for_file(file: dict[str, Any], *, dedupe_key: str | None, max_bytes: int) -> NewJob | None:
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
        dedupe_key=dedupe_key,
        refused_reason=too_large_reason(size, max_bytes) if size and size > max_bytes else None,
    )


class Intake:
    def __init__(
        self, repository: Repository, settings: Settings, clock: Callable[[], datetime]
    ) -> None:
        self._repository = repository
        self._settings = settings
        self._clock = clock

    async def provider_for(self, channel_id: str) -> str:
        """The channel's chosen provider, else the default."""
        chosen = (await self._repository.channel_settings(channel_id)).provider
        return chosen or self._settings.transcribe_provider.value

    async def take_message(self, event: dict[str, Any], team_id: str | None) -> Batch | None:
        """Record the media files of a shared message; None when there is nothing new to do."""
        if event.get("subtype") not in FILE_SUBTYPES or event.get("bot_id"):
            return None
        files = event.get("files") or []
        channel = event.get("channel")
        ts = event.get("ts")
        if not files or not channel or not ts:
            return None
        settings = await self._repository.channel_settings(channel)
        if not settings.auto:
            return None
        jobs = [
            job
            for file in files
            if (
                job := job_for_file(
                    file,
                    dedupe_key=f"{team_id}:{channel}:{ts}:{file.get('id')}",
                    max_bytes=self._settings.max_file_bytes,
                )
            )
            is not None
        ]
        if not jobs:
            return None
        batch = await self._repository.create_batch(
            NewBatch(
                team_id=team_id,
                channel_id=channel,
                message_ts=ts,
                thread_ts=event.get("thread_ts") or ts,
                user_id=event.get("user"),
                provider=settings.provider or self._settings.transcribe_provider.value,
                source="upload",
                language_hints=settings.language_hints,
            ),
            jobs,
            self._clock(),
        )
        if batch is None:
            log.info("message %s in %s was taken before; ignoring", ts, channel)
        else:
            log.info("batch %s: %d file(s) from %s in %s", batch.id, len(jobs), ts, channel)
        return batch
