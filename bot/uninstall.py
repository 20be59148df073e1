"""The app removed from a workspace: Slack's ``app_uninstalled`` and ``tokens_revoked`` events,
and what later requests from such a workspace get.

Either event (they come in either order, and each may be delivered again) removes the app from
the workspace, or from the whole organisation for an organisation-wide install. Before the ack,
in the database: the workspace's unfinished work is stopped and its text and settings erased
(:meth:`storage.store.Store.remove_workspace`, which keeps only anonymous counts and what the
clean-up needs), and its installation is deleted. After the ack: this process's transfers for it
stop, its spool files go, and the poll cycle is woken, whose clean-up deletes the providers'
copies (a transcription the provider is still working on as soon as the provider lets it).

A ``tokens_revoked`` that names no bot token (only users' tokens, which this bot-only app never
asks for) changes nothing.

Any other request from a workspace the app is not installed in (removed, or never installed)
is answered 200 with an empty body and dropped before Bolt sees it: Slack does not retry it,
nothing is recorded, and no Slack call is made for it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.slack_ids import workspace_of
from bot.workspaces import InstalledWorkspaces, SlackDirectory
from storage.models import Workspace, WorkspaceKey
from storage.store import Store

log = logging.getLogger(__name__)

#: The events that remove the app from a workspace (``manifest.distributed.yml`` subscribes
#: them).
APP_UNINSTALLED, TOKENS_REVOKED = UNINSTALL_EVENTS = ("app_uninstalled", "tokens_revoked")
#: Requests answered whatever the workspace: Slack's checks of the request URL.
_UNCHECKED_TYPES = frozenset({"url_verification", "ssl_check"})


def removed_by(body: Mapping[str, Any]) -> Workspace | None:
    """The workspace an ``app_uninstalled`` or ``tokens_revoked`` envelope removes the app from
    (``team_id`` ``''`` with the enterprise id: a whole organisation, for an organisation-wide
    install); None when it removes nothing (a revocation of users' tokens only, or no
    workspace named)."""
    event = body.get("event")
    if not isinstance(event, Mapping) or event.get("type") not in UNINSTALL_EVENTS:
        return None
    if event.get("type") == TOKENS_REVOKED:
        tokens = event.get("tokens")
        if not isinstance(tokens, Mapping) or not tokens.get("bot"):
            return None
    workspace = workspace_of(body)
    if _org_wide(body) or not workspace.team_id:
        workspace = Workspace("", workspace.enterprise_id)
    if not workspace.team_id and not workspace.enterprise_id:
        return None
    return workspace


def _org_wide(body: Mapping[str, Any]) -> bool:
    """Whether the envelope is for an organisation-wide install (as Bolt reads it: its first
    authorization's flag, else the envelope's)."""
    authorizations = body.get("authorizations")
    if isinstance(authorizations, list) and authorizations:
        first = authorizations[0]
        if isinstance(first, Mapping) and "is_enterprise_install" in first:
            return first.get("is_enterprise_install") in (True, "true")
    return body.get("is_enterprise_install") in (True, "true")


def is_uninstall_event(body: Mapping[str, Any]) -> bool:
    event = body.get("event")
    return (
        body.get("type") == "event_callback"
        and isinstance(event, Mapping)
        and event.get("type") in UNINSTALL_EVENTS
    )


def described(workspace: Workspace) -> str:
    if not workspace.team_id and not workspace.enterprise_id:
        return "no workspace named"
    if not workspace.team_id:
        return f"organisation {workspace.enterprise_id}"
    inside = f" of organisation {workspace.enterprise_id}" if workspace.enterprise_id else ""
    return f"workspace {workspace.team_id}{inside}"


class Uninstalls:
    """Removing the app from a workspace, and turning away what comes from one it is not in."""

    def __init__(
        self,
        *,
        store: Store,
        slack: SlackDirectory,
        clock: Callable[[], datetime],
        stop_work: Callable[[], Awaitable[object]],
    ) -> None:
        self._store = store
        self._slack = slack
        self._clock = clock
        self._stop_work = stop_work

    async def record(self, body: Mapping[str, Any]) -> Workspace | None:
        """Before the ack: stop and erase the work of the workspace ``body`` removes the app
        from, and delete its installation, in the database; the workspace, or None when the
        event removes nothing. A second delivery changes nothing."""
        workspace = removed_by(body)
        if workspace is None:
            log.info("tokens revoked for users only: the bot's installation stays")
            return None
        stopped = await self._store.remove_workspace(workspace, self._clock())
        deleted = False
        if isinstance(self._slack, InstalledWorkspaces):
            deleted = await self._store.delete_installation(
                WorkspaceKey.of(
                    workspace.enterprise_id,
                    workspace.team_id or None,
                    is_enterprise_install=not workspace.team_id,
                )
            )
            log.info(
                "the app was removed from %s: %d batch(es) stopped, its data erased%s",
                described(workspace),
                stopped,
                ", its installation deleted" if deleted else "",
            )
        else:
            log.error(
                "the app was removed from %s: %d batch(es) stopped and its data erased. "
                "SLACK_BOT_TOKEN no longer works there: to go on, install the app again and "
                "set the new bot token",
                described(workspace),
                stopped,
            )
        return workspace

    async def finish(self) -> None:
        """After the ack: stop this process's transfers for the removed work, delete its spool
        files, and wake the cycle, whose clean-up deletes the providers' copies."""
        await self._stop_work()

    async def admits(self, body: Mapping[str, Any]) -> bool:
        """Whether a request is for the app to handle: Slack's URL checks and the uninstall
        events always; anything else only from a workspace the app is installed in (with many
        workspaces: one with an installation whose bot token was not revoked; with one bot
        token: one not removed)."""
        if body.get("type") in _UNCHECKED_TYPES or is_uninstall_event(body):
            return True
        workspace = workspace_of(body)
        if isinstance(self._slack, InstalledWorkspaces):
            found = await self._slack.installation(workspace)
            return found is not None and found.bot_token is not None
        return not await self._store.workspace_removed(workspace)


class InstalledOnlyApp(AsyncApp):
    """Bolt, in front of which a request from a workspace the app is not installed in gets an
    empty 200 and goes no further (Bolt itself would answer it with an apology, posted to a
    command's ``response_url``, and log an error)."""

    def __init__(
        self, *, admits: Callable[[Mapping[str, Any]], Awaitable[bool]], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._admits = admits

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        if not await self._admits(req.body):
            log.info(
                "a request from %s, where the app is not installed: acknowledged and ignored",
                described(workspace_of(req.body)),
            )
            return BoltResponse(status=200, body="")
        return await super().async_dispatch(req)


def listen_for_uninstalls(bolt: AsyncApp, uninstalls: Uninstalls) -> None:
    """``app_uninstalled`` and ``tokens_revoked``: recorded before the ack (once Slack has its
    ack it does not deliver again), the rest after."""

    async def remove_first(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Any]
    ) -> None:
        context["removed"] = await uninstalls.record(body)
        await next()

    async def on_removed(context: AsyncBoltContext) -> None:
        if context.get("removed") is not None:
            await uninstalls.finish()

    for event in UNINSTALL_EVENTS:
        bolt.event(event, middleware=[remove_first])(on_removed)
