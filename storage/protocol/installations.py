"""The Slack installations the app serves and the OAuth states of installs under way.

Part of :class:`storage.store.Store`, whose docstring states the contract every method
keeps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from storage.models import (
    SlackInstallation,
    WorkspaceKey,
)


class InstallationSteps(Protocol):
    """The Slack installations the app serves and the OAuth states of installs under way."""

    # -- installations -----------------------------------------------------------------------
    # Their tokens are secrets: a backend stores them as it stores any text, and never logs them.

    async def save_installation(self, installation: SlackInstallation, now: datetime) -> None:
        """Record ``installation`` in place of any earlier one with the same key: installing
        again starts from what Slack has just given. A workspace removed before
        (:meth:`remove_workspace`) is not removed any more: for a workspace's installation, its
        team's removal and its organisation's; for an organisation-wide one, the organisation's.
        Nothing erased comes back: a re-install starts clean. Raises :class:`InvalidRecord` for a
        key no installation can have (:attr:`WorkspaceKey.problem`), and the common errors."""

    async def installation(self, key: WorkspaceKey) -> SlackInstallation | None:
        """Returns the installation recorded with exactly ``key``, or None (an organisation-wide
        installation is found by its enterprise id alone:
        ``WorkspaceKey.of(enterprise_id, team_id, is_enterprise_install=True)``). Raises the
        common errors."""

    async def installations(self) -> list[SlackInstallation]:
        """Returns every recorded installation, revoked ones (without a token) included, by
        enterprise id then team id (an organisation-wide one before its workspaces' own).
        Raises the common errors."""

    async def record_rotated_bot_token(
        self,
        key: WorkspaceKey,
        *,
        installed_at: datetime,
        bot_token: str,
        bot_refresh_token: str | None,
        expires_at: datetime | None,
        now: datetime,
    ) -> bool:
        """The bot token of the installation recorded at ``installed_at`` was refreshed: keep
        the new token, refresh token and expiry. Returns whether they were kept: False when that
        installation was deleted, or replaced by a newer one, meanwhile (whose tokens stay as
        they are: a late refresh must neither bring a deleted installation back nor overwrite a
        re-install). Raises the common errors."""

    async def delete_bot(self, key: WorkspaceKey, now: datetime) -> bool:
        """Forget the bot's tokens (Slack revoked them); the rest of the installation stays
        until :meth:`delete_installation`, and :meth:`installation` then returns it without a
        token. Returns whether it had a token. Raises the common errors."""

    async def delete_installation(self, key: WorkspaceKey) -> bool:
        """Forget the installation, its tokens and all. Returns whether there was one. Raises
        the common errors."""

    # -- OAuth states ------------------------------------------------------------------------

    async def issue_oauth_state(self, state: str, expires_at: datetime, now: datetime) -> None:
        """Record ``state``, handed to a browser that starts an install: it can be consumed
        once, before ``expires_at``. States expired by ``now`` are forgotten on the way. Raises
        :class:`InvalidRecord` for a state issued before, and the common errors."""

    async def consume_oauth_state(self, state: str, now: datetime) -> bool:
        """Returns True when ``state`` was issued and has not expired by ``now``, once: the
        state is forgotten either way, so a second use, an unknown or an expired state all get
        False. Raises the common errors."""
