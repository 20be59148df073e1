"""Each workspace's token, from its installation in a real SQLite store, refreshed at the fake
Slack over real HTTP before it expires, and never used past its expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
import pytest
from pydantic import SecretStr

from bot.errors import WorkspaceGone
from bot.logs import SecretRegistry
from bot.slack_ids import workspace_of
from bot.workspaces import InstalledWorkspaces
from storage.models import SlackInstallation, Workspace, WorkspaceKey
from storage.sqlite import SQLiteStore
from tests.fakes.slack import FakeSlack

NOW = datetime.now(UTC).replace(microsecond=0)
NORTH = Workspace("T0NORTH")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(tmp_path / "threadscribe.db")
    yield opened
    await opened.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    server = FakeSlack()
    server.token_rotation = True
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def directory(
    store: SQLiteStore, fake: FakeSlack
) -> AsyncIterator[tuple[InstalledWorkspaces, SecretRegistry]]:
    registry = SecretRegistry()
    found = InstalledWorkspaces(
        store,
        api_url=fake.api_url,
        session=aiohttp.ClientSession(),
        client_id=fake.client_id,
        client_secret=SecretStr(fake.client_secret),
        now=lambda: NOW,
        secret_registry=registry,
    )
    yield found, registry
    await found.aclose()


async def installed(store: SQLiteStore, fake: FakeSlack, *, left: timedelta) -> tuple[str, str]:
    """Install in the north workspace (a real code exchange at the fake Slack), its token
    having ``left`` to live by the bot's clock; the bot token and refresh token issued."""
    workspace = fake.workspaces.get("T0NORTH") or fake.add_workspace("T0NORTH")
    code = fake.authorize(client_id=fake.client_id, scope="chat:write", workspace=workspace)
    async with httpx.AsyncClient() as client:
        answer = (
            await client.post(
                f"{fake.api_url}oauth.v2.access",
                data={
                    "client_id": fake.client_id,
                    "client_secret": fake.client_secret,
                    "code": code,
                },
            )
        ).json()
    assert answer["ok"], answer
    await store.save_installation(
        SlackInstallation(
            key=WorkspaceKey.of(None, "T0NORTH", is_enterprise_install=False),
            bot_token=answer["access_token"],
            bot_user_id=workspace.bot_user_id,
            bot_id=workspace.bot_id,
            bot_scopes=("chat:write",),
            installer_user_id="U0ALICE",
            installed_at=NOW - timedelta(days=1),
            bot_refresh_token=answer["refresh_token"],
            bot_token_expires_at=NOW + left,
        ),
        NOW,
    )
    return answer["access_token"], answer["refresh_token"]


def refreshes(fake: FakeSlack) -> list[dict[str, object]]:
    return [each for each in fake.oauth_exchanges if each["grant_type"] == "refresh_token"]


async def test_a_token_with_an_hour_left_is_refreshed_and_the_new_one_kept(
    store: SQLiteStore,
    fake: FakeSlack,
    directory: tuple[InstalledWorkspaces, SecretRegistry],
) -> None:
    workspaces, registry = directory
    old, _ = await installed(store, fake, left=timedelta(hours=1))
    token = (await workspaces.file_token(NORTH)).get_secret_value()
    (refresh,) = refreshes(fake)
    assert token == refresh["access_token"] != old
    kept = await store.installation(WorkspaceKey.of(None, "T0NORTH", is_enterprise_install=False))
    assert kept is not None and kept.bot_token == token
    assert kept.bot_refresh_token == refresh["refresh_token"]
    assert kept.bot_token_expires_at == NOW + timedelta(seconds=fake.token_lifetime_seconds)
    learnt = registry.secrets()[1]
    assert token in learnt and str(refresh["refresh_token"]) in learnt
    # Now good for twelve hours: asked again, no second refresh, and the same client.
    gateway = await workspaces.gateway(NORTH)
    assert gateway is await workspaces.gateway(NORTH)
    assert gateway.client.token == token
    assert len(refreshes(fake)) == 1


async def test_a_token_with_twelve_hours_left_is_used_as_it_is(
    store: SQLiteStore,
    fake: FakeSlack,
    directory: tuple[InstalledWorkspaces, SecretRegistry],
) -> None:
    workspaces, _ = directory
    old, _ = await installed(store, fake, left=timedelta(hours=12))
    assert (await workspaces.file_token(NORTH)).get_secret_value() == old
    assert (await workspaces.gateway(NORTH)).client.token == old
    assert refreshes(fake) == []


async def test_an_expired_token_that_cannot_be_refreshed_is_never_used(
    store: SQLiteStore,
    fake: FakeSlack,
    directory: tuple[InstalledWorkspaces, SecretRegistry],
) -> None:
    workspaces, _ = directory
    old, refresh_token = await installed(store, fake, left=timedelta(minutes=-1))
    # Its refresh token was spent elsewhere: Slack refuses it.
    async with httpx.AsyncClient() as client:
        await client.post(
            f"{fake.api_url}oauth.v2.access",
            data={
                "client_id": fake.client_id,
                "client_secret": fake.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
            },
        )
    calls_before = len(fake.requests)
    with pytest.raises(WorkspaceGone, match="expired"):
        await workspaces.gateway(NORTH)
    with pytest.raises(WorkspaceGone):
        await workspaces.file_token(NORTH)
    assert not [
        r for r in fake.requests[calls_before:] if r.headers.get("Authorization") == f"Bearer {old}"
    ]


async def test_a_revoked_or_missing_installation_is_a_workspace_gone(
    store: SQLiteStore,
    fake: FakeSlack,
    directory: tuple[InstalledWorkspaces, SecretRegistry],
) -> None:
    workspaces, _ = directory
    with pytest.raises(WorkspaceGone, match="not installed"):
        await workspaces.gateway(NORTH)
    await installed(store, fake, left=timedelta(hours=12))
    await store.delete_bot(WorkspaceKey.of(None, "T0NORTH", is_enterprise_install=False), NOW)
    with pytest.raises(WorkspaceGone, match="revoked"):
        await workspaces.gateway(NORTH)


async def test_a_workspace_of_an_org_wide_install_uses_the_organisation_s_token(
    store: SQLiteStore,
    fake: FakeSlack,
    directory: tuple[InstalledWorkspaces, SecretRegistry],
) -> None:
    workspaces, _ = directory
    await store.save_installation(
        SlackInstallation(
            key=WorkspaceKey.of("E0GRID", None, is_enterprise_install=True),
            bot_token="xoxb-org-token",
            bot_user_id="U0BOT",
            bot_id="B0BOT",
            bot_scopes=("chat:write",),
            installer_user_id="U0ALICE",
            installed_at=NOW,
        ),
        NOW,
    )
    token = await workspaces.file_token(Workspace("T0SOUTH", "E0GRID"))
    assert token.get_secret_value() == "xoxb-org-token"


def test_the_workspace_of_each_kind_of_request() -> None:
    assert workspace_of({"team_id": "T1", "enterprise_id": "E1"}) == Workspace("T1", "E1")
    assert workspace_of({"team": {"id": "T2"}, "enterprise": None}) == Workspace("T2")
    assert workspace_of({"team": {"id": "T3"}, "enterprise": {"id": "E3"}}) == Workspace("T3", "E3")
