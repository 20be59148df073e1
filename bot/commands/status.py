"""``/transcribe status``: what is being transcribed in a channel, and what finished last."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from bot.commands.context import CommandContext
from bot.commands.transcript_settings import status_lines
from bot.messages import answers
from bot.providers import registry
from bot.slack_text import Mrkdwn, join, link, mrkdwn
from storage.models import Batch, BatchState, Job, JobState, Workspace

#: Finished batches ``status`` lists.
STATUS_FINISHED = 10
#: Running batches ``status`` lists before summing up the rest.
STATUS_RUNNING = 20


async def status(ctx: CommandContext, workspace: Workspace, channel: str) -> Mrkdwn:
    """The answer; it takes one Slack call per finished batch whose link is not known yet."""
    now = ctx.clock()
    running = await ctx.store.running_batches(workspace, channel)
    finished = await ctx.store.finished_batches(workspace, channel, STATUS_FINISHED)
    jobs = await ctx.store.jobs_of_batches([b.id for b in [*running, *finished]])
    links = await asyncio.gather(
        *(
            ctx.slack.permalink(batch.channel_id, batch.reply_ts or batch.thread_ts)
            for batch in finished
        )
    )

    lines = [answers.STATUS_RUNNING_HEADING]
    if not running:
        lines.append(answers.NOTHING_RUNNING)
    for batch in running[:STATUS_RUNNING]:
        lines.append(running_line(batch, jobs[batch.id], now))
    if len(running) > STATUS_RUNNING:
        lines.append(answers.and_more_running(len(running) - STATUS_RUNNING))
    lines.append(answers.finished_heading(STATUS_FINISHED))
    if not finished:
        lines.append(answers.NOTHING_FINISHED)
    for batch, address in zip(finished, links, strict=True):
        lines.append(finished_line(batch, jobs[batch.id], now, address))
    settings = await ctx.store.channel_settings(workspace, channel)
    if settings.language_hints:
        hints = answers.hints_shown(settings.language_hints, settings.language_hints_strict)
        lines.append(answers.hints_for_new_work(hints))
    lines += status_lines(ctx, settings)
    return join("\n", lines)


def running_line(batch: Batch, jobs: Sequence[Job], now: datetime) -> Mrkdwn:
    files = answers.files_with_states(
        [(job.filename, job.state) for job in jobs if job.state is not JobState.SKIPPED]
    )
    parts = [mrkdwn("`{}` {}", batch.id, files or answers.NO_FILES)]
    if batch.user_id:
        parts.append(answers.shared_by(batch.user_id))
    parts.append(answers.started_ago((now - batch.created_at).total_seconds()))
    if batch.state is BatchState.DELIVERING:
        parts.append(answers.POSTING_THE_REPLY)
    else:
        etas = [
            job.provider_eta_at
            for job in jobs
            if job.provider_eta_at is not None and not job.state.is_terminal
        ]
        if etas:
            left = (max(etas) - now).total_seconds()
            parts.append(answers.provider_expects(registry.label_of(batch.provider), left))
    return mrkdwn("• {}", join(" · ", parts))


def finished_line(batch: Batch, jobs: Sequence[Job], now: datetime, address: str | None) -> Mrkdwn:
    """One finished batch, its id linked to its reply (to its thread before a reply) when Slack
    gave the link."""
    reported = [job for job in jobs if job.state is not JobState.SKIPPED]
    failed = sum(job.state is JobState.FAILED for job in reported)
    outcome = answers.finished_outcome(batch.state, len(reported), failed)
    when = batch.delivered_at or batch.updated_at
    named = link(address, batch.id) if address else mrkdwn("`{}`", batch.id)
    return answers.finished_line(
        named,
        answers.file_names([job.filename for job in reported]),
        outcome,
        (now - when).total_seconds(),
    )
