"""The ways people ask the app for something, as the Bolt listeners call them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from bot.commands.context import CommandContext, Outcome
from bot.commands.message_requests import mention, shortcut
from bot.commands.slash import slash
from bot.commands.speakers import FormAnswer, button_pressed, form_submitted
from bot.intake import Intake
from bot.slack_ids import workspace_of
from bot.slack_text import Mrkdwn
from bot.workspaces import SlackDirectory
from storage.store import Store


class Commands:
    def __init__(
        self,
        *,
        store: Store,
        intake: Intake,
        slack: SlackDirectory,
        providers: Collection[str],
        default_provider: str,
        clock: Callable[[], datetime],
        kick: Callable[[], None],
        confidence_threshold: float = 0.5,
    ) -> None:
        self._workspaces = slack
        self._context = partial(
            CommandContext,
            store=store,
            intake=intake,
            providers=providers,
            default_provider=default_provider,
            clock=clock,
            kick=kick,
            confidence_threshold=confidence_threshold,
        )

    async def _for(self, body: Mapping[str, Any]) -> CommandContext:
        """The context of one request: Slack calls go to the request's workspace."""
        gateway = await self._workspaces.gateway(workspace_of(body))
        return self._context(slack=gateway)

    async def slash(self, body: Mapping[str, Any]) -> Outcome:
        """Carry out one ``/transcribe``; everything before the returned follow-up is durable."""
        return await slash(await self._for(body), body)

    async def shortcut(self, payload: Mapping[str, Any]) -> Outcome:
        """Record the media of the message the *Transcribe* shortcut was run on."""
        return await shortcut(await self._for(payload), payload)

    async def mention(self, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
        """Answer ``@threadscribe …`` (``event`` of the Events API ``body``); runs after the
        ack, as it reads the thread from Slack."""
        await mention(await self._for(body), event, workspace_of(body))

    async def name_speakers_pressed(self, payload: Mapping[str, Any]) -> Mrkdwn | None:
        """Open the form that names a reply's speakers; or what to tell whoever pressed the
        button, only them. Runs after the ack."""
        return await button_pressed(await self._for(payload), payload)

    async def speakers_form_submitted(self, payload: Mapping[str, Any]) -> FormAnswer:
        """Check and save the form's names, before the ack that the answer carries."""
        return await form_submitted(await self._for(payload), payload)
