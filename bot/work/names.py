"""Showing speaker names in a delivered reply: its message edited, its attached files replaced.

The names in the database are the truth, recorded before anything here happens; this stage brings
the reply in line with them, and doing it again for the same names changes nothing. The message is
simply edited again. The files are replaced in three recorded steps, so that a process killed at
any line leaves the thread with the old files or the new ones, never with neither, and never with
two of each for longer than the next cycle:

1. the files the reply has are marked retiring (``begin_file_replacement``);
2. the new ones are uploaded and recorded (``finish_file_replacement``); an upload made just
   before a crash is found in the thread by name (a file of ours not recorded yet) instead of
   being made again;
3. the retiring ones are deleted, each forgotten once Slack confirms.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from slack_sdk.errors import SlackApiError

from bot.errors import TemporaryError, TranscribeError, WorkspaceGone
from bot.messages import work as texts
from bot.rendering import Reply, Speakers, render_reply
from bot.slack_api import UNDELIVERABLE_ERRORS, slack_error_code
from bot.slack_text import context
from bot.work.context import WorkContext
from bot.work.retry import Fail, Wait
from storage.models import Batch, BatchState, JobState, ReplyFile, SpeakerNames, SpeakerNaming

log = logging.getLogger(__name__)

#: Slack errors after which the reply's message cannot be edited at all.
MESSAGE_GONE_ERRORS = UNDELIVERABLE_ERRORS | {"message_not_found", "cant_update_message"}


class SpeakerNamesShown:
    def __init__(self, ctx: WorkContext) -> None:
        self._ctx = ctx

    async def show_due(self) -> None:
        """Bring each reply whose speaker names changed in line with them, one after the other,
        each one no other process is editing: it holds the batch's lease meanwhile."""
        store, leases = self._ctx.store, self._ctx.leases
        for due in await store.namings_to_show(self._ctx.clock()):
            key = f"names:{due.batch_id}"
            if key in self._ctx.busy or not await leases.claim_batches([due.batch_id]):
                continue
            try:
                # As it is now: another process may have shown it since it was read.
                naming = await store.speaker_naming(due.batch_id)
                if naming is not None and self._behind(naming):
                    await self._show_one(key, naming)
            finally:
                await leases.release(batches=[due.batch_id])

    def _behind(self, naming: SpeakerNaming) -> bool:
        return naming.shown < naming.version and (
            naming.next_attempt_at is None or naming.next_attempt_at <= self._ctx.clock()
        )

    async def _show_one(self, key: str, naming: SpeakerNaming) -> None:
        try:
            await self._ctx.guarded(key, self._show(naming))
        except WorkspaceGone as exc:
            log.info("batch %s: speakers' names wait: %s", naming.batch_id, exc.detail)
            await self._failed(naming, exc)
        except Exception:
            log.exception("batch %s: unexpected error while naming its speakers", naming.batch_id)
            await self._failed(naming, TemporaryError("unexpected error"))

    async def _show(self, naming: SpeakerNaming) -> None:
        store = self._ctx.store
        batch = await store.get_batch(naming.batch_id)
        if batch is None or batch.state is not BatchState.DELIVERED or batch.reply_ts is None:
            await self._done(naming)
            return
        jobs = await store.jobs_of(batch.id)
        if any(job.state is JobState.COMPLETED and job.transcript is None for job in jobs):
            # Erased after the retention period: rendering now would erase the reply too.
            log.info("batch %s: its transcripts are erased; the reply stays as it is", batch.id)
            await self._done(naming)
            return
        speakers = Speakers(naming.names, await self._display_names(batch, naming.names))
        reply = render_reply(
            jobs,
            batch_id=batch.id,
            speakers=speakers,
            doubtful_below=self._ctx.config.confidence_threshold,
        )
        try:
            if reply.attachments and await self._replace_files(batch, naming, reply):
                reply.add_note(context(texts.NOT_ATTACHED_TEXT))
            await (await self._ctx.slack_for(batch.workspace)).update_message(
                channel=batch.channel_id,
                ts=batch.reply_ts,
                text=reply.text,
                blocks=reply.blocks,
                batch_id=batch.id,
                final=True,
            )
        except SlackApiError as exc:
            code = slack_error_code(exc)
            if code not in MESSAGE_GONE_ERRORS:
                await self._failed(naming, TemporaryError(code))
                return
            log.warning("batch %s: cannot show the speakers' names: %s", batch.id, code)
        await self._done(naming)
        log.info("batch %s: speakers named in its reply (version %s)", batch.id, naming.version)

    async def _display_names(self, batch: Batch, names: SpeakerNames) -> dict[str, str]:
        """The name each person named goes by, for the files; those Slack does not say are
        left out (their speakers keep their numbers there)."""
        found: dict[str, str] = {}
        slack = await self._ctx.slack_for(batch.workspace)
        for user in sorted({user for speakers in names.values() for user in speakers.values()}):
            name = await slack.user_name(user)
            if name is not None:
                found[user] = name
        return found

    async def _replace_files(self, batch: Batch, naming: SpeakerNaming, reply: Reply) -> bool:
        """Bring the reply's attached files in line with the names; whether an upload was
        refused for want of the ``files:write`` scope (the old files then stay)."""
        store, slack = self._ctx.store, await self._ctx.slack_for(batch.workspace)
        files = await store.reply_files(batch.id)
        if naming.replacing_since is None:
            # What a replacement that ended before a restart left to delete goes first.
            await self._retire(batch, files)
            if naming.files_version >= naming.version:
                return False
            await self._record_first_files(batch, reply, files)
            begun = await store.begin_file_replacement(batch.id, self._ctx.clock())
            assert begun is not None, "a naming is not deleted while its batch is shown"
        else:
            # Uploads of an attempt a crash cut short are in the thread but not recorded. Their
            # names may be older than these: they are retired like the files they replaced.
            known = {each.file_id for each in files}
            found = await slack.thread_files(
                channel=batch.channel_id, thread_ts=batch.thread_ts, since=naming.replacing_since
            )
            names = {attachment.filename for attachment in reply.attachments}
            orphans = [
                ReplyFile(each.file_id, each.name, retiring=True)
                for each in found
                if each.file_id not in known and each.name in names
            ]
            await store.record_reply_files(batch.id, orphans, self._ctx.clock())
        uploaded: list[ReplyFile] = []
        for attachment in reply.attachments:
            try:
                ids = await slack.upload_text(
                    channel=batch.channel_id,
                    thread_ts=batch.thread_ts,
                    filename=attachment.filename,
                    title=attachment.title,
                    content=attachment.content,
                )
            except SlackApiError as exc:
                if slack_error_code(exc) != "missing_scope":
                    raise
                # Deleting the old files would leave none: they stay until an upload works.
                log.warning("batch %s: cannot replace its files: no files:write scope", batch.id)
                return True
            uploaded += [ReplyFile(file_id, attachment.filename) for file_id in ids]
        await store.finish_file_replacement(batch.id, uploaded, naming.version, self._ctx.clock())
        await self._retire(batch, await store.reply_files(batch.id))
        return False

    async def _record_first_files(
        self, batch: Batch, reply: Reply, files: Sequence[ReplyFile]
    ) -> None:
        """Make sure the files the reply was first posted with are recorded, to be replaced:
        a reply posted by an older version, or just before a crash, has some unrecorded. They
        are the bot's files of those names in the thread from the batch's start to its reply."""
        recorded = {each.filename for each in files}
        if all(attachment.filename in recorded for attachment in reply.attachments):
            return
        names = {attachment.filename for attachment in reply.attachments} - recorded
        found = await (await self._ctx.slack_for(batch.workspace)).thread_files(
            channel=batch.channel_id,
            thread_ts=batch.thread_ts,
            since=batch.created_at,
            until=batch.delivered_at,
        )
        first = [ReplyFile(each.file_id, each.name) for each in found if each.name in names]
        await self._ctx.store.record_reply_files(batch.id, first, self._ctx.clock())

    async def _retire(self, batch: Batch, files: Sequence[ReplyFile]) -> None:
        """Delete those of ``files`` that are retiring."""
        for each in files:
            if not each.retiring:
                continue
            try:
                await (await self._ctx.slack_for(batch.workspace)).delete_file(each.file_id)
            except SlackApiError as exc:
                code = slack_error_code(exc)
                if code not in ("cant_delete_file", "missing_scope"):
                    raise
                # Nothing will change that: the file stays, and is not asked about again.
                log.warning("batch %s: cannot delete file %s: %s", batch.id, each.file_id, code)
            await self._ctx.store.forget_reply_files(batch.id, [each.file_id], self._ctx.clock())

    async def _done(self, naming: SpeakerNaming) -> None:
        await self._ctx.store.record_names_shown(naming.batch_id, naming.version, self._ctx.clock())

    async def _failed(self, naming: SpeakerNaming, error: TranscribeError) -> None:
        now = self._ctx.clock()
        decision = self._ctx.retry.decide(
            error, attempts=naming.attempts, since=naming.failing_since, now=now
        )
        if isinstance(decision, Fail):
            log.error(
                "batch %s: cannot show the speakers' names (%s); giving up",
                naming.batch_id,
                decision.error.detail,
            )
            await self._done(naming)
            return
        if isinstance(decision, Wait):
            # Not a failure of its own (its workspace cannot be reached): no attempt counted.
            attempts, retry_at, since = naming.attempts, decision.until, decision.since or now
        else:
            attempts, retry_at, since = decision.attempts, decision.at, decision.since
            log.warning(
                "batch %s: naming the speakers failed (%s); retrying", naming.batch_id, error
            )
        await self._ctx.store.schedule_naming_retry(
            naming.batch_id, attempts=attempts, retry_at=retry_at, failing_since=since, now=now
        )
