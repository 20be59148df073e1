"""Slack installations and OAuth states, as the SQLite store records them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from storage.models import SlackInstallation, WorkspaceKey
from storage.sqlite.base import StoreBase
from storage.sqlite.rows import required_text, required_time, to_text, to_time
from storage.store import InvalidRecord
from storage.workspace_sql import clear_removal_sql, installed_workspace

_COLUMNS = """enterprise_id, team_id, is_enterprise_install, app_id, team_name, enterprise_name,
              enterprise_url, bot_token, bot_refresh_token, bot_token_expires_at, bot_user_id,
              bot_id, bot_scopes, installer_user_id, installed_at"""


def key_values(key: WorkspaceKey) -> tuple[str, str]:
    """The row's primary key: '' stands for an id there is none of."""
    return key.enterprise_id or "", "" if key.is_enterprise_install else key.team_id or ""


def installation_of(row: Sequence[Any]) -> SlackInstallation:
    (
        enterprise_id,
        team_id,
        is_enterprise_install,
        app_id,
        team_name,
        enterprise_name,
        enterprise_url,
        bot_token,
        bot_refresh_token,
        bot_token_expires_at,
        bot_user_id,
        bot_id,
        bot_scopes,
        installer_user_id,
        installed_at,
    ) = row
    return SlackInstallation(
        key=WorkspaceKey(enterprise_id or None, team_id or None, bool(is_enterprise_install)),
        bot_token=bot_token,
        bot_user_id=bot_user_id,
        bot_id=bot_id,
        bot_scopes=tuple(scope for scope in bot_scopes.split(",") if scope),
        installer_user_id=installer_user_id,
        installed_at=required_time(installed_at),
        bot_refresh_token=bot_refresh_token,
        bot_token_expires_at=to_time(bot_token_expires_at),
        app_id=app_id,
        team_name=team_name,
        enterprise_name=enterprise_name,
        enterprise_url=enterprise_url,
    )


class InstallationSteps(StoreBase):
    async def save_installation(self, installation: SlackInstallation, now: datetime) -> None:
        key = installation.key
        if key.problem is not None:
            raise InvalidRecord(key.problem)
        async with self._database.transaction() as db:
            await db.execute(
                f"""INSERT OR REPLACE INTO slack_installations ({_COLUMNS}, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    *key_values(key),
                    int(key.is_enterprise_install),
                    installation.app_id,
                    installation.team_name,
                    installation.enterprise_name,
                    installation.enterprise_url,
                    installation.bot_token,
                    installation.bot_refresh_token,
                    to_text(installation.bot_token_expires_at),
                    installation.bot_user_id,
                    installation.bot_id,
                    ",".join(installation.bot_scopes),
                    installation.installer_user_id,
                    required_text(installation.installed_at),
                    to_text(now),
                ),
            )
            # Installed again: the workspace is no longer removed, and starts clean.
            await db.execute(*clear_removal_sql(installed_workspace(key), "?"))

    async def installation(self, key: WorkspaceKey) -> SlackInstallation | None:
        if key.problem is not None:
            return None
        rows = await self._rows(
            f"""SELECT {_COLUMNS} FROM slack_installations
                WHERE enterprise_id = ? AND team_id = ?""",
            key_values(key),
        )
        return installation_of(rows[0]) if rows else None

    async def installations(self) -> list[SlackInstallation]:
        rows = await self._rows(f"SELECT {_COLUMNS} FROM slack_installations")
        # Ordered here: the two databases may collate text differently.
        return sorted(map(installation_of, rows), key=lambda found: key_values(found.key))

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
        async with self._database.transaction() as db:
            cursor = await db.execute(
                """UPDATE slack_installations SET bot_token = ?, bot_refresh_token = ?,
                       bot_token_expires_at = ?, updated_at = ?
                   WHERE enterprise_id = ? AND team_id = ? AND installed_at = ?""",
                (
                    bot_token,
                    bot_refresh_token,
                    to_text(expires_at),
                    to_text(now),
                    *key_values(key),
                    required_text(installed_at),
                ),
            )
        return cursor.rowcount == 1

    async def delete_bot(self, key: WorkspaceKey, now: datetime) -> bool:
        async with self._database.transaction() as db:
            cursor = await db.execute(
                """UPDATE slack_installations SET bot_token = NULL, bot_refresh_token = NULL,
                       bot_token_expires_at = NULL, updated_at = ?
                   WHERE enterprise_id = ? AND team_id = ? AND bot_token IS NOT NULL""",
                (to_text(now), *key_values(key)),
            )
        return cursor.rowcount == 1

    async def delete_installation(self, key: WorkspaceKey) -> bool:
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "DELETE FROM slack_installations WHERE enterprise_id = ? AND team_id = ?",
                key_values(key),
            )
        return cursor.rowcount == 1

    async def issue_oauth_state(self, state: str, expires_at: datetime, now: datetime) -> None:
        async with self._database.transaction() as db:
            await db.execute("DELETE FROM oauth_states WHERE expires_at <= ?", (to_text(now),))
            await db.execute(
                "INSERT INTO oauth_states (state, expires_at) VALUES (?, ?)",
                (state, required_text(expires_at)),
            )

    async def consume_oauth_state(self, state: str, now: datetime) -> bool:
        async with self._database.transaction() as db:
            rows = list(
                await db.execute_fetchall(
                    "DELETE FROM oauth_states WHERE state = ? RETURNING expires_at", (state,)
                )
            )
        return bool(rows) and rows[0][0] > required_text(now)
