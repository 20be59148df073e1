"""Speaker names and the reply files that show them.

Part of :class:`storage.store.Store`, whose docstring states the contract every method
keeps.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Protocol

from storage.models import (
    Batch,
    ReplyFile,
    SpeakerNames,
    SpeakerNaming,
    Workspace,
)


class SpeakerSteps(Protocol):
    """Speaker names and the reply files that show them."""

    # -- speaker names -----------------------------------------------------------------------

    async def latest_reply_in_thread(
        self, workspace: Workspace, channel_id: str, thread_ts: str
    ) -> Batch | None:
        """Returns the workspace's newest delivered batch of the channel with a reply in the
        thread at ``thread_ts``, or None. Raises the common errors."""

    async def speaker_naming(self, batch_id: str) -> SpeakerNaming | None:
        """Returns the batch's speaker names and how far its reply shows them, or None when its
        speakers were never named. Raises the common errors."""

    async def name_speakers(
        self, batch_id: str, names: SpeakerNames, now: datetime
    ) -> SpeakerNaming | None:
        """Record ``names`` as the speaker names of a delivered batch with a reply, in place of
        any before: the version counts up, and showing it is due at once with a fresh allowance of
        attempts. Returns the naming as recorded, or None when the batch is not delivered with a
        reply (checked in the same transaction: nothing is recorded then). Raises the common
        errors."""

    async def namings_to_show(self, now: datetime) -> list[SpeakerNaming]:
        """Returns the namings whose reply does not show their version yet, and whose retry (if
        any) is due by ``now``, least recently changed first. Raises the common errors."""

    async def record_names_shown(self, batch_id: str, version: int, now: datetime) -> bool:
        """The reply shows the names of ``version``: ``shown`` becomes it (unless it is past it
        already), and the retries are forgotten. Returns whether the batch has a naming. Raises
        the common errors."""

    async def schedule_naming_retry(
        self,
        batch_id: str,
        *,
        attempts: int,
        retry_at: datetime,
        failing_since: datetime,
        now: datetime,
    ) -> bool:
        """Showing the names failed for now: try again at ``retry_at``. Returns whether the batch
        has a naming. Raises the common errors."""

    async def reply_files(self, batch_id: str) -> list[ReplyFile]:
        """Returns the files recorded as attached to the batch's reply, by when they were
        recorded, then by id. Raises the common errors."""

    async def record_reply_files(
        self, batch_id: str, files: Sequence[ReplyFile], now: datetime
    ) -> int:
        """These files are attached to the batch's reply, in one transaction; one recorded before
        is left as it is. Returns how many were added. Raises the common errors."""

    async def begin_file_replacement(self, batch_id: str, now: datetime) -> SpeakerNaming | None:
        """The reply's files are about to be replaced: in one transaction, every file recorded
        for it is marked retiring and ``replacing_since`` becomes ``now``. Changes nothing while a
        replacement is under way already. Returns the naming as it stands after, or None when
        the batch has none. Raises the common errors."""

    async def finish_file_replacement(
        self, batch_id: str, files: Sequence[ReplyFile], version: int, now: datetime
    ) -> bool:
        """The replacements are attached, rendered with the names of ``version``: in one
        transaction, ``files`` are recorded as the reply's (not retiring), ``replacing_since``
        is cleared and ``files_version`` becomes ``version``. Returns whether a replacement was
        under way (False: nothing is recorded). Raises the common errors."""

    async def forget_reply_files(
        self, batch_id: str, file_ids: Collection[str], now: datetime
    ) -> int:
        """These files of the batch's reply were deleted from its thread. Returns how many were
        forgotten. Raises the common errors."""
