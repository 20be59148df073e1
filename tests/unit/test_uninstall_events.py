"""Which workspace an uninstall event removes the app from."""

from __future__ import annotations

from typing import Any

from bot.uninstall import removed_by
from storage.models import Workspace


def envelope(event: dict[str, Any], *, team: str | None, org: str | None, org_wide: bool) -> Any:
    return {
        "type": "event_callback",
        "team_id": team,
        "enterprise_id": org,
        "event": event,
        "authorizations": [
            {
                "enterprise_id": org,
                "team_id": None if org_wide else team,
                "is_enterprise_install": org_wide,
            }
        ],
    }


UNINSTALLED = {"type": "app_uninstalled"}
BOT_REVOKED = {"type": "tokens_revoked", "tokens": {"oauth": [], "bot": ["U0BOT"]}}
USERS_REVOKED = {"type": "tokens_revoked", "tokens": {"oauth": ["U0ALICE"], "bot": []}}


def test_a_workspace_install_removes_the_workspace() -> None:
    for event in (UNINSTALLED, BOT_REVOKED):
        body = envelope(event, team="T1", org="E1", org_wide=False)
        assert removed_by(body) == Workspace("T1", "E1")


def test_an_organisation_wide_install_removes_the_whole_organisation() -> None:
    for event in (UNINSTALLED, BOT_REVOKED):
        body = envelope(event, team="T1", org="E1", org_wide=True)
        assert removed_by(body) == Workspace("", "E1")


def test_users_tokens_alone_or_other_events_remove_nothing() -> None:
    assert removed_by(envelope(USERS_REVOKED, team="T1", org=None, org_wide=False)) is None
    assert (
        removed_by(envelope({"type": "tokens_revoked"}, team="T1", org=None, org_wide=False))
        is None
    )
    assert removed_by(envelope({"type": "message"}, team="T1", org=None, org_wide=False)) is None
    assert removed_by(envelope(UNINSTALLED, team=None, org=None, org_wide=False)) is None
