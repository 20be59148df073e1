"""A batch's reply and progress message, as the SQLite store records them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage.models import PENDING_STATUS, ProgressShown
from storage.sqlite.base import StoreBase
from storage.sqlite.rows import to_text
from storage.states import RUNNING_BATCH_STATES, BatchMoves


class BatchSteps(StoreBase):
    # -- the reply ---------------------------------------------------------------------------

    async def begin_delivery(self, batch_id: str, now: datetime) -> bool:
        move = BatchMoves.BEGIN_DELIVERY
        return await self._update_batch(
            batch_id, "state = ?", (move.target.value,), now, move.sources
        )

    async def record_reply(self, batch_id: str, reply_ts: str, now: datetime) -> bool:
        move = BatchMoves.DELIVER
        return await self._update_batch(
            batch_id,
            "state = ?, reply_ts = ?, delivered_at = ?",
            (move.target.value, reply_ts, to_text(now)),
            now,
            move.sources,
        )

    async def record_no_reply(self, batch_id: str, now: datetime) -> bool:
        move = BatchMoves.DELIVER
        return await self._update_batch(
            batch_id, "state = ?", (move.target.value,), now, move.sources
        )

    async def mark_undeliverable(self, batch_id: str, now: datetime) -> bool:
        move = BatchMoves.GIVE_UP
        return await self._update_batch(
            batch_id, "state = ?", (move.target.value,), now, move.sources
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
            "attempts = ?, next_attempt_at = ?, failing_since = ?",
            (attempts, to_text(retry_at), to_text(failing_since)),
            now,
            RUNNING_BATCH_STATES,
        )

    async def cancel_batch(self, batch_id: str, now: datetime) -> bool:
        move = BatchMoves.CANCEL
        return await self._update_batch(
            batch_id, "state = ?", (move.target.value,), now, move.sources
        )

    # -- the progress message ----------------------------------------------------------------

    async def mark_progress_pending(self, batch_ids: Sequence[str], now: datetime) -> int:
        rows = [(PENDING_STATUS, batch_id) for batch_id in dict.fromkeys(batch_ids)]
        return await self._update_batches([("status_ts = ?", rows)], now)

    async def record_progress_found(self, batch_id: str, message_ts: str, now: datetime) -> bool:
        return await self._update_batch(batch_id, "status_ts = ?", (message_ts,), now)

    async def record_progress_shown(self, shown: Sequence[ProgressShown], now: datetime) -> int:
        stamp = to_text(now)
        posted = [
            (each.message_ts, each.text, stamp, each.batch_id)
            for each in shown
            if each.message_ts is not None
        ]
        edited = [(each.text, stamp, each.batch_id) for each in shown if each.message_ts is None]
        return await self._update_batches(
            [
                ("status_ts = ?, status_text = ?, status_updated_at = ?", posted),
                ("status_text = ?, status_updated_at = ?", edited),
            ],
            now,
        )

    async def record_final_note(
        self, batch_id: str, message_ts: str | None, text: str, now: datetime
    ) -> bool:
        return await self._update_batch(
            batch_id,
            "status_ts = ?, status_text = ?, status_updated_at = ?",
            (message_ts, text, to_text(now)),
            now,
        )

    async def _update_batches(
        self, groups: Sequence[tuple[str, Sequence[tuple[Any, ...]]]], now: datetime
    ) -> int:
        """For each (assignments, rows) group, run ``SET {assignments}`` with each row's values
        (the batch id last), all in one transaction; how many batches there were."""
        groups = [(assignments, rows) for assignments, rows in groups if rows]
        if not groups:
            return 0
        stamp, updated = to_text(now), 0
        async with self._database.transaction() as db:
            for assignments, rows in groups:
                cursor = await db.executemany(
                    f"UPDATE batches SET {assignments}, updated_at = ? WHERE id = ?",
                    [(*row[:-1], stamp, row[-1]) for row in rows],
                )
                updated += cursor.rowcount
        return updated
