"""One progress message in the thread of each batch still running, kept up to date.

Progress is a courtesy: the work and the final reply do not depend on it. A post is marked pending
before it goes out, so after a crash the thread (not the database) says whether it went out. A
batch's message is posted or edited under the batch's lease, by one process at a time, and never
while another process posts the reply that takes it over.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from slack_sdk.errors import SlackApiError

from bot.errors import WorkspaceGone
from bot.messages import work as texts
from bot.providers.registry import label_of
from bot.slack_api import ThreadState, slack_error_code
from bot.slack_text import Mrkdwn, context
from bot.work.context import WorkContext
from storage.models import PENDING_STATUS, Batch, BatchState, JobState, ProgressShown

log = logging.getLogger(__name__)

#: A batch and the text its progress message is to show.
Shown = tuple[Batch, Mrkdwn]


class ProgressMessages:
    def __init__(self, ctx: WorkContext) -> None:
        self._ctx = ctx

    async def report(self) -> None:
        """Keep one progress message up to date in the thread of each batch still running."""
        now = self._ctx.clock()
        await self._settle_cancelled()
        config = self._ctx.config
        due = await self._ctx.store.batches_needing_progress(
            now,
            after=config.progress_after,
            every=config.progress_every,
            held_note=texts.HELD_MARK,
        )
        leases = self._ctx.leases
        claimed = await leases.claim_batches(
            [batch.id for batch in due if batch.id not in self._ctx.busy]
        )
        try:
            await self._show(claimed, now)
        finally:
            await leases.release(batches=[batch.id for batch in claimed])

    async def _show(self, claimed: Sequence[Batch], now: datetime) -> None:
        """Post or edit the progress message of each of these batches, as they were claimed (a
        process that held one before may have changed its message since it was read)."""
        shown = await self._due([batch for batch in claimed if batch.state is BatchState.OPEN])
        lost = await self._find_pending([batch for batch, _ in shown], now)
        to_post: list[Shown] = []
        to_update: list[Shown] = []
        every = self._ctx.config.progress_every
        for batch, text in shown:
            if batch.id in lost:
                continue
            if batch.status_ts is None or batch.status_ts == PENDING_STATUS:
                to_post.append((batch, text))
            elif text != batch.status_text and (
                batch.status_updated_at is None or now - batch.status_updated_at >= every
            ):
                to_update.append((batch, text))
        await self._post(to_post, now)
        await self._update(to_update, now)

    async def settle(self, batch: Batch, text: Mrkdwn) -> None:
        """Turn a batch's progress message, if it has one, into a final note (``text``)."""
        status_ts = batch.status_ts
        if status_ts == PENDING_STATUS:
            # Its post may or may not have happened before a crash: the thread knows.
            thread = await self.thread_of(batch)
            status_ts = thread.status_ts
        if status_ts is not None:
            await (await self._ctx.slack_for(batch.workspace)).update_message(
                channel=batch.channel_id,
                ts=status_ts,
                text=text,
                blocks=[context(text)],
                batch_id=batch.id,
                final=True,
            )
        # Recorded only once done, so a failed update is tried again next cycle.
        await self._ctx.store.record_final_note(batch.id, status_ts, text, self._ctx.clock())

    async def thread_of(self, batch: Batch) -> ThreadState:
        """What the batch's thread already holds from this batch: after a crash, the thread
        (not the database) knows whether a post went out."""
        return await (await self._ctx.slack_for(batch.workspace)).thread_state(
            channel=batch.channel_id,
            thread_ts=batch.thread_ts,
            batch_id=batch.id,
            since=batch.created_at,
        )

    async def _settle_cancelled(self) -> None:
        store, leases = self._ctx.store, self._ctx.leases
        to_settle = await store.cancelled_batches_to_settle(texts.CANCELLED_TEXT)
        claimed = await leases.claim_batches([batch.id for batch in to_settle])
        try:
            for cancelled in claimed:
                if cancelled.status_ts is None or cancelled.status_text == texts.CANCELLED_TEXT:
                    continue  # settled by another process since it was read
                # The progress message of a cancelled batch must not promise a transcript.
                try:
                    await self.settle(cancelled, texts.CANCELLED_TEXT)
                except Exception as exc:
                    log.warning("batch %s: could not mark cancelled: %r", cancelled.id, exc)
        finally:
            await leases.release(batches=[batch.id for batch in claimed])

    async def _due(self, due: Sequence[Batch]) -> list[Shown]:
        """Those of ``due`` whose progress message is to show something, with what."""
        jobs_by_batch = await self._ctx.store.jobs_of_batches([batch.id for batch in due])
        shown: list[Shown] = []
        for batch in due:
            jobs = jobs_by_batch.get(batch.id, [])
            reported = [job for job in jobs if job.state is not JobState.SKIPPED]
            if not reported or all(job.state.is_terminal for job in reported):
                continue  # the reply is next; it takes over the progress message
            shown.append((batch, texts.progress_text(reported, label_of)))
        return shown

    async def _find_pending(self, batches: Sequence[Batch], now: datetime) -> set[str]:
        """Posts that were under way when the process stopped: the threads know if they went
        out. Sets each pending batch's ``status_ts`` to its message, or to None; returns the ids
        of the batches whose thread could not be read."""
        pending = [batch for batch in batches if batch.status_ts == PENDING_STATUS]

        async def find(batch: Batch) -> None:
            batch.status_ts = (await self.thread_of(batch)).status_ts
            if batch.status_ts is not None:
                await self._ctx.store.record_progress_found(batch.id, batch.status_ts, now)

        lost: set[str] = set()
        for batch, outcome in zip(pending, await self._ctx.for_each(pending, find), strict=True):
            if isinstance(outcome, Exception):
                _progress_failed(batch, outcome)
                lost.add(batch.id)
        return lost

    async def _post(self, shown: Sequence[Shown], now: datetime) -> None:
        """Post the first progress message of each batch, as many at once as calls may run: a
        crash leaves no more than that many to look for."""
        group = self._ctx.config.max_concurrent_calls
        for start in range(0, len(shown), group):
            await self._post_group(shown[start : start + group], now)

    async def _post_group(self, shown: Sequence[Shown], now: datetime) -> None:
        # Marked first: if the process dies during the posts, the next run looks for each
        # message in its thread instead of posting a second one.
        await self._ctx.store.mark_progress_pending([batch.id for batch, _ in shown], now)

        async def post(batch: Batch, text: Mrkdwn) -> ProgressShown:
            ts = await (await self._ctx.slack_for(batch.workspace)).post_reply(
                channel=batch.channel_id,
                thread_ts=batch.thread_ts,
                text=text,
                blocks=[context(text)],
                batch_id=batch.id,
                final=False,
            )
            return ProgressShown(batch.id, text, message_ts=ts)

        await self._show_each(shown, post, now)

    async def _update(self, shown: Sequence[Shown], now: datetime) -> None:
        """Show the new text in each batch's progress message."""

        async def update(batch: Batch, text: Mrkdwn) -> ProgressShown:
            assert batch.status_ts is not None
            await (await self._ctx.slack_for(batch.workspace)).update_message(
                channel=batch.channel_id,
                ts=batch.status_ts,
                text=text,
                blocks=[context(text)],
                batch_id=batch.id,
                final=False,
            )
            return ProgressShown(batch.id, text)

        await self._show_each(shown, update, now)

    async def _show_each(
        self,
        shown: Sequence[Shown],
        show: Callable[[Batch, Mrkdwn], Awaitable[ProgressShown]],
        now: datetime,
    ) -> None:
        """``show`` each (batch, text), then record each one that went out, in one
        transaction."""
        outcomes = await self._ctx.for_each(shown, lambda item: show(*item))
        went_out: list[ProgressShown] = []
        for (batch, _), outcome in zip(shown, outcomes, strict=True):
            if isinstance(outcome, Exception):
                _progress_failed(batch, outcome)
            else:
                went_out.append(outcome)
        await self._ctx.store.record_progress_shown(went_out, now)


def _progress_failed(batch: Batch, exc: Exception) -> None:
    # Progress is a courtesy: the work and the final reply do not depend on it.
    if isinstance(exc, WorkspaceGone):
        log.debug("batch %s: no progress shown: %s", batch.id, exc.detail)
    elif isinstance(exc, SlackApiError):
        log.warning("batch %s: progress update failed: %s", batch.id, slack_error_code(exc))
    else:
        log.error("batch %s: progress update failed", batch.id, exc_info=exc)
