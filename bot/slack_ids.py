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
    """The workspace of a request body: an Events API envelope (``team_id`` and
    ``enterprise_id`` at its top, or its first authorization), a slash command's form
    (``team_id``, ``enterprise_id``), or an interactivity payload (``team.id``,
    ``enterprise.id``, or the user's ``team_id``). A team id of ``''`` when none is given."""
    authorizations = body.get("authorizations")
    first: Mapping[str, Any] = {}
    if (
        isinstance(authorizations, list)
        and authorizations
        and isinstance(authorizations[0], Mapping)
    ):
        first = authorizations[0]
    user = body.get("user")
    user_team = user.get("team_id") if isinstance(user, Mapping) else None
    team = (
        _id_of(body.get("team_id"))
        or _id_of(body.get("team"))
        or _text(first.get("team_id"))
        or _text(user_team)
    )
    enterprise = (
        _id_of(body.get("enterprise_id"))
        or _id_of(body.get("enterprise"))
        or _text(first.get("enterprise_id"))
    )
    return Workspace(team or "", enterprise)
