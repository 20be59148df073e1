"""Which Slack gateway, and which bot token, each workspace's work uses.

A single-workspace bot (``SLACK_BOT_TOKEN``) has one gateway and one token, whatever the
workspace. A bot installed in many workspaces through OAuth reads each workspace's installation
(its own, else its Enterprise Grid organisation's) from the store on every ask, refreshes a
rotating bot token before it expires, and never uses one past its expiry. Each token gets a
client of its own, all on one HTTP session.

A workspace with no installation, a revoked token, or an expired one that nothing can refresh
raises :class:`~bot.errors.WorkspaceGone`: its work waits without a call to Slack.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
from pydantic import SecretStr
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.errors import TemporaryError, WorkspaceGone
from bot.logs import SecretRegistry, learned_secrets
from bot.slack_api import SlackGateway, build_web_client, slack_error_code
from storage.models import SlackInstallation, Workspace, WorkspaceKey
from storage.store import Store

log = logging.getLogger(__name__)

#: A rotating token is refreshed once less than this is left of it (as Bolt does by default).
REFRESH_BEFORE = timedelta(hours=2)
#: Gateways kept for tokens no longer current, at most (each holds only a client object).
GATEWAYS_KEPT = 1024


class SlackDirectory(Protocol):
    """Each workspace's gateway and bot token."""

    async def gateway(self, workspace: Workspace) -> SlackGateway: ...

    async def file_token(self, workspace: Workspace) -> SecretStr: ...

    async def aclose(self) -> None: ...


class OneWorkspace:
    """The single-workspace bot: one gateway and one bot token for every workspace."""

    def __init__(self, gateway: SlackGateway, token: SecretStr) -> None:
        self._gateway = gateway
        self._token = token

    @property
    def only(self) -> SlackGateway:
        """The one gateway."""
        return self._gateway

    async def gateway(self, workspace: Workspace) -> SlackGateway:
        return self._gateway

    async def file_token(self, workspace: Workspace) -> SecretStr:
        return self._token

    async def aclose(self) -> None:
        await self._gateway.aclose()


@dataclass(frozen=True)
class _Current:
    """A workspace's installation with a bot token good for now."""

    installation: SlackInstallation
    token: str = field(repr=False)


class InstalledWorkspaces:
    """The workspaces the app is installed in through OAuth, each with its own bot token."""

    def __init__(
        self,
        store: Store,
        *,
        api_url: str,
        session: aiohttp.ClientSession,
        client_id: str,
        client_secret: SecretStr,
        now: Callable[[], datetime],
        secret_registry: SecretRegistry = learned_secrets,
        refresh_before: timedelta = REFRESH_BEFORE,
    ) -> None:
        self._store = store
        self._api_url = api_url
        self._session = session
        self._client_id = client_id
        self._client_secret = client_secret
        self._now = now
        self._secrets = secret_registry
        self._refresh_before = refresh_before
        #: The app's own client (no bot token): token refreshes.
        self.app = SlackGateway(build_web_client(None, api_url, session))
        #: A gateway per bot token; a token's gateway is handed out only while it is current.
        self._gateways: dict[str, SlackGateway] = {}
        #: One refresh at a time per installation: a refresh token is good once.
        self._refreshing: dict[WorkspaceKey, asyncio.Lock] = {}

    async def gateway(self, workspace: Workspace) -> SlackGateway:
        current = await self.current(workspace)
        gateway = self._gateways.get(current.token)
        if gateway is None:
            if len(self._gateways) >= GATEWAYS_KEPT:
                self._gateways.pop(next(iter(self._gateways)))
            gateway = SlackGateway(
                build_web_client(
                    current.token, self._api_url, self._session, wait_out_rate_limits=False
                )
            )
            self._gateways[current.token] = gateway
        return gateway

    async def file_token(self, workspace: Workspace) -> SecretStr:
        return SecretStr((await self.current(workspace)).token)

    async def aclose(self) -> None:
        await self._session.close()

    async def installation(self, workspace: Workspace) -> SlackInstallation | None:
        """The workspace's own installation, else its organisation's."""
        if workspace.team_id:
            own = await self._store.installation(
                WorkspaceKey.of(
                    workspace.enterprise_id, workspace.team_id, is_enterprise_install=False
                )
            )
            if own is not None:
                return own
        if workspace.enterprise_id:
            return await self._store.installation(
                WorkspaceKey.of(workspace.enterprise_id, None, is_enterprise_install=True)
            )
        return None

    async def current(self, workspace: Workspace) -> _Current:
        """The workspace's installation and a bot token good for now, refreshed first when
        little is left of it; raises :class:`WorkspaceGone` when there is none."""
        found = self._usable(workspace, await self.installation(workspace))
        if not self._due_for_refresh(found):
            return self._checked(workspace, found)
        lock = self._refreshing.setdefault(found.key, asyncio.Lock())
        async with lock:
            # Another task may have refreshed it while this one waited.
            found = self._usable(workspace, await self.installation(workspace))
            if self._due_for_refresh(found):
                found = await self._refresh(workspace, found)
        return self._checked(workspace, found)

    def _usable(self, workspace: Workspace, found: SlackInstallation | None) -> SlackInstallation:
        if found is None:
            raise WorkspaceGone(f"the app is not installed in {_described(workspace)}")
        if found.bot_token is None:
            raise WorkspaceGone(f"the bot token of {_described(workspace)} was revoked")
        self._secrets.add(found.bot_token, found.bot_refresh_token)
        return found

    def _due_for_refresh(self, found: SlackInstallation) -> bool:
        expires = found.bot_token_expires_at
        return expires is not None and expires - self._now() <= self._refresh_before

    def _checked(self, workspace: Workspace, found: SlackInstallation) -> _Current:
        """``found``'s token, unless it has expired: a token is never used past its expiry."""
        expires = found.bot_token_expires_at
        if found.bot_token is None or (expires is not None and expires <= self._now()):
            raise WorkspaceGone(
                f"the bot token of {_described(workspace)} expired and could not be refreshed"
            )
        return _Current(found, found.bot_token)

    async def _refresh(self, workspace: Workspace, found: SlackInstallation) -> SlackInstallation:
        """Get the next bot token and keep it; ``found`` as it is when it cannot be refreshed
        (its token is then used while it lasts, or the workspace is gone)."""
        if found.bot_refresh_token is None:
            return found
        try:
            refreshed = await self.app.refresh_bot_token(
                client_id=self._client_id,
                client_secret=self._client_secret.get_secret_value(),
                refresh_token=found.bot_refresh_token,
            )
        except SlackApiError as exc:
            log.warning(
                "could not refresh the bot token of %s: %s",
                _described(workspace),
                slack_error_code(exc),
            )
            return found
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            if found.bot_token_expires_at is not None and found.bot_token_expires_at > self._now():
                return found  # still good for a while: try again on the next ask
            raise TemporaryError(f"bot token refresh failed: {exc!r}") from exc
        self._secrets.add(refreshed.bot_token, refreshed.refresh_token)
        now = self._now()
        expires_at = (
            None if refreshed.expires_in is None else now + timedelta(seconds=refreshed.expires_in)
        )
        kept = await self._store.record_rotated_bot_token(
            found.key,
            installed_at=found.installed_at,
            bot_token=refreshed.bot_token,
            bot_refresh_token=refreshed.refresh_token,
            expires_at=expires_at,
            now=now,
        )
        if not kept:
            # Deleted or replaced by a new install meanwhile: that one is what counts.
            log.info("bot token refreshed in %s for a replaced installation", _described(workspace))
            return self._usable(workspace, await self.installation(workspace))
        log.info("bot token refreshed in %s", _described(workspace))
        self._gateways.pop(found.bot_token or "", None)
        return await self._reread(workspace)

    async def _reread(self, workspace: Workspace) -> SlackInstallation:
        return self._usable(workspace, await self.installation(workspace))


class DirectoryAuthorize(AsyncAuthorize):
    """Bolt's authorize step on :class:`InstalledWorkspaces`: a request's listeners get the
    same current token as the work, refreshed in one place (a refresh token is good once)."""

    def __init__(self, directory: InstalledWorkspaces) -> None:
        self._directory = directory

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult | None:
        workspace = Workspace(team_id or "", enterprise_id)
        try:
            current = await self._directory.current(workspace)
        except WorkspaceGone as exc:
            log.info("request not authorized: %s", exc.detail)
            return None
        installation = current.installation
        return AuthorizeResult(
            enterprise_id=enterprise_id or installation.key.enterprise_id,
            team_id=team_id or installation.key.team_id,
            bot_user_id=installation.bot_user_id,
            bot_id=installation.bot_id,
            bot_token=current.token,
            bot_scopes=list(installation.bot_scopes),
            user_id=user_id,
        )


def _described(workspace: Workspace) -> str:
    inside = f" of organisation {workspace.enterprise_id}" if workspace.enterprise_id else ""
    return f"workspace {workspace.team_id or '(none)'}{inside}"
