"""The statements both backends use to keep each workspace's work apart, written once with the
backend's placeholder (``?`` for SQLite, ``%s`` for PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from storage.models import Workspace, WorkspaceKey
from storage.rows import states_sql
from storage.states import FINISHED_JOB_STATES, BatchState, JobState


def team_condition(workspace: Workspace, p: str, table: str = "") -> tuple[str, tuple[Any, ...]]:
    """The condition on a batch's ``team_id`` that picks ``workspace``'s rows, and its
    parameters: a workspace without a team id has the rows recorded without one."""
    column = f"{table}.team_id" if table else "team_id"
    if workspace.team_id:
        return f"{column} = {p}", (workspace.team_id,)
    return f"({column} IS NULL OR {column} = '')", ()


def removed_condition(workspace: Workspace, p: str) -> tuple[str, tuple[Any, ...]]:
    """The condition on ``removed_workspaces`` rows that says ``workspace`` was removed: its
    team, or its organisation as a whole."""
    return (
        f"""((team_id = {p} AND team_id != '')
             OR (team_id = '' AND enterprise_id = {p} AND enterprise_id != ''))""",
        (workspace.team_id, workspace.enterprise_id or ""),
    )


def removed_sql(workspace: Workspace, p: str) -> tuple[str, tuple[Any, ...]]:
    """A query answering a row when ``workspace`` was removed."""
    condition, parameters = removed_condition(workspace, p)
    return f"SELECT 1 FROM removed_workspaces WHERE {condition} LIMIT 1", parameters


def installed_workspace(key: WorkspaceKey) -> Workspace:
    """The workspace an installation serves: for an organisation-wide one, the organisation."""
    return Workspace(key.team_id or "", key.enterprise_id)


def clear_removal_sql(workspace: Workspace, p: str) -> tuple[str, tuple[Any, ...]]:
    """Forget the removals that cover ``workspace`` (its team's, its organisation's): it was
    installed again. An organisation installed as a whole takes in each of its workspaces,
    those removed one by one before included."""
    if not workspace.team_id and workspace.enterprise_id:
        return f"DELETE FROM removed_workspaces WHERE enterprise_id = {p}", (
            workspace.enterprise_id,
        )
    condition, parameters = removed_condition(workspace, p)
    return f"DELETE FROM removed_workspaces WHERE {condition}", parameters


@dataclass(frozen=True)
class Removal:
    """The statements of :meth:`storage.store.Store.remove_workspace`, run in this order in one
    transaction, each with its parameters. ``cancel`` and ``give_up`` count the batches
    stopped."""

    record: tuple[str, tuple[Any, ...]]
    cancel: tuple[str, tuple[Any, ...]]
    give_up: tuple[str, tuple[Any, ...]]
    rest: list[tuple[str, tuple[Any, ...]]]


#: The team id of the rows a removal leaves: anonymous, and not "no team" (which a single
#: workspace bot adopts at start).
ERASED_WORKSPACE = "-"


def removal(workspace: Workspace, now: Any, p: str) -> Removal | None:
    """The statements that remove ``workspace``; None for one that names nothing (neither a team
    id nor an enterprise id)."""
    if workspace.team_id:
        match, value = f"team_id = {p}", workspace.team_id
        settings = f"team_id = {p}"
    elif workspace.enterprise_id:
        match, value = f"enterprise_id = {p}", workspace.enterprise_id
        settings = f"enterprise_id = {p}"
    else:
        return None
    batches = f"batch_id IN (SELECT id FROM batches WHERE {match})"
    unfinished = f"state NOT IN {states_sql(FINISHED_JOB_STATES)}"
    return Removal(
        record=(
            f"""INSERT INTO removed_workspaces (team_id, enterprise_id, removed_at)
                VALUES ({p}, {p}, {p}) ON CONFLICT (team_id, enterprise_id) DO NOTHING""",
            (workspace.team_id, workspace.enterprise_id or "", now),
        ),
        cancel=(
            f"""UPDATE batches SET state = '{BatchState.CANCELLED.value}', updated_at = {p}
                WHERE {match} AND state = '{BatchState.OPEN.value}'""",
            (now, value),
        ),
        give_up=(
            f"""UPDATE batches SET state = '{BatchState.UNDELIVERABLE.value}', updated_at = {p}
                WHERE {match} AND state = '{BatchState.DELIVERING.value}'""",
            (now, value),
        ),
        rest=[
            (
                f"""UPDATE jobs SET state = '{JobState.FAILED.value}', finished_at = {p},
                        updated_at = {p}, next_attempt_at = NULL, stalled_since = NULL,
                        held_by = NULL
                    WHERE {unfinished} AND {batches}""",
                (now, now, value),
            ),
            # What the files were and what was said in them; the providers' ids of the copies
            # and the spool paths stay for the clean-up. Erasing moves nothing, and is not a
            # change of the row's times: a second removal changes nothing at all.
            (
                f"""UPDATE jobs SET filename = '', slack_file_id = NULL, url = NULL,
                        download_url = NULL, mimetype = NULL, dedupe_key = NULL, error = NULL,
                        error_detail = NULL, transcript = NULL, raw_result = NULL
                    WHERE {batches}""",
                (value,),
            ),
            (f"DELETE FROM speaker_names WHERE {batches}", (value,)),
            (f"DELETE FROM reply_files WHERE {batches}", (value,)),
            # No channel, message or thread: nothing posts there any more, and no channel view
            # (not even the workspace's own after a re-install) shows them.
            (
                f"""UPDATE batches SET user_id = NULL, channel_id = '', message_ts = '',
                        thread_ts = '', reply_ts = NULL, status_ts = NULL, status_text = NULL,
                        language_hints = '[]', language_hints_strict = FALSE,
                        vocabulary = '[]', context_text = NULL, translation = NULL,
                        mark_doubtful = FALSE, next_attempt_at = NULL, failing_since = NULL
                    WHERE {match}""",
                (value,),
            ),
            (f"DELETE FROM channel_settings WHERE {settings}", (value,)),
            # Last, as the statements before find the rows by it: the counts that stay name no
            # workspace. Only the record of the removal keeps its id, to turn away what still
            # comes from it.
            (
                f"UPDATE batches SET team_id = {p}, enterprise_id = NULL WHERE {match}",
                (ERASED_WORKSPACE, value),
            ),
        ],
    )


def adoption(workspace: Workspace, p: str) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements of :meth:`storage.store.Store.adopt_unowned`, in order; the rows changed
    by the first and the last are the rows adopted."""
    team, enterprise = workspace.team_id, workspace.enterprise_id
    return [
        (
            f"""UPDATE batches SET team_id = {p}, enterprise_id = {p}
                WHERE team_id IS NULL OR team_id = ''""",
            (team, enterprise),
        ),
        # The workspace's own settings for a channel win over those from before.
        (
            f"""DELETE FROM channel_settings WHERE team_id = ''
                AND channel_id IN (SELECT channel_id FROM channel_settings WHERE team_id = {p})""",
            (team,),
        ),
        (
            f"UPDATE channel_settings SET team_id = {p}, enterprise_id = {p} WHERE team_id = ''",
            (team, enterprise),
        ),
    ]
