"""slack-sdk's installation and OAuth state stores on a real SQLite store, driven by Bolt's own
code: its OAuth flow's code exchange, its authorization (which finds installations as events
name them) and its token rotation, against the fake Slack."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.installations import StoreInstallations, StoreOAuthStates
from bot.logs import MASK, SecretRegistry, build_handler
from storage.models import WorkspaceKey
from storage.sqlite import SQLiteStore
from tests.fakes.slack import FakeSlack

REDIRECT = "https://bot.example.com/slack/oauth_redirect"
SCOPES = "chat:write,files:read,reactions:write"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(tmp_path / "threadscribe.db")
    yield opened
    await opened.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    fake.redirect_urls = [REDIRECT]
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def registry() -> SecretRegistry:
    return SecretRegistry()


@pytest.fixture
def installations(store: SQLiteStore, registry: SecretRegistry) -> StoreInstallations:
    return StoreInstallations(store, now=Clock(), secret_registry=registry)


def oauth_flow(fake: FakeSlack, installations: StoreInstallations) -> AsyncOAuthFlow:
    return AsyncOAuthFlow(
        client=AsyncWebClient(base_url=fake.api_url),
        settings=AsyncOAuthSettings(
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            scopes=SCOPES.split(","),
            redirect_uri=REDIRECT,
            installation_store=installations,
            state_store=StoreOAuthStates(installations._store, now=Clock()),
        ),
    )


async def install(
    fake: FakeSlack, installations: StoreInstallations, **approval: object
) -> Installation:
    """What Bolt's redirect handler does with the code the browser brings back."""
    code = fake.authorize(client_id=fake.client_id, scope=SCOPES, redirect_uri=REDIRECT, **approval)  # type: ignore[arg-type]
    flow = oauth_flow(fake, installations)
    installation = await flow.run_installation(code)
    assert installation is not None
    await installations.async_save(installation)
    return installation


async def test_an_installation_is_found_as_bolts_oauth_flow_saved_it(
    fake: FakeSlack, installations: StoreInstallations
) -> None:
    other = fake.add_workspace("T0OTHER", name="Other", enterprise_id="E0GRID")
    made = await install(fake, installations, workspace=other, user="U0CAROL")

    found = await installations.async_find_installation(
        enterprise_id="E0GRID", team_id="T0OTHER", is_enterprise_install=False
    )
    assert found is not None
    assert (found.team_id, found.team_name, found.enterprise_id) == ("T0OTHER", "Other", "E0GRID")
    assert found.enterprise_name == "Org E0GRID" and not found.is_enterprise_install
    assert (found.bot_token, found.bot_id, found.bot_user_id) == (
        made.bot_token,
        other.bot_id,
        other.bot_user_id,
    )
    assert found.bot_scopes == SCOPES.split(",") and found.user_id == "U0CAROL"
    assert found.app_id == fake.app_id
    assert found.bot_refresh_token is None and found.bot_token_expires_at is None
    assert abs(found.installed_at - made.installed_at) < 1e-3

    bot = await installations.async_find_bot(enterprise_id="E0GRID", team_id="T0OTHER")
    assert bot is not None and bot.bot_token == made.bot_token
    # Another workspace, or the same one outside its organisation, has no installation.
    assert await installations.async_find_installation(enterprise_id=None, team_id="T0FAKE") is None
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0OTHER") is None
    # Only its installer has an installation of their own.
    assert await installations.async_find_installation(
        enterprise_id="E0GRID", team_id="T0OTHER", user_id="U0CAROL"
    )
    assert (
        await installations.async_find_installation(
            enterprise_id="E0GRID", team_id="T0OTHER", user_id="U0BOB"
        )
        is None
    )


async def test_an_organisation_wide_install_is_found_from_any_of_its_workspaces(
    fake: FakeSlack, installations: StoreInstallations
) -> None:
    north = fake.add_workspace("T0NORTH", enterprise_id="E0GRID")
    made = await install(fake, installations, workspace=north, org=True)
    assert made.is_enterprise_install and made.team_id is None

    for team_id in ("T0NORTH", "T0SOUTH", None):
        found = await installations.async_find_installation(
            enterprise_id="E0GRID", team_id=team_id, is_enterprise_install=True
        )
        assert found is not None and found.bot_token == made.bot_token
        assert found.enterprise_url == f"{fake.base_url}/"
    assert (
        await installations.async_find_installation(
            enterprise_id="E0GRID", team_id="T0NORTH", is_enterprise_install=False
        )
        is None
    )

    # Bolt's uninstall events for an organisation-wide install carry no team id.
    await installations.async_delete_all(enterprise_id="E0GRID", team_id=None)
    assert (
        await installations.async_find_bot(
            enterprise_id="E0GRID", team_id="T0NORTH", is_enterprise_install=True
        )
        is None
    )


async def test_revoking_then_uninstalling_deletes_one_workspace_only(
    fake: FakeSlack, installations: StoreInstallations, store: SQLiteStore
) -> None:
    other = fake.add_workspace("T0OTHER")
    await install(fake, installations)
    await install(fake, installations, workspace=other)

    # A user revoking their own token leaves the bot's installation as it is.
    await installations.async_delete_installation(
        enterprise_id=None, team_id="T0OTHER", user_id="U0ALICE"
    )
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0OTHER")

    await installations.async_delete_bot(enterprise_id=None, team_id="T0OTHER")
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0OTHER") is None
    revoked = await installations.async_find_installation(enterprise_id=None, team_id="T0OTHER")
    assert revoked is not None and revoked.bot_token is None

    await installations.async_delete_all(enterprise_id=None, team_id="T0OTHER")
    assert await store.installation(WorkspaceKey(None, "T0OTHER")) is None
    assert await installations.async_find_bot(enterprise_id=None, team_id="T0FAKE")


# Bot-only, as the app asks for bot scopes only: Bolt then finds the bot alone, and rotates its
# token once. Otherwise it also looks for the installation of the user behind the event and
# rotates what it finds there too, spending the single-use refresh token twice when that user
# cannot be told apart from the installer (an event without a user): so only with a user here.
@pytest.mark.parametrize(("bot_only", "user_id"), [(True, None), (False, "U0BOB")])
async def test_bolt_refreshes_an_expiring_token_before_it_expires_and_keeps_the_new_one(
    fake: FakeSlack,
    installations: StoreInstallations,
    store: SQLiteStore,
    bot_only: bool,
    user_id: str | None,
) -> None:
    fake.token_rotation = True
    authorize = AsyncInstallationStoreAuthorize(
        logger=logging.getLogger("test.authorize"),
        installation_store=installations,
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        token_rotation_expiration_minutes=120,
        bot_only=bot_only,
        # As the app passes its own, so that rotation calls SLACK_API_URL.
        client=AsyncWebClient(base_url=fake.api_url),
    )
    context = AsyncBoltContext(
        {"client": AsyncWebClient(base_url=fake.api_url), "is_enterprise_install": False}
    )

    async def authorized_token() -> str:
        result = await authorize(
            context=context, enterprise_id=None, team_id="T0FAKE", user_id=user_id
        )
        assert result is not None and result.bot_token is not None
        return result.bot_token

    # Twelve hours left: nothing to refresh.
    first = await install(fake, installations)
    assert await authorized_token() == first.bot_token
    assert [e["grant_type"] for e in fake.oauth_exchanges] == ["authorization_code"]

    # An hour left, within the two hours Bolt refreshes ahead: refreshed while still valid.
    fake.token_lifetime_seconds = 3600
    second = await install(fake, installations)
    assert second.bot_token is not None
    refreshed = await authorized_token()
    assert refreshed != second.bot_token
    assert [e["grant_type"] for e in fake.oauth_exchanges][-1] == "refresh_token"
    assert (fake.token_expires_at(second.bot_token) or 0) > datetime.now(UTC).timestamp()

    kept = await store.installation(WorkspaceKey(None, "T0FAKE"))
    assert kept is not None
    assert kept.bot_token == refreshed == fake.oauth_exchanges[-1]["access_token"]
    assert kept.bot_refresh_token == fake.oauth_exchanges[-1]["refresh_token"]
    assert kept.bot_token_expires_at is not None
    left = kept.bot_token_expires_at - datetime.now(UTC)
    assert timedelta(minutes=55) < left <= timedelta(hours=1)
    # What the installer and the install said is kept as it was.
    assert kept.installer_user_id == "U0ALICE" and kept.bot_scopes == tuple(SCOPES.split(","))

    # The refresh token was used up: the next refresh must use the one just kept.
    fake.expire_token(refreshed)
    assert await authorized_token() not in (refreshed, second.bot_token)


async def test_a_refresh_saved_late_does_not_bring_back_a_deleted_installation(
    fake: FakeSlack, installations: StoreInstallations, store: SQLiteStore
) -> None:
    fake.token_rotation = True
    await install(fake, installations)
    found = await installations.async_find_installation(enterprise_id=None, team_id="T0FAKE")
    assert found is not None
    rotated = Installation(**found.to_dict_for_copying())
    rotated.bot_token = "xoxe.xoxb-1-refreshed"

    await installations.async_delete_all(enterprise_id=None, team_id="T0FAKE")
    await installations.async_save(rotated)
    await installations.async_save_bot(rotated.to_bot())

    assert await store.installation(WorkspaceKey(None, "T0FAKE")) is None


@contextmanager
def all_logs(registry: SecretRegistry) -> Iterator[io.StringIO]:
    """Everything logged meanwhile, at DEBUG, through the app's handler."""
    out = io.StringIO()
    root = logging.getLogger()
    handler = build_handler([], "text", stream=out, registry=registry)
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


async def test_tokens_read_from_the_database_are_never_logged(
    store: SQLiteStore, registry: SecretRegistry
) -> None:
    # Not shaped like Slack's tokens: only learning them can mask them.
    token, refresh = "rotating-bot-token-0123456789", "rotating-refresh-0123456789"
    writer = StoreInstallations(store, now=Clock(), secret_registry=SecretRegistry())
    await writer.async_save(
        Installation(
            team_id="T0FAKE",
            bot_token=token,
            bot_id="B0BOT",
            bot_user_id="U0BOT",
            bot_refresh_token=refresh,
            bot_token_expires_in=3600,
            user_id="U0ALICE",
        )
    )
    # Another process's view: the tokens come from the database, not from any setting.
    reader = StoreInstallations(store, now=Clock(), secret_registry=registry)
    with all_logs(registry) as out:
        found = await reader.async_find_installation(enterprise_id=None, team_id="T0FAKE")
        assert found is not None and found.bot_token == token
        logging.getLogger("slack_sdk.web").debug("sending %s with %s", token, refresh)
        logging.getLogger("bot.test").info("installation %r", found.__dict__)

    written = out.getvalue()
    assert token not in written and refresh not in written
    assert written.count(MASK) >= 4


async def test_an_oauth_state_is_good_for_one_redirect_within_its_time(
    store: SQLiteStore,
) -> None:
    clock = Clock()
    states = StoreOAuthStates(store, now=clock, expiration_seconds=600)
    first, second, late = [await states.async_issue() for _ in range(3)]
    assert len({first, second, late}) == 3 and len(first) >= 40

    assert await states.async_consume(first)
    assert not await states.async_consume(first), "a state is used once"
    assert not await states.async_consume("forged-state")
    clock.now += timedelta(seconds=599)
    assert await states.async_consume(second)
    clock.now += timedelta(seconds=1)
    assert not await states.async_consume(late), "expired"


async def test_bolts_install_page_issues_a_state_its_redirect_consumes(
    fake: FakeSlack, installations: StoreInstallations
) -> None:
    flow = oauth_flow(fake, installations)
    request = AsyncBoltRequest(body="", query="", headers={})
    state = await flow.issue_new_state(request)
    url = await flow.build_authorize_url(state, request)
    assert f"state={state}" in url and f"client_id={fake.client_id}" in url
    assert await flow.settings.state_store.async_consume(state)
    assert not await flow.settings.state_store.async_consume(state)
