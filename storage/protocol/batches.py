"""A batch's reply and its progress message.

Part of :class:`storage.store.Store`, whose docstring states the contract every method
keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from storage.models import (
    ProgressShown,
)


class BatchSteps(Protocol):
    """A batch's reply and its progress message."""

    # -- a batch's reply ---------------------------------------------------------------------

    async def begin_delivery(self, batch_id: str, now: datetime) -> bool:
        """``BatchMoves.BEGIN_DELIVERY``. Returns whether the batch moved (False: it was cancelled
        or delivered meanwhile, and nothing may be posted). Raises the common errors."""

    async def record_reply(self, batch_id: str, reply_ts: str, now: datetime) -> bool:
        """``BatchMoves.DELIVER``: the reply at ``reply_ts`` was posted, delivered at ``now``.
        Returns whether the batch moved. Raises the common errors."""

    async def record_no_reply(self, batch_id: str, now: datetime) -> bool:
        """``BatchMoves.DELIVER`` without a reply: nothing in the batch was worth one. Returns
        whether the batch moved. Raises the common errors."""

    async def mark_undeliverable(self, batch_id: str, now: datetime) -> bool:
        """``BatchMoves.GIVE_UP``. Returns whether the batch moved. Raises the common errors."""

    async def schedule_delivery_retry(
        self,
        batch_id: str,
        *,
        attempts: int,
        retry_at: datetime,
        failing_since: datetime,
        now: datetime,
    ) -> bool:
        """Posting the running batch's reply failed for now: try again at ``retry_at``. Returns
        whether it was scheduled (False: the batch is not running). Raises the common errors."""

    async def cancel_batch(self, batch_id: str, now: datetime) -> bool:
        """``BatchMoves.CANCEL``. Returns whether the batch moved (False: its reply has begun, or
        it has finished). Raises the common errors."""

    # -- a batch's progress message ----------------------------------------------------------

    async def mark_progress_pending(self, batch_ids: Sequence[str], now: datetime) -> int:
        """A progress message is about to be posted for each batch (``PENDING_STATUS``): after a
        crash, look in the thread before posting it. Returns how many were marked. Raises the
        common errors."""

    async def record_progress_found(self, batch_id: str, message_ts: str, now: datetime) -> bool:
        """The pending progress message was found in the thread at ``message_ts``. Returns whether
        the batch exists. Raises the common errors."""

    async def record_progress_shown(self, shown: Sequence[ProgressShown], now: datetime) -> int:
        """These progress messages were posted or edited at ``now``, in one transaction. Returns
        how many were recorded. Raises the common errors."""

    async def record_final_note(
        self, batch_id: str, message_ts: str | None, text: str, now: datetime
    ) -> bool:
        """The batch's progress message at ``message_ts`` (None: it was never posted) now says
        ``text`` for good. Returns whether the batch exists. Raises the common errors."""
