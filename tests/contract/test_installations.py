"""Slack installations (one per workspace or organisation, tokens rotated, revoked and deleted)
and the OAuth states of installs under way."""

from __future__ import annotations

from datetime import timedelta

import pytest

from storage.models import SlackInstallation, WorkspaceKey
from storage.store import InvalidRecord, Store
from tests.contract.backends import Backend
from tests.contract.builders import LATER, NOW

ACME = WorkspaceKey(None, "T0ACME")
GRID_TEAM = WorkspaceKey("E0GRID", "T0GRIDTEAM")
GRID_ORG = WorkspaceKey("E0GRID", None, is_enterprise_install=True)


def installed(
    key: WorkspaceKey, token: str = "xoxb-acme-1", **changes: object
) -> SlackInstallation:
    values: dict[str, object] = {
        "key": key,
        "bot_token": token,
        "bot_user_id": "U0BOT",
        "bot_id": "B0BOT",
        "bot_scopes": ("chat:write", "files:read"),
        "installer_user_id": "U0ALICE",
        "installed_at": NOW,
        "bot_refresh_token": "xoxe-1-refresh-1",
        "bot_token_expires_at": NOW + timedelta(hours=12),
        "app_id": "A0APP",
        "team_name": "Acme",
        "enterprise_name": None,
        "enterprise_url": None,
    }
    values.update(changes)
    return SlackInstallation(**values)  # type: ignore[arg-type]


async def test_an_installation_is_found_by_its_workspace_as_it_was_saved(store: Store) -> None:
    acme = installed(ACME)
    await store.save_installation(acme, NOW)

    assert await store.installation(ACME) == acme
    assert await store.installation(WorkspaceKey(None, "T0OTHER")) is None
    # A workspace is not an organisation, nor the other way round.
    assert await store.installation(WorkspaceKey(None, "T0ACME", True)) is None


async def test_a_workspace_of_an_organisation_and_the_organisation_are_apart(store: Store) -> None:
    team = installed(GRID_TEAM, "xoxb-team", enterprise_name="Grid")
    org = installed(GRID_ORG, "xoxb-org", team_name=None, enterprise_url="https://grid.example/")
    await store.save_installation(team, NOW)
    await store.save_installation(org, NOW)

    assert await store.installation(GRID_TEAM) == team
    assert await store.installation(GRID_ORG) == org
    # Bolt asks for an organisation-wide install with the team the event came from: ignored.
    asked = WorkspaceKey.of("E0GRID", "T0ANYTEAM", is_enterprise_install=True)
    assert await store.installation(asked) == org
    assert await store.installation(WorkspaceKey.of("", "T0ACME", is_enterprise_install=False)) is (
        None
    )


async def test_installing_again_replaces_the_installation(store: Store) -> None:
    await store.save_installation(installed(ACME), NOW)
    again = installed(
        ACME,
        "xoxb-acme-2",
        installed_at=LATER,
        installer_user_id="U0BOB",
        bot_scopes=("chat:write",),
        bot_refresh_token=None,
        bot_token_expires_at=None,
    )
    await store.save_installation(again, LATER)

    assert await store.installation(ACME) == again


async def test_a_key_no_installation_can_have_is_refused(store: Store) -> None:
    with pytest.raises(InvalidRecord):
        await store.save_installation(installed(WorkspaceKey("E0GRID", None)), NOW)
    with pytest.raises(InvalidRecord):
        await store.save_installation(installed(WorkspaceKey(None, None, True)), NOW)
    assert await store.installation(WorkspaceKey(None, None)) is None


async def test_a_rotated_token_is_kept_for_the_installation_it_was_refreshed_for(
    store: Store,
) -> None:
    await store.save_installation(installed(ACME), NOW)
    expires = LATER + timedelta(hours=12)

    assert await store.record_rotated_bot_token(
        ACME,
        installed_at=NOW,
        bot_token="xoxe.xoxb-acme-2",
        bot_refresh_token="xoxe-1-refresh-2",
        expires_at=expires,
        now=LATER,
    )

    found = await store.installation(ACME)
    assert found is not None
    assert (found.bot_token, found.bot_refresh_token, found.bot_token_expires_at) == (
        "xoxe.xoxb-acme-2",
        "xoxe-1-refresh-2",
        expires,
    )
    assert found.installed_at == NOW and found.installer_user_id == "U0ALICE"


async def test_a_late_rotation_neither_brings_back_nor_overwrites_an_installation(
    store: Store,
) -> None:
    rotated = {
        "installed_at": NOW,
        "bot_token": "xoxe.xoxb-stale",
        "bot_refresh_token": "xoxe-1-stale",
        "expires_at": LATER,
        "now": LATER,
    }
    assert not await store.record_rotated_bot_token(ACME, **rotated)  # type: ignore[arg-type]
    assert await store.installation(ACME) is None

    reinstalled = installed(ACME, "xoxb-acme-new", installed_at=LATER)
    await store.save_installation(reinstalled, LATER)
    assert not await store.record_rotated_bot_token(ACME, **rotated)  # type: ignore[arg-type]
    assert await store.installation(ACME) == reinstalled


async def test_revoking_the_bot_forgets_its_tokens_and_deleting_forgets_the_rest(
    store: Store,
) -> None:
    await store.save_installation(installed(ACME), NOW)
    await store.save_installation(installed(GRID_ORG, "xoxb-org"), NOW)

    assert await store.delete_bot(ACME, LATER)
    assert not await store.delete_bot(ACME, LATER)
    revoked = await store.installation(ACME)
    assert revoked is not None
    assert (revoked.bot_token, revoked.bot_refresh_token, revoked.bot_token_expires_at) == (
        None,
        None,
        None,
    )
    assert revoked.installer_user_id == "U0ALICE"

    assert await store.delete_installation(ACME)
    assert not await store.delete_installation(ACME)
    assert await store.installation(ACME) is None
    org = await store.installation(GRID_ORG)
    assert org is not None and org.bot_token == "xoxb-org"


async def test_every_installation_is_listed_revoked_ones_too(store: Store) -> None:
    assert await store.installations() == []
    team = installed(GRID_TEAM, "xoxb-team")
    org = installed(GRID_ORG, "xoxb-org")
    acme = installed(ACME)
    for each in (team, acme, org):
        await store.save_installation(each, NOW)
    await store.delete_bot(GRID_TEAM, LATER)

    listed = await store.installations()
    revoked = await store.installation(GRID_TEAM)
    assert listed == [acme, org, revoked]
    assert revoked is not None and revoked.bot_token is None

    await store.delete_installation(ACME)
    assert await store.installations() == [org, revoked]


async def test_installations_outlive_a_restart(backend: Backend) -> None:
    first = await backend.open()
    try:
        await first.save_installation(installed(GRID_ORG, "xoxb-org"), NOW)
        await first.issue_oauth_state("state-kept", LATER, NOW)
    finally:
        await first.close()
    second = await backend.open()
    try:
        assert await second.installation(GRID_ORG) == installed(GRID_ORG, "xoxb-org")
        assert await second.consume_oauth_state("state-kept", NOW)
    finally:
        await second.close()


async def test_tokens_are_kept_as_given_however_odd(store: Store) -> None:
    odd = installed(ACME, "xoxb-ünïcode-'quoted'-\"double\"-;--", bot_refresh_token="x" * 5000)
    await store.save_installation(odd, NOW)
    assert await store.installation(ACME) == odd


async def test_an_oauth_state_is_consumed_once(store: Store) -> None:
    await store.issue_oauth_state("state-1", NOW + timedelta(minutes=10), NOW)

    assert await store.consume_oauth_state("state-1", NOW + timedelta(minutes=1))
    assert not await store.consume_oauth_state("state-1", NOW + timedelta(minutes=1))
    assert not await store.consume_oauth_state("never-issued", NOW)


async def test_an_expired_oauth_state_is_refused_and_forgotten(store: Store) -> None:
    expiry = NOW + timedelta(minutes=10)
    await store.issue_oauth_state("state-late", expiry, NOW)
    await store.issue_oauth_state("state-on-time", expiry, NOW)

    assert not await store.consume_oauth_state("state-late", expiry)
    assert await store.consume_oauth_state("state-on-time", expiry - timedelta(microseconds=1))
    # Refused once, it stays refused even at a time it would have been valid.
    assert not await store.consume_oauth_state("state-late", NOW)


async def test_issuing_forgets_expired_states_and_refuses_a_state_twice(store: Store) -> None:
    await store.issue_oauth_state("state-old", NOW + timedelta(minutes=10), NOW)
    await store.issue_oauth_state(
        "state-new", LATER + timedelta(hours=1), LATER + timedelta(hours=1)
    )
    with pytest.raises(InvalidRecord):
        await store.issue_oauth_state("state-new", LATER + timedelta(hours=2), LATER)

    # Expired and forgotten when the next state was issued: refused even at an earlier time.
    assert not await store.consume_oauth_state("state-old", NOW)
    assert await store.consume_oauth_state("state-new", LATER)


def test_an_installation_never_shows_its_tokens() -> None:
    shown = repr(installed(ACME, "xoxb-secret-token", bot_refresh_token="xoxe-1-secret"))
    assert "secret" not in shown and "T0ACME" in shown
