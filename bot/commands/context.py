"""What every subcommand works with, and what it gives back to the listener."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.intake import Intake
from bot.messages import REACTION_WORKING
from bot.slack_api import SlackGateway
from bot.slack_text import Mrkdwn
from storage.models import Batch
from storage.store import Store


class CommandError(Exception):
    """A request that cannot be done as asked; ``text`` says why, for the person asking."""

    def __init__(self, text: Mrkdwn) -> None:
        super().__init__(text)
        self.text = text


@dataclass
class Outcome:
    """What an entry point does once Slack has its ack."""

    #: The answer, visible only to the person who asked; None for no answer.
    text: Mrkdwn | None = None
    #: Slack calls that come after the ack (reactions) and a nudge to the poll cycle.
    follow_up: Callable[[], Awaitable[None]] | None = None
    #: An answer that takes Slack calls to put together: made after the ack, then sent as
    #: ``text`` is.
    answer_later: Callable[[], Awaitable[Mrkdwn]] | None = None


@dataclass(frozen=True)
class CommandContext:
    """What the subcommands read, write and call: made by :class:`Commands` for each request,
    with the gateway of the request's workspace."""

    store: Store
    intake: Intake
    slack: SlackGateway
    #: Only providers with credentials: a channel can choose among these alone.
    providers: Collection[str]
    default_provider: str
    clock: Callable[[], datetime]
    #: Nudges the poll cycle to look at new work now.
    kick: Callable[[], None]
    #: Words less sure than this are marked, where a channel asked for it.
    confidence_threshold: float = 0.5

    def started(self, batch: Batch) -> Callable[[], Awaitable[None]]:
        """The follow-up of a new batch: the cycle is nudged and its message marked as worked on."""

        async def follow_up() -> None:
            self.kick()
            await self.slack.add_reaction(batch.channel_id, batch.message_ts, REACTION_WORKING)

        return follow_up


def text_or_none(value: Any) -> str | None:
    return str(value) if value else None
