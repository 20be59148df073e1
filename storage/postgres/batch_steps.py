"""A batch's reply and progress message, as the PostgreSQL store records them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from storage.models import PENDING_STATUS, ProgressShown
from storage.postgres.base import StoreBase, columns
from storage.postgres.rows import safe_text
from storage.states import RUNNING_BATCH_STATES, BatchMoves


class BatchSteps(StoreBase):
    # -- the reply ---------------------------------------------------------------------------

    async def begin_delivery(self, batch_id: str, now: datetime) -> bool:
        move = BatchMoves.BEGIN_DELIVERY
        return await self._update_batch(
            batch_id, "state = %s", (move.target.value,), now, move.sources
        )

    async def record_reply(self, batch_id: str, reply_ts: str, now: datetime) -> bool:
        move = BatchMoves.DELIVER
        return await self._update_batch(
            batch_id,
            "state = %s, reply_ts = %s, delivered_at = %s",
            (move.target.value, safe_text(reply_ts), now),
            now,
            move.sources,
        )

    async def record_no_reply(self, batch_id: str, now: datetime) -> bool:
        move = BatchMoves.DELIVER
        return await self._update_batch(
            batch_id, "state = %s", (move.target.value,), now, move.sources
        )

    async def mark_undeliverable(self, batch_id: str, now: datetime) -> bool:
        move = BatchMoves.GIVE_UP
        return await self._update_batch(
            batch_id, "state = %s", (move.target.value,), now, move.sources
        )

    async def schedule_delivery_retry(
        self,
        batch_id: str,
        *,
        attempts: int,
        retry_at: datetime,
        failing_since: datetime,
        now: datetime,
    ) -> bool:
        return await self._update_batch(
            batch_id,
            "attempts = %s, next_attempt_at = %s, failing_since = %s",
            (attempts, retry_at, failing_since),
            now,
            RUNNING_BATCH_STATES,
        )

    async def cancel_batch(self, batch_id: str, now: datetime) -> bool:
        move = BatchMoves.CANCEL
        return await self._update_batch(
            batch_id, "state = %s", (move.target.value,), now, move.sources
        )

    # -- the progress message ----------------------------------------------------------------

    async def mark_progress_pending(self, batch_ids: Sequence[str], now: datetime) -> int:
        if not batch_ids:
            return 0
        return await self._execute(
            "UPDATE batches SET status_ts = %s, updated_at = %s WHERE id = ANY(%b::text[])",
            (PENDING_STATUS, now, list(batch_ids)),
        )

    async def record_progress_found(self, batch_id: str, message_ts: str, now: datetime) -> bool:
        return await self._update_batch(batch_id, "status_ts = %s", (safe_text(message_ts),), now)

    async def record_progress_shown(self, shown: Sequence[ProgressShown], now: datetime) -> int:
        if not shown:
            return 0
        # One statement for posted and edited messages alike: an edited one keeps its ts.
        rows = [(each.batch_id, safe_text(each.message_ts), safe_text(each.text)) for each in shown]
        return await self._execute(
            """UPDATE batches SET status_ts = COALESCE(v.message_ts, batches.status_ts),
                   status_text = v.status_text, status_updated_at = %s, updated_at = %s
               FROM unnest(%b::text[], %b::text[], %b::text[]) AS v(id, message_ts, status_text)
               WHERE batches.id = v.id""",
            (now, now, *columns(rows, 3)),
        )

    async def record_final_note(
        self, batch_id: str, message_ts: str | None, text: str, now: datetime
    ) -> bool:
        return await self._update_batch(
            batch_id,
            "status_ts = %s, status_text = %s, status_updated_at = %s",
            (safe_text(message_ts), safe_text(text), now),
            now,
        )
