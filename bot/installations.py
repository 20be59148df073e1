"""slack-sdk's installation store and OAuth state store, kept in our own database through the
:class:`storage.store.Store`: what Bolt's OAuth flow and its token rotation read and write.

The app asks for bot scopes only, so an installation is its bot's: one per workspace, or per
Enterprise Grid organisation for an organisation-wide install. User tokens, which the app never
asks for, are not kept.

Every token read or saved here is added to the log filter's secrets (:data:`bot.logs
.learned_secrets`), and none is ever logged.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot.logs import SecretRegistry, learned_secrets
from storage.models import SlackInstallation, WorkspaceKey
from storage.store import Store

log = logging.getLogger(__name__)

#: Set on every installation and bot read from the store: the installation it was read from.
#: slack-sdk's token rotation copies it with the rest, so saving the copy is known for what it
#: is, new tokens for that installation, and never records an installation back.
STORED_AT = "threadscribe_installed_at"

#: How long an install started on the install page may take to come back to the redirect.
STATE_SECONDS = 600


class StoreInstallations(AsyncInstallationStore):
    """:class:`AsyncInstallationStore` on the Store: installations found as Bolt asks for them
    (an organisation-wide install by its enterprise id alone), saved by the OAuth flow, their
    tokens replaced by rotation, deleted at uninstall. Nothing is cached: each find reads the
    database, so a token is never used from memory past its expiry."""

    def __init__(
        self,
        store: Store,
        *,
        now: Callable[[], datetime],
        secret_registry: SecretRegistry = learned_secrets,
    ) -> None:
        self._store = store
        self._now = now
        self._secrets = secret_registry

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        """Record an installation the OAuth flow has just made, in place of the workspace's
        earlier one; for one read from here (token rotation), keep only its new tokens."""
        installed = await self._save(
            installation.to_bot(),
            installer_user_id=installation.user_id,
            enterprise_url=installation.enterprise_url,
        )
        if installed is not None:
            log.info("installed in %s", _described(installed))

    async def async_save_bot(self, bot: Bot) -> None:
        """Keep a bot's new tokens (token rotation of a bot read from here); a bot never read
        from here is recorded as an installation without an installer."""
        await self._save(bot, installer_user_id=None, enterprise_url=None)

    async def _save(
        self, bot: Bot, *, installer_user_id: str | None, enterprise_url: str | None
    ) -> WorkspaceKey | None:
        """Keep ``bot``'s new tokens if it was read from here; else record it as a new
        installation, and return its key."""
        key = WorkspaceKey.of(
            bot.enterprise_id, bot.team_id, is_enterprise_install=bot.is_enterprise_install
        )
        self._secrets.add(bot.bot_token, bot.bot_refresh_token)
        if STORED_AT in bot.custom_values:
            await self._save_rotated(
                key,
                bot.custom_values[STORED_AT],
                bot.bot_token,
                bot.bot_refresh_token,
                bot.bot_token_expires_at,
            )
            return None
        await self._store.save_installation(
            SlackInstallation(
                key=key,
                bot_token=bot.bot_token,
                bot_user_id=bot.bot_user_id,
                bot_id=bot.bot_id,
                bot_scopes=tuple(bot.bot_scopes or ()),
                installer_user_id=installer_user_id,
                installed_at=datetime.fromtimestamp(bot.installed_at, UTC),
                bot_refresh_token=bot.bot_refresh_token,
                bot_token_expires_at=_time_of(bot.bot_token_expires_at),
                app_id=bot.app_id,
                team_name=bot.team_name,
                enterprise_name=bot.enterprise_name,
                enterprise_url=enterprise_url,
            ),
            self._now(),
        )
        return key

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The workspace's installation (the organisation's, for an organisation-wide install,
        whichever workspace asks). Asked for a user's, it is found only for the user who
        installed the app: no one else has an installation of their own."""
        key = WorkspaceKey.of(
            enterprise_id, team_id, is_enterprise_install=bool(is_enterprise_install)
        )
        found = await self._store.installation(key)
        if found is None or (user_id is not None and user_id != found.installer_user_id):
            return None
        self._secrets.add(found.bot_token, found.bot_refresh_token)
        return Installation(
            app_id=found.app_id,
            enterprise_id=found.key.enterprise_id,
            enterprise_name=found.enterprise_name,
            enterprise_url=found.enterprise_url,
            team_id=found.key.team_id,
            team_name=found.team_name,
            bot_token=found.bot_token,
            bot_id=found.bot_id,
            bot_user_id=found.bot_user_id,
            bot_scopes=list(found.bot_scopes),
            bot_refresh_token=found.bot_refresh_token,
            bot_token_expires_at=_seconds_of(found.bot_token_expires_at),
            user_id=found.installer_user_id or "",
            is_enterprise_install=found.key.is_enterprise_install,
            token_type="bot",
            installed_at=found.installed_at.timestamp(),
            custom_values={STORED_AT: found.installed_at.isoformat()},
        )

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        """The workspace's (or organisation's) bot, or None when there is none or its tokens
        were revoked."""
        installation = await self.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )
        if installation is None or installation.bot_token is None:
            return None
        return installation.to_bot()

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget the bot's tokens (Slack revoked them): ``team_id`` None names an
        organisation-wide install, as Bolt's uninstall events do."""
        key = _deleted_key(enterprise_id, team_id)
        if await self._store.delete_bot(key, self._now()):
            log.info("bot tokens revoked in %s", _described(key))

    async def async_delete_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
    ) -> None:
        """Forget the installation. For one user (their own tokens revoked) there is nothing
        to forget: no user tokens are kept, and the bot's installation stays."""
        if user_id is not None:
            return
        key = _deleted_key(enterprise_id, team_id)
        if await self._store.delete_installation(key):
            log.info("installation deleted in %s", _described(key))

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    async def _save_rotated(
        self,
        key: WorkspaceKey,
        stored_at: str,
        bot_token: str | None,
        bot_refresh_token: str | None,
        expires_at: int | None,
    ) -> None:
        if bot_token is None:
            return
        kept = await self._store.record_rotated_bot_token(
            key,
            installed_at=datetime.fromisoformat(stored_at),
            bot_token=bot_token,
            bot_refresh_token=bot_refresh_token,
            expires_at=_time_of(expires_at),
            now=self._now(),
        )
        if kept:
            log.info("bot token refreshed in %s", _described(key))
        else:
            log.info(
                "bot token refreshed in %s for an installation since deleted or replaced: not kept",
                _described(key),
            )


class StoreOAuthStates(AsyncOAuthStateStore):
    """:class:`AsyncOAuthStateStore` on the Store: each state random, kept in the database
    (so any process may serve the redirect, and a restart keeps installs under way), good for
    one redirect within ``expiration_seconds``."""

    def __init__(
        self,
        store: Store,
        *,
        now: Callable[[], datetime],
        expiration_seconds: float = STATE_SECONDS,
    ) -> None:
        self._store = store
        self._now = now
        self._lifetime = timedelta(seconds=expiration_seconds)

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: object, **kwargs: object) -> str:
        state = secrets.token_urlsafe(32)
        now = self._now()
        await self._store.issue_oauth_state(state, now + self._lifetime, now)
        return state

    async def async_consume(self, state: str) -> bool:
        return await self._store.consume_oauth_state(state, self._now())


def _deleted_key(enterprise_id: str | None, team_id: str | None) -> WorkspaceKey:
    """The installation Bolt's uninstall and revocation events name: without a team id, the
    organisation's."""
    return WorkspaceKey.of(enterprise_id, team_id, is_enterprise_install=not team_id)


def _time_of(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _seconds_of(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def _described(key: WorkspaceKey) -> str:
    if key.is_enterprise_install:
        return f"organisation {key.enterprise_id}"
    inside = f" of organisation {key.enterprise_id}" if key.enterprise_id else ""
    return f"workspace {key.team_id}{inside}"
