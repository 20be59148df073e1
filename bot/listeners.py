"""What the bot does with each kind of Slack request: the Bolt listeners.

They stay thin: intake and :mod:`bot.commands` decide; a listener only orders the work around
Slack's ack. The names registered here are the single source of truth for what ``manifest.yml``
must declare (a test holds the two together).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.acks import AckFirst
from bot.commands import COMMAND, Commands, Outcome
from bot.commands.speakers import NAME_SPEAKERS_VIEW
from bot.intake import Intake
from bot.messages import REACTION_WORKING, answers
from bot.rendering import NAME_SPEAKERS_ACTION
from bot.slack_ids import workspace_of
from bot.workspaces import SlackDirectory
from storage.store import Store

log = logging.getLogger(__name__)

#: Events API event types the app listens to. ``message`` covers the manifest's ``message.*``
#: subscriptions (channels, private channels, DMs, group DMs).
EVENTS = ("message", "app_mention")
#: Slash commands.
COMMANDS = (COMMAND,)
#: ``callback_id`` of each message shortcut.
MESSAGE_SHORTCUTS = ("transcribe_message",)
#: ``action_id`` of each button in the app's messages (Slack sends their presses to the
#: interactivity URL, as it does the shortcut's).
BLOCK_ACTIONS = (NAME_SPEAKERS_ACTION,)
#: ``callback_id`` of each form (modal) whose submission the app answers.
VIEW_SUBMISSIONS = (NAME_SPEAKERS_VIEW,)

MESSAGE_EVENT, MENTION_EVENT = EVENTS
(TRANSCRIBE_SHORTCUT,) = MESSAGE_SHORTCUTS


def register_listeners(
    bolt: AsyncApp,
    *,
    store: Store,
    slack: SlackDirectory,
    intake: Intake,
    commands: Commands,
    acks: AckFirst,
    kick: Callable[[], None],
    clock: Callable[[], datetime],
) -> None:
    """Register every listener on ``bolt``; ``kick`` asks for a poll cycle now."""
    listen_for_shared_files(bolt, slack=slack, intake=intake, acks=acks, kick=kick)
    listen_for_mentions(bolt, store=store, commands=commands, clock=clock)
    listen_for_commands(bolt, commands)
    listen_for_speaker_names(bolt, commands)


def listen_for_shared_files(
    bolt: AsyncApp,
    *,
    slack: SlackDirectory,
    intake: Intake,
    acks: AckFirst,
    kick: Callable[[], None],
) -> None:
    """Uploads and pasted links."""

    async def record_shared_files(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Any]
    ) -> None:
        # Runs before the ack: once Slack has its ack it will not redeliver, so the work must
        # be in the database first. No network I/O here, only one SQLite transaction.
        event = body.get("event") or {}
        context["batch"] = await intake.take_message(event, workspace_of(body))
        await next()

    async def on_message(context: AsyncBoltContext) -> None:
        batch = context.get("batch")
        if batch is None:
            return
        kick()
        await acks.after_acks()
        gateway = await slack.gateway(batch.workspace)
        await gateway.add_reaction(batch.channel_id, batch.message_ts, REACTION_WORKING)

    bolt.event(MESSAGE_EVENT, middleware=[record_shared_files])(on_message)


def listen_for_mentions(
    bolt: AsyncApp, *, store: Store, commands: Commands, clock: Callable[[], datetime]
) -> None:
    async def remember_mention(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Any]
    ) -> None:
        # Before the ack, durably: Slack redelivers an event whose ack was late, and a second
        # delivery of "@threadscribe transcribe" must not start a second batch. ``next`` is always
        # called: a listener that does not match would make Bolt answer 404, and Slack retry.
        event_id = body.get("event_id")
        context["duplicate"] = bool(event_id) and not await store.remember_event(
            str(event_id), clock()
        )
        await next()

    async def on_mention(
        body: dict[str, Any], event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        if context.get("duplicate"):
            log.info("mention event %s was handled before; ignoring", body.get("event_id"))
            return
        await commands.mention(event, body)

    bolt.event(MENTION_EVENT, middleware=[remember_mention])(on_mention)


def listen_for_commands(bolt: AsyncApp, commands: Commands) -> None:
    """``/transcribe`` and the message shortcut."""

    async def on_command(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        # Settings and batches are written before the ack; answers and reactions come after.
        outcome = await commands.slash(body)
        await ack()
        await finish(outcome, respond)

    async def on_shortcut(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        outcome = await commands.shortcut(body)
        await ack()
        await finish(outcome, respond)

    for command in COMMANDS:
        bolt.command(command)(on_command)
    for callback_id in MESSAGE_SHORTCUTS:
        bolt.message_shortcut(callback_id)(on_shortcut)


def listen_for_speaker_names(bolt: AsyncApp, commands: Commands) -> None:
    """The *Name speakers* button under a reply, and the form it opens."""

    async def on_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        # Nothing to record first: the ack goes at once, and the form must open within
        # three seconds of the press.
        await ack()
        answer = await commands.name_speakers_pressed(body)
        if answer is not None:
            try:
                await respond(text=answer, response_type="ephemeral", replace_original=False)
            except Exception:
                log.exception("could not answer through the response_url")

    async def on_form(ack: AsyncAck, body: dict[str, Any]) -> None:
        # The names are saved before the ack, which closes the form (or shows why not).
        answer = await commands.speakers_form_submitted(body)
        await ack(**answer.ack)
        if answer.follow_up is not None:
            await answer.follow_up()

    for action_id in BLOCK_ACTIONS:
        bolt.action(action_id)(on_button)
    for callback_id in VIEW_SUBMISSIONS:
        bolt.view(callback_id)(on_form)


async def finish(outcome: Outcome, respond: AsyncRespond) -> None:
    """Carry out what comes after the ack. Each part is attempted: the work is already recorded,
    so a failed reaction or an expired ``response_url`` must not hide the rest."""
    if outcome.follow_up is not None:
        try:
            await outcome.follow_up()
        except Exception:
            log.exception("follow-up after the ack failed")
    text = outcome.text
    if outcome.answer_later is not None:
        try:
            text = await outcome.answer_later()
        except Exception:
            log.exception("could not put the answer together")
            text = answers.ANSWER_FAILED
    if text is not None:
        try:
            await respond(text=text, response_type="ephemeral")
        except Exception:
            log.exception("could not answer through the response_url")
