"""Starting and stopping work from ``/transcribe``: links, ``retry`` and ``cancel``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.commands.context import CommandContext, CommandError, Outcome
from bot.commands.parsing import parse_batch_id
from bot.media import link_filename
from bot.messages import REACTION_FAILED, REACTION_WORKING, answers
from bot.providers import registry
from bot.slack_api import slack_error_code
from bot.slack_ids import workspace_of
from storage.models import Batch, BatchState, JobState, Workspace

log = logging.getLogger(__name__)

#: Longest wait for the message that /transcribe <link> posts before it acks (Slack allows 3 s).
PRE_ACK_POST_SECONDS = 2.0


async def links(ctx: CommandContext, body: Mapping[str, Any], urls: Sequence[str]) -> Outcome:
    """Post the message the transcript will thread under, then record the batch: both before
    the ack."""
    channel = str(body.get("channel_id") or "")
    user = str(body.get("user_id") or "")
    text = answers.transcribing_links(user, [(url, link_filename(url)) for url in urls])
    # The thread needs a message to hang from, so the message comes first; the batch is
    # recorded right after it and before the ack. A crash in between leaves Slack without an
    # ack: the person sees the command fail and can run it again, rather than a silent loss.
    try:
        # Bounded: the ack is due within 3 s, and a rate-limited post would sleep past it.
        message_ts = await asyncio.wait_for(
            ctx.slack.post_message(channel=channel, text=text), PRE_ACK_POST_SECONDS
        )
    except SlackApiError as exc:
        log.warning("cannot post the /transcribe message in %s: %s", channel, exc)
        return Outcome(answers.cannot_post(slack_error_code(exc)))
    except TimeoutError:
        log.warning("posting the /transcribe message in %s took too long", channel)
        return Outcome(answers.SLACK_BUSY)
    try:
        batch = await ctx.intake.take_links(
            urls,
            channel=channel,
            workspace=workspace_of(body),
            user_id=user or None,
            message_ts=message_ts,
        )
    except Exception:
        # Without the batch the message would promise a transcript that never comes. The
        # command fails (no ack), so the person knows to run it again.
        with suppress(SlackApiError):
            await ctx.slack.update_text(
                channel=channel, ts=message_ts, text=answers.could_not_start(user)
            )
        raise
    return Outcome(answers.started_links(batch.id), ctx.started(batch))


async def retry(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Outcome:
    """Transcribe the failed files of a batch again, as a new batch in the same thread."""
    if len(args) > 1:
        raise CommandError(answers.one_batch_only("retry"))
    failed = await _batch_to_retry(ctx, workspace, channel, args[0] if args else None)
    failed_jobs = [
        job for job in await ctx.store.jobs_of(failed.id) if job.state is JobState.FAILED
    ]
    if not failed_jobs:
        raise CommandError(answers.no_failed_files(failed.id))
    running = await ctx.store.active_batch_for_message(workspace, channel, failed.message_ts)
    if running is not None:
        raise CommandError(answers.already_working_on_it(running.id))
    batch = await ctx.intake.resubmit(failed, failed_jobs)

    async def follow_up() -> None:
        ctx.kick()
        await ctx.slack.remove_reaction(channel, batch.message_ts, REACTION_FAILED)
        await ctx.slack.add_reaction(channel, batch.message_ts, REACTION_WORKING)

    return Outcome(
        answers.resubmitted(
            failed.id,
            batch.id,
            registry.label_of(batch.provider),
            [job.filename for job in failed_jobs],
        ),
        follow_up,
    )


async def _batch_to_retry(
    ctx: CommandContext, workspace: Workspace, channel: str, typed: str | None
) -> Batch:
    """The batch named, if it can be retried, or else the channel's last failed batch."""
    if typed is None:
        found = await ctx.store.last_failed_batch(workspace, channel)
        if found is None:
            raise CommandError(answers.NOTHING_TO_RETRY)
        return found
    failed = await batch_in_channel(ctx, workspace, channel, typed)
    if failed.state in (BatchState.OPEN, BatchState.DELIVERING):
        raise CommandError(answers.still_running(failed.id))
    if failed.state is BatchState.CANCELLED:
        raise CommandError(answers.was_cancelled(failed.id))
    return failed


async def cancel(
    ctx: CommandContext, workspace: Workspace, channel: str, args: Sequence[str]
) -> Outcome:
    """Stop a running batch, unless its reply is already being posted."""
    if len(args) > 1:
        raise CommandError(answers.one_batch_only("cancel"))
    others = 0
    if args:
        batch = await batch_in_channel(ctx, workspace, channel, args[0])
    else:
        running = [
            b
            for b in await ctx.store.running_batches(workspace, channel)
            if b.state is BatchState.OPEN
        ]
        if not running:
            raise CommandError(answers.NOTHING_RUNNING_TO_CANCEL)
        batch, others = running[-1], len(running) - 1
    # Conditional: if the pipeline has begun posting the reply meanwhile, it wins.
    cancelled = batch.state is BatchState.OPEN and await ctx.store.cancel_batch(
        batch.id, ctx.clock()
    )
    if not cancelled:
        current = await ctx.store.get_batch(batch.id)
        state = current.state if current is not None else batch.state
        if state is BatchState.DELIVERING:
            raise CommandError(answers.too_late_to_cancel(batch.id))
        raise CommandError(answers.already_finished(batch.id, state))
    jobs = await ctx.store.jobs_of(batch.id)

    async def follow_up() -> None:
        await ctx.slack.remove_reaction(channel, batch.message_ts, REACTION_WORKING)

    names = answers.file_names([job.filename for job in jobs])
    return Outcome(answers.cancelled(batch.id, names, others), follow_up)


async def batch_in_channel(
    ctx: CommandContext, workspace: Workspace, channel: str, typed: str
) -> Batch:
    batch_id = parse_batch_id(typed)
    batch = await ctx.store.get_batch(batch_id)
    # Another channel's batch is not this channel's business, not even its existence; nor is
    # another workspace's, even in the same channel (Slack Connect).
    if batch is None or batch.channel_id != channel or (batch.team_id or "") != workspace.team_id:
        raise CommandError(answers.no_such_batch(batch_id))
    return batch
