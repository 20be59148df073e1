"""Transcribing a message on request: the *Transcribe* message shortcut, on any message, and
``@threadscribe transcribe`` in a thread, for the thread's first message. Both work whatever the
channel's ``auto`` setting. ``@threadscribe speakers …`` in a thread names the speakers of its
transcript (:mod:`bot.commands.speakers`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.commands.context import CommandContext, Outcome, text_or_none
from bot.commands.parsing import asks_to_name_speakers, asks_to_transcribe
from bot.commands.speakers import named_in_words
from bot.intake import audio_links_in_text
from bot.messages import answers
from bot.messages import speakers as speaker_words
from bot.slack_api import slack_error_code
from bot.slack_ids import workspace_of
from bot.slack_text import Mrkdwn
from storage.models import Workspace

log = logging.getLogger(__name__)


async def shortcut(ctx: CommandContext, payload: Mapping[str, Any]) -> Outcome:
    """Record the media of the message the *Transcribe* shortcut was run on."""
    message = payload.get("message") or {}
    requested = await ctx.intake.take_request(
        message,
        channel=str((payload.get("channel") or {}).get("id") or ""),
        workspace=workspace_of(payload),
        user_id=text_or_none((payload.get("user") or {}).get("id")),
        source="shortcut",
    )
    if requested.running is not None:
        return Outcome(answers.already_on_this_message(requested.running.id))
    if requested.batch is None:
        return Outcome(answers.NOTHING_IN_MESSAGE)
    return Outcome(None, ctx.started(requested.batch))


async def mention(ctx: CommandContext, event: Mapping[str, Any], workspace: Workspace) -> None:
    """Answer ``@threadscribe …``; runs after the ack, as it reads the thread from Slack."""
    channel = str(event.get("channel") or "")
    ts = str(event.get("ts") or "")
    thread_ts = text_or_none(event.get("thread_ts"))
    text = str(event.get("text") or "")
    if event.get("files") or audio_links_in_text(text):
        settings = await ctx.store.channel_settings(workspace, channel)
        if settings.auto:
            return  # the message itself is being transcribed automatically
    if asks_to_name_speakers(text):
        in_thread = thread_ts is not None and thread_ts != ts
        answer = (
            await named_in_words(
                ctx, workspace, channel=channel, thread_ts=thread_ts or ts, event=event
            )
            if in_thread
            else speaker_words.USAGE
        )
        if answer is not None:
            await _say(ctx, channel, thread_ts or ts, answer)
        return
    if thread_ts is None or thread_ts == ts or not asks_to_transcribe(text):
        await _say(ctx, channel, thread_ts or ts, answers.MENTION_HELP)
        return
    try:
        parent = await ctx.slack.thread_parent(channel=channel, thread_ts=thread_ts)
    except SlackApiError as exc:
        log.warning("cannot read thread %s in %s: %s", thread_ts, channel, exc)
        await _say(ctx, channel, thread_ts, answers.cannot_read_thread(slack_error_code(exc)))
        return
    requested = await ctx.intake.take_request(
        parent,
        channel=channel,
        workspace=workspace,
        user_id=text_or_none(event.get("user")),
        source="mention",
    )
    if requested.running is not None:
        await _say(ctx, channel, thread_ts, answers.already_on_that_message(requested.running.id))
    elif requested.batch is None:
        await _say(ctx, channel, thread_ts, answers.NOTHING_IN_PARENT)
    else:
        await ctx.started(requested.batch)()


async def _say(ctx: CommandContext, channel: str, thread_ts: str, text: Mrkdwn) -> None:
    try:
        await ctx.slack.post_message(channel=channel, thread_ts=thread_ts, text=text)
    except SlackApiError as exc:
        log.warning("cannot answer in %s: %s", channel, slack_error_code(exc))
