"""``/transcribe``: its help, and which subcommand a command's words ask for."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

from bot.commands import transcript_settings
from bot.commands.context import CommandContext, CommandError, Outcome
from bot.commands.parsing import MAX_COMMAND_LINKS, looks_like_link, parse_links, split_command
from bot.commands.settings import auto, language, provider
from bot.commands.status import STATUS_FINISHED, status
from bot.commands.work import cancel, links, retry
from bot.messages import answers
from bot.providers import registry
from bot.slack_ids import workspace_of
from bot.slack_text import Mrkdwn, unescape


def help_text() -> Mrkdwn:
    """What ``/transcribe help`` answers; it names every registered provider."""
    return answers.help_text(
        registry.names(),
        max_links=MAX_COMMAND_LINKS,
        finished_shown=STATUS_FINISHED,
        customizing=transcript_settings.customizing_labels(),
    )


HELP = help_text()


async def slash(ctx: CommandContext, body: Mapping[str, Any]) -> Outcome:
    """Carry out one ``/transcribe``; everything before the returned follow-up is durable."""
    channel = str(body.get("channel_id") or "")
    workspace = workspace_of(body)
    # Slack sends &, < and > as entities. Decoded here, once, everything after works on the
    # words as typed, and the answer escapes them once on the way out.
    first, args = split_command(unescape(str(body.get("text") or "")))
    subcommand = first.lower()
    try:
        if subcommand in ("", "help"):
            return Outcome(help_text())
        if looks_like_link(first):
            return await links(ctx, body, parse_links([first, *args]))
        if subcommand == "status":
            # Its links come from Slack (one call each, when not known yet): after the ack.
            return Outcome(answer_later=partial(status, ctx, workspace, channel))
        if subcommand == "provider":
            return Outcome(await provider(ctx, workspace, channel, args))
        if subcommand == "auto":
            return Outcome(await auto(ctx, workspace, channel, args))
        if subcommand in ("language", "languages"):
            return Outcome(await language(ctx, workspace, channel, args))
        if subcommand == "vocabulary":
            return Outcome(await transcript_settings.vocabulary(ctx, workspace, channel, args))
        if subcommand == "context":
            return Outcome(await transcript_settings.context(ctx, workspace, channel, args))
        if subcommand in ("translate", "translation"):
            return Outcome(await transcript_settings.translate(ctx, workspace, channel, args))
        if subcommand == "confidence":
            return Outcome(await transcript_settings.confidence(ctx, workspace, channel, args))
        if subcommand == "retry":
            return await retry(ctx, workspace, channel, args)
        if subcommand == "cancel":
            return await cancel(ctx, workspace, channel, args)
    except CommandError as exc:
        return Outcome(exc.text)
    return Outcome(answers.unknown_subcommand(first, HELP))
