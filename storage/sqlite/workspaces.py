"""Whose work is whose, in SQLite: adopting the rows recorded without a workspace, and removing
a workspace's work."""

from __future__ import annotations

from datetime import datetime

from storage.models import Workspace
from storage.sqlite.base import StoreBase
from storage.sqlite.rows import to_text
from storage.workspace_sql import adoption, clear_removal_sql, removal, removed_sql


class WorkspaceSteps(StoreBase):
    def _forget_channel_settings(self) -> None:
        """Channel settings kept in memory are stale after rows changed workspace (the store
        keeps them, :class:`storage.sqlite.store.SQLiteStore`)."""

    async def adopt_unowned(self, workspace: Workspace) -> int:
        if not workspace.team_id:
            return 0
        adopted = 0
        async with self._database.transaction() as db:
            statements = adoption(workspace, "?")
            for number, (statement, parameters) in enumerate(statements):
                cursor = await db.execute(statement, parameters)
                if number in (0, len(statements) - 1):
                    adopted += cursor.rowcount
        self._forget_channel_settings()
        return adopted

    async def remove_workspace(self, workspace: Workspace, now: datetime) -> int:
        steps = removal(workspace, to_text(now), "?")
        if steps is None:
            return 0
        async with self._database.transaction() as db:
            await db.execute(*steps.record)
            stopped = (await db.execute(*steps.cancel)).rowcount
            stopped += (await db.execute(*steps.give_up)).rowcount
            for statement, parameters in steps.rest:
                await db.execute(statement, parameters)
        self._forget_channel_settings()
        return stopped

    async def workspace_removed(self, workspace: Workspace) -> bool:
        return bool(await self._rows(*removed_sql(workspace, "?")))

    async def forget_removal(self, workspace: Workspace) -> bool:
        async with self._database.transaction() as db:
            cursor = await db.execute(*clear_removal_sql(workspace, "?"))
            return bool(cursor.rowcount)
