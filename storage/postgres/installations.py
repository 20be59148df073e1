"""Slack installations and OAuth states, as the PostgreSQL store records them."""

from __future__ import annotations

from datetime import datetime

from storage.models import SlackInstallation, WorkspaceKey
from storage.postgres.base import StoreBase
from storage.postgres.rows import safe_text
from storage.rows import INSTALLATION_COLUMNS, installation_of
from storage.store import InvalidRecord
from storage.workspace_sql import clear_removal_sql, installed_workspace


def key_values(key: WorkspaceKey) -> tuple[str, str]:
    """The row's primary key: '' stands for an id there is none of."""
    team_id = "" if key.is_enterprise_install else key.team_id or ""
    return safe_text(key.enterprise_id) or "", safe_text(team_id) or ""


class InstallationSteps(StoreBase):
    async def save_installation(self, installation: SlackInstallation, now: datetime) -> None:
        key = installation.key
        if key.problem is not None:
            raise InvalidRecord(key.problem)
        async with self._database.transaction() as db:
            await db.execute(
                f"""INSERT INTO slack_installations ({INSTALLATION_COLUMNS}, updated_at)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (enterprise_id, team_id) DO UPDATE SET
                        is_enterprise_install = excluded.is_enterprise_install,
                        app_id = excluded.app_id, team_name = excluded.team_name,
                        enterprise_name = excluded.enterprise_name,
                        enterprise_url = excluded.enterprise_url, bot_token = excluded.bot_token,
                        bot_refresh_token = excluded.bot_refresh_token,
                        bot_token_expires_at = excluded.bot_token_expires_at,
                        bot_user_id = excluded.bot_user_id, bot_id = excluded.bot_id,
                        bot_scopes = excluded.bot_scopes,
                        installer_user_id = excluded.installer_user_id,
                        installed_at = excluded.installed_at, updated_at = excluded.updated_at""",
                (
                    *key_values(key),
                    key.is_enterprise_install,
                    safe_text(installation.app_id),
                    safe_text(installation.team_name),
                    safe_text(installation.enterprise_name),
                    safe_text(installation.enterprise_url),
                    safe_text(installation.bot_token),
                    safe_text(installation.bot_refresh_token),
                    installation.bot_token_expires_at,
                    safe_text(installation.bot_user_id),
                    safe_text(installation.bot_id),
                    safe_text(",".join(installation.bot_scopes)),
                    safe_text(installation.installer_user_id),
                    installation.installed_at,
                    now,
                ),
            )
            # Installed again: the workspace is no longer removed, and starts clean.
            statement, values = clear_removal_sql(installed_workspace(key), "%s")
            await db.execute(statement, tuple(safe_text(value) for value in values))

    async def installation(self, key: WorkspaceKey) -> SlackInstallation | None:
        if key.problem is not None:
            return None
        rows = await self._rows(
            f"""SELECT {INSTALLATION_COLUMNS} FROM slack_installations
                WHERE enterprise_id = %s AND team_id = %s""",
            key_values(key),
        )
        return installation_of(rows[0]) if rows else None

    async def installations(self) -> list[SlackInstallation]:
        rows = await self._rows(f"SELECT {INSTALLATION_COLUMNS} FROM slack_installations")
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
        changed = await self._execute(
            """UPDATE slack_installations SET bot_token = %s, bot_refresh_token = %s,
                   bot_token_expires_at = %s, updated_at = %s
               WHERE enterprise_id = %s AND team_id = %s AND installed_at = %s""",
            (
                safe_text(bot_token),
                safe_text(bot_refresh_token),
                expires_at,
                now,
                *key_values(key),
                installed_at,
            ),
        )
        return changed == 1

    async def delete_bot(self, key: WorkspaceKey, now: datetime) -> bool:
        changed = await self._execute(
            """UPDATE slack_installations SET bot_token = NULL, bot_refresh_token = NULL,
                   bot_token_expires_at = NULL, updated_at = %s
               WHERE enterprise_id = %s AND team_id = %s AND bot_token IS NOT NULL""",
            (now, *key_values(key)),
        )
        return changed == 1

    async def delete_installation(self, key: WorkspaceKey) -> bool:
        changed = await self._execute(
            "DELETE FROM slack_installations WHERE enterprise_id = %s AND team_id = %s",
            key_values(key),
        )
        return changed == 1

    async def issue_oauth_state(self, state: str, expires_at: datetime, now: datetime) -> None:
        async with self._database.transaction() as db:
            await db.execute("DELETE FROM oauth_states WHERE expires_at <= %s", (now,))
            await db.execute(
                "INSERT INTO oauth_states (state, expires_at) VALUES (%s, %s)",
                (safe_text(state), expires_at),
            )

    async def consume_oauth_state(self, state: str, now: datetime) -> bool:
        rows = await self._rows(
            "DELETE FROM oauth_states WHERE state = %s RETURNING expires_at > %s",
            (safe_text(state), now),
        )
        return bool(rows) and bool(rows[0][0])
