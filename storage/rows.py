"""What both backends' row code shares: state lists written into statements, the column lists in
the order ``batch_of``/``job_of`` unpack them, the enum lookups used while unpacking, and an
installation read from its row."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Any

from storage.models import Batch, Job, SlackInstallation, WorkspaceKey
from storage.states import BatchState, JobKind, JobState


def states_sql(states: Iterable[StrEnum]) -> str:
    """``('a', 'b')``: a state list written into a statement rather than bound. The values are
    the enums' own, never outside text; both databases use a partial index only for a condition
    they can see implies the index's, which bound values hide."""
    return "(" + ", ".join(f"'{state.value}'" for state in sorted(states)) + ")"


#: Column lists in the order of each dataclass's fields, which ``batch_of`` and ``job_of`` unpack.
BATCH_SELECT = ", ".join(field.name for field in dataclasses.fields(Batch))
JOB_SELECT = ", ".join(field.name for field in dataclasses.fields(Job))
BATCH_STATES = {state.value: state for state in BatchState}
JOB_STATES = {state.value: state for state in JobState}
JOB_KINDS = {kind.value: kind for kind in JobKind}


INSTALLATION_COLUMNS = """enterprise_id, team_id, is_enterprise_install, app_id, team_name,
    enterprise_name, enterprise_url, bot_token, bot_refresh_token, bot_token_expires_at,
    bot_user_id, bot_id, bot_scopes, installer_user_id, installed_at"""


def _as_stored(value: Any) -> Any:
    return value


def installation_of(
    row: Sequence[Any], read_time: Callable[[Any], Any] = _as_stored
) -> SlackInstallation:
    """The installation of a row of :data:`INSTALLATION_COLUMNS`; ``read_time`` makes a
    backend's stored time a ``datetime`` (PostgreSQL's already is)."""
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
        installed_at=read_time(installed_at),
        bot_refresh_token=bot_refresh_token,
        bot_token_expires_at=read_time(bot_token_expires_at),
        app_id=app_id,
        team_name=team_name,
        enterprise_name=enterprise_name,
        enterprise_url=enterprise_url,
    )
