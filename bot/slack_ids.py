"""Which workspace a Slack request comes from, read from its body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storage.models import Workspace


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _id_of(value: Any) -> str | None:
    """An id given as a string, or as an object with an ``id`` (``{"id": "T1", "domain": …}``)."""
    if isinstance(value, Mapping):
        return _text(value.get("id"))
    return _text(value)


def workspace_of(body: Mapping[str, Any]) -> Workspace:
    """The workspace of a request body: the installation Slack delivered it to, as Bolt reads it
    to authorize the request. In a Slack Connect channel an event's top-level ``team_id`` is the
    workspace where it happened (maybe a guest's, where the app is not installed); its first
    authorization is the installation's. So, in order: a form's ``view.app_installed_team_id``,
    an interactivity payload's ``team`` (``team.id``), the first authorization, the top-level
    ``team_id`` (slash commands, and events whose authorization names no team: organisation-wide
    installs), then the user's ``team_id``. A team id of ``''`` when none is given."""
    authorizations = body.get("authorizations")
    first: Mapping[str, Any] = {}
    if (
        isinstance(authorizations, list)
        and authorizations
        and isinstance(authorizations[0], Mapping)
    ):
        first = authorizations[0]
    view = body.get("view")
    user = body.get("user")
    team = body.get("team")
    team_id = (
        (_text(view.get("app_installed_team_id")) if isinstance(view, Mapping) else None)
        or _id_of(team)
        or _text(first.get("team_id"))
        or _id_of(body.get("team_id"))
        or (_text(user.get("team_id")) if isinstance(user, Mapping) else None)
    )
    enterprise = (
        _id_of(body.get("enterprise"))
        or _text(first.get("enterprise_id"))
        or _id_of(body.get("enterprise_id"))
        or (_text(team.get("enterprise_id")) if isinstance(team, Mapping) else None)
    )
    return Workspace(team_id or "", enterprise)
