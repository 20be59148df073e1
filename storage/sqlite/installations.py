"""Slack installations and OAuth states, as the SQLite store records them."""

from __future__ import annotations

from datetime import datetime

from storage.models import SlackInstallation, WorkspaceKey
from storage.rows import INSTALLATION_COLUMNS, installation_of
from storage.sqlite.base import StoreBase
from storage.sqlite.rows import required_text, to_text, to_time
from storage.store import InvalidRecord
from storage.workspace_sql import clear_removal_sql, installed_workspace


def key_values(key: WorkspaceKey) -> tuple[str, str]:
    """The row's primary key: '' stands for an id there is none of."""
    return key.enterprise_id or "", "" if key.is_enterprise_install else key.team_id or ""


class InstallationSteps(StoreBase):
    async def save_installation(self, installation: SlackInstallation, now: datetime) -> None:
        key = installation.key
        if key.problem is not None:
            raise InvalidRecord(key.problem)
        async with self._database.transaction() as db:
            await db.execute(
                f"""INSERT OR REPLACE INTO slack_installations ({INSTALLATION_COLUMNS}, updated_at)
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
            f"""SELECT {INSTALLATION_COLUMNS} FROM slack_installations
                WHERE enterprise_id = ? AND team_id = ?""",
            key_values(key),
        )
        return installation_of(rows[0], to_time) if rows else None

    async def installations(self) -> list[SlackInstallation]:
        rows = await self._rows(f"SELECT {INSTALLATION_COLUMNS} FROM slack_installations")
        # Ordered here: the two databases may collate text differently.
        return sorted(
            (installation_of(row, to_time) for row in rows), key=lambda found: key_values(found.key)
        )

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
