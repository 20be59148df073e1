"""What the bot does with each kind of Slack request: the Bolt listeners."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.pipeline import REACTION_WORKING

if TYPE_CHECKING:
    from bot.app import Runtime


def register_listeners(runtime: Runtime) -> None:
    bolt = runtime.bolt

    async def record_shared_files(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Any]
    ) -> None:
        # Runs before the ack: once Slack has its ack it will not redeliver, so the work must
        # be in the database first. No network I/O here, only one SQLite transaction.
        event = body.get("event") or {}
        context["batch"] = await runtime.intake.take_message(event, body.get("team_id"))
        await next()

    async def on_message(context: AsyncBoltContext) -> None:
        batch = context.get("batch")
        if batch is None:
            return
        runtime.scheduler.kick()
        await runtime.slack.add_reaction(batch.channel_id, batch.message_ts, REACTION_WORKING)

    bolt.event("message", middleware=[record_shared_files])(on_message)
