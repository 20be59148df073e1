"""Posting the reply of each batch whose jobs have all finished.

The reply takes over the batch's progress message, so no stale progress text stays behind. A batch
is marked delivering before anything is posted: after a crash, its thread (not the database) says
whether the reply, or some of its attachments, went out already. A batch is posted under its lease,
by one process at a time: the same lease keeps another process from editing its progress message
meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from slack_sdk.errors import SlackApiError

from bot import metrics
from bot.errors import PermanentError, RateLimited, TemporaryError, TranscribeError, WorkspaceGone
from bot.messages import REACTION_DONE, REACTION_FAILED, REACTION_WORKING
from bot.messages import work as texts
from bot.rendering import Reply, render_reply
from bot.slack_api import UNDELIVERABLE_ERRORS, retry_after, slack_error_code
from bot.slack_text import context
from bot.work.context import WorkContext
from bot.work.progress import ProgressMessages
from bot.work.retry import Fail, Wait
from storage.models import PENDING_STATUS, Batch, BatchState, Job, ReplyFile
from storage.states import RUNNING_BATCH_STATES, BatchMoves, Move

log = logging.getLogger(__name__)


class Delivery:
    def __init__(self, ctx: WorkContext, progress: ProgressMessages) -> None:
        self._ctx = ctx
        self._progress = progress

    async def deliver_due(self, now: datetime) -> None:
        """Post the reply of every batch ready for it by ``now``, one after the other, each one
        no other process is posting."""
        for ready in await self._ctx.store.batches_to_deliver(now):
            if ready.id in self._ctx.busy:
                continue
            leases = self._ctx.leases
            claimed = await leases.claim_batches([ready.id])
            try:
                # As it is now: another process may have posted it since it was read.
                for batch in claimed:
                    if batch.state in RUNNING_BATCH_STATES and (
                        batch.next_attempt_at is None or batch.next_attempt_at <= now
                    ):
                        await self._deliver_one(batch)
            finally:
                await leases.release(batches=[ready.id])

    async def _deliver_one(self, batch: Batch) -> None:
        try:
            await self._ctx.guarded(batch.id, self._deliver(batch))
        except WorkspaceGone as exc:
            # Nothing can be posted there: the reply waits, quietly, with no call to Slack.
            log.info("batch %s: the reply waits: %s", batch.id, exc.detail)
            await self._failed(batch, exc)
        except Exception:
            # One batch's trouble must not keep the others' replies back.
            log.exception("batch %s: unexpected error while posting the reply", batch.id)
            await self._failed(batch, TemporaryError("unexpected error"))

    async def _deliver(self, batch: Batch) -> None:
        jobs = await self._ctx.store.jobs_of(batch.id)
        # No names yet: speakers are named once the reply is out (bot.work.names shows them).
        reply = render_reply(
            jobs, batch_id=batch.id, doubtful_below=self._ctx.config.confidence_threshold
        )
        try:
            if not reply.blocks:
                await self._nothing_to_reply(batch)
                return
            already_in_thread: set[str] = set()
            status_ts = batch.status_ts if batch.status_ts != PENDING_STATUS else None
            if batch.state is BatchState.DELIVERING or batch.status_ts == PENDING_STATUS:
                # A previous attempt may have posted before the process died: look first.
                thread = await self._progress.thread_of(batch)
                if thread.reply_ts is not None:
                    await self._finish(batch, thread.reply_ts, reply.any_failed)
                    return
                already_in_thread = thread.file_names
                status_ts = status_ts or thread.status_ts
            if batch.state is not BatchState.DELIVERING and not await self._move(
                batch, self._ctx.store.begin_delivery, BatchMoves.BEGIN_DELIVERY
            ):
                return  # cancelled since it was read: nothing may be posted
            if await self._attach(batch, jobs, reply, already_in_thread):
                reply.add_note(context(texts.NOT_ATTACHED_TEXT))
            reply_ts = await self._post(batch, reply, status_ts)
            await self._finish(batch, reply_ts, reply.any_failed)
        except SlackApiError as exc:
            code = slack_error_code(exc)
            wait = retry_after(exc)
            if wait is not None:
                # Slack asked this workspace to slow down: its reply goes out after Retry-After,
                # and the other workspaces' replies meanwhile.
                await self._failed(batch, RateLimited(code or "ratelimited", retry_after=wait))
                return
            undeliverable = code in UNDELIVERABLE_ERRORS
            await self._failed(
                batch, PermanentError(code) if undeliverable else TemporaryError(code)
            )

    async def _nothing_to_reply(self, batch: Batch) -> None:
        """Nothing was media after all: no reply, just tidy the reaction, and a progress
        message already shown must not go on promising a transcript."""
        if not await self._move(batch, self._ctx.store.record_no_reply, BatchMoves.DELIVER):
            return
        await self._progress.settle(batch, texts.NOTHING_TEXT)
        await (await self._ctx.slack_for(batch.workspace)).remove_reaction(
            batch.channel_id, batch.message_ts, REACTION_WORKING
        )

    async def _attach(
        self, batch: Batch, jobs: Sequence[Job], reply: Reply, already_in_thread: set[str]
    ) -> bool:
        """Upload the reply's attachments that are not in the thread yet; whether any could
        not be, for want of the ``files:write`` scope."""
        uploaded = {job.id for job in jobs if job.attachment_uploaded}
        refused = False
        for attachment in reply.attachments:
            if attachment.job_id in uploaded or attachment.filename in already_in_thread:
                continue
            try:
                file_ids = await (await self._ctx.slack_for(batch.workspace)).upload_text(
                    channel=batch.channel_id,
                    thread_ts=batch.thread_ts,
                    filename=attachment.filename,
                    title=attachment.title,
                    content=attachment.content,
                )
                # Kept so that naming the speakers later can replace the file.
                await self._ctx.store.record_reply_files(
                    batch.id,
                    [ReplyFile(file_id, attachment.filename) for file_id in file_ids],
                    self._ctx.clock(),
                )
            except SlackApiError as exc:
                if slack_error_code(exc) != "missing_scope":
                    raise
                # Retrying cannot help until an admin acts: the reply goes out without it.
                log.warning(
                    "batch %s: cannot upload %s: the files:write scope is missing",
                    batch.id,
                    attachment.filename,
                )
                refused = True
        # Only once all of a job's files are up; a retry after a partial failure finds the
        # ones already posted by name in the thread.
        attached = {attachment.job_id for attachment in reply.attachments} - uploaded
        if attached:
            await self._ctx.store.mark_attachments_uploaded(attached, self._ctx.clock())
        return refused

    async def _post(self, batch: Batch, reply: Reply, status_ts: str | None) -> str:
        """Post ``reply`` in the batch's thread; the ts of the message that holds it."""
        if status_ts is not None:
            # The progress message becomes the reply: no stale progress text stays behind,
            # and an update repeated after a crash changes nothing.
            try:
                await (await self._ctx.slack_for(batch.workspace)).update_message(
                    channel=batch.channel_id,
                    ts=status_ts,
                    text=reply.text,
                    blocks=reply.blocks,
                    batch_id=batch.id,
                    final=True,
                )
                return status_ts
            except SlackApiError as exc:
                if slack_error_code(exc) not in ("message_not_found", "cant_update_message"):
                    raise
                # Someone deleted the progress message: the reply is posted afresh.
                log.info("batch %s: progress message gone; posting the reply", batch.id)
        return await (await self._ctx.slack_for(batch.workspace)).post_reply(
            channel=batch.channel_id,
            thread_ts=batch.thread_ts,
            text=reply.text,
            blocks=reply.blocks,
            batch_id=batch.id,
        )

    async def _finish(self, batch: Batch, reply_ts: str, any_failed: bool) -> None:
        delivered_at = self._ctx.clock()
        if not await self._ctx.store.record_reply(batch.id, reply_ts, delivered_at):
            # Cancelled or settled meanwhile: its end is someone else's to report.
            log.warning("batch %s: reply %s posted, but the batch had moved on", batch.id, reply_ts)
            return
        batch.state = BatchState.DELIVERED
        metrics.observe_delivery(batch.created_at, delivered_at, provider=batch.provider)
        log.info("batch %s: reply posted in %s (%s)", batch.id, batch.channel_id, reply_ts)
        slack = await self._ctx.slack_for(batch.workspace)
        await slack.remove_reaction(batch.channel_id, batch.message_ts, REACTION_WORKING)
        await slack.add_reaction(
            batch.channel_id,
            batch.message_ts,
            REACTION_FAILED if any_failed else REACTION_DONE,
        )

    async def _failed(self, batch: Batch, error: TranscribeError) -> None:
        """Posting failed: the retry policy says when to try again, or to give up."""
        now = self._ctx.clock()
        decision = self._ctx.retry.decide(
            error, attempts=batch.attempts, since=batch.failing_since, now=now
        )
        if isinstance(decision, Fail):
            await self._give_up(batch, decision.error.detail)
            return
        if isinstance(decision, Wait):
            # Its workspace cannot be reached: no attempt is counted.
            attempts, retry_at, since = batch.attempts, decision.until, decision.since or now
        else:
            attempts, retry_at, since = decision.attempts, decision.at, decision.since
            delay = (retry_at - now).total_seconds()
            log.warning(
                "batch %s: posting failed (%s); retry in %.1fs", batch.id, error.detail, delay
            )
        await self._ctx.store.schedule_delivery_retry(
            batch.id, attempts=attempts, retry_at=retry_at, failing_since=since, now=now
        )

    async def _give_up(self, batch: Batch, reason: str) -> None:
        log.error("batch %s: cannot post the reply (%s); giving up", batch.id, reason)
        await self._move(batch, self._ctx.store.mark_undeliverable, BatchMoves.GIVE_UP)

    async def _move(
        self,
        batch: Batch,
        verb: Callable[[str, datetime], Awaitable[bool]],
        move: Move[BatchState],
    ) -> bool:
        """Make ``move`` with the store's ``verb``, unless someone (a cancel) moved the batch
        first; whether it moved."""
        moved = await verb(batch.id, self._ctx.clock())
        if moved:
            batch.state = move.target
        return moved
