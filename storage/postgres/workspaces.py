"""Whose work is whose, in PostgreSQL: adopting the rows recorded without a workspace, and
removing a workspace's work."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from storage.models import Workspace
from storage.postgres.base import StoreBase
from storage.postgres.connection import Connection
from storage.postgres.rows import safe_text
from storage.workspace_sql import adoption, clear_removal_sql, removal, removed_sql


def _safe(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(safe_text(value) if isinstance(value, str) else value for value in values)


def workspace_lock_keys(workspace: Workspace) -> list[str]:
    """The advisory locks that order creating a batch of ``workspace`` against its removal:
    its team's and its organisation's, sorted."""
    keys = []
    if workspace.team_id:
        keys.append(f"threadscribe workspace {workspace.team_id}")
    if workspace.enterprise_id:
        keys.append(f"threadscribe organisation {workspace.enterprise_id}")
    return sorted(keys)


async def lock_workspace(db: Connection, workspace: Workspace, *, shared: bool) -> None:
    """Take ``workspace``'s advisory locks for this transaction: shared while creating a batch
    for it, exclusive while removing it, so that a batch is created before a removal (which then
    stops and erases it) or after (which then sees the removal)."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    for key in workspace_lock_keys(workspace):
        await db.execute(f"SELECT {function}(hashtextextended(%s, 0))", (safe_text(key),))


class WorkspaceSteps(StoreBase):
    async def adopt_unowned(self, workspace: Workspace) -> int:
        if not workspace.team_id:
            return 0
        adopted = 0
        async with self._database.transaction() as db:
            statements = adoption(workspace, "%s")
            for number, (statement, parameters) in enumerate(statements):
                cursor = await db.execute(statement, _safe(parameters))
                if number in (0, len(statements) - 1):
                    adopted += cursor.rowcount
        return adopted

    async def remove_workspace(self, workspace: Workspace, now: datetime) -> int:
        steps = removal(workspace, now, "%s")
        if steps is None:
            return 0
        removed = Workspace(workspace.team_id, None) if workspace.team_id else workspace
        async with self._database.transaction() as db:
            await lock_workspace(db, removed, shared=False)
            await db.execute(steps.record[0], _safe(steps.record[1]))
            stopped = (await db.execute(steps.cancel[0], _safe(steps.cancel[1]))).rowcount
            stopped += (await db.execute(steps.give_up[0], _safe(steps.give_up[1]))).rowcount
            for statement, parameters in steps.rest:
                await db.execute(statement, _safe(parameters))
        return stopped

    async def workspace_removed(self, workspace: Workspace) -> bool:
        statement, parameters = removed_sql(workspace, "%s")
        return bool(await self._rows(statement, _safe(parameters)))

    async def forget_removal(self, workspace: Workspace) -> bool:
        statement, parameters = clear_removal_sql(workspace, "%s")
        return bool(await self._execute(statement, _safe(parameters)))
