"""The running bot's parts, as :func:`bot.app.build_runtime` (the one place that builds them)
puts them together; the HTTP server, the health report and the tests read them from here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from slack_bolt.app.async_app import AsyncApp

from bot.acks import AckFirst
from bot.commands import Commands
from bot.config import Settings
from bot.intake import Intake
from bot.providers.base import Provider
from bot.scheduler import PollScheduler
from bot.work import Engine
from bot.workspaces import SlackDirectory
from storage.models import Workspace
from storage.store import Store


@dataclass
class Runtime:
    settings: Settings
    store: Store
    http: httpx.AsyncClient
    #: Each workspace's Slack gateway and bot token.
    slack: SlackDirectory
    providers: dict[str, Provider]
    scheduler: PollScheduler
    engine: Engine
    intake: Intake
    commands: Commands
    acks: AckFirst
    bolt: AsyncApp
    clock: Callable[[], datetime]
    #: The port the HTTP server listens on (useful when ``PORT=0`` picks a free one).
    port: int = 0
    #: With one static bot token: the workspace it signs in to, once Slack has said so.
    own_workspace: Workspace | None = None

    async def run_cycle(self) -> None:
        """One poll cycle, once the requests being answered have their acks."""
        await self.acks.after_acks()
        await self.engine.run_cycle()

    async def aclose(self) -> None:
        """Close what :func:`bot.app.build_runtime` opened: transfers, HTTP clients, the
        database."""
        await self.engine.stop()
        await self.http.aclose()
        await self.slack.aclose()
        await self.store.close()
