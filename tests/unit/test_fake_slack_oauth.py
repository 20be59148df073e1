"""The Slack fake's OAuth and workspaces, against the real slack_sdk client: installs through the
authorize page and ``oauth.v2.access``, rotating tokens, and each workspace's token kept to its
own workspace, answered as Slack answers."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import SIGN_IN_PAGE, FakeSlack

REDIRECT = "https://bot.example.com/slack/oauth_redirect"
SCOPES = "chat:write,files:read"


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    fake.redirect_urls = [REDIRECT]
    await fake.start()
    yield fake
    await fake.stop()


def client(fake: FakeSlack, token: str | None = None) -> AsyncWebClient:
    return AsyncWebClient(token=token, base_url=fake.api_url)


async def exchange(fake: FakeSlack, code: str, redirect_uri: str = REDIRECT) -> dict[str, object]:
    answer = await client(fake).oauth_v2_access(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        code=code,
        redirect_uri=redirect_uri,
    )
    return dict(answer.data)  # type: ignore[arg-type]


async def error_of(call: object) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call  # type: ignore[misc]
    return str(caught.value.response["error"])


async def test_the_authorize_page_sends_the_browser_back_with_a_code_and_the_state(
    fake: FakeSlack,
) -> None:
    other = fake.add_workspace("T0OTHER", name="Other Team")
    query = {
        "client_id": fake.client_id,
        "scope": SCOPES,
        "state": "state-from-the-app",
        "redirect_uri": REDIRECT,
        "team": other.team_id,
    }
    async with httpx.AsyncClient() as http:
        page = await http.get(f"{fake.base_url}/oauth/v2/authorize?{urlencode(query)}")
        refused = await http.get(
            f"{fake.base_url}/oauth/v2/authorize?"
            + urlencode({**query, "redirect_uri": "https://evil.example/steal"})
        )

    assert page.status_code == 302
    location = urlsplit(page.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    back = parse_qs(location.query)
    assert back["state"] == ["state-from-the-app"]
    assert refused.status_code == 400 and "bad_redirect_uri" in refused.text

    installed = await exchange(fake, back["code"][0])
    assert installed["team"] == {"id": "T0OTHER", "name": "Other Team"}
    assert installed["bot_user_id"] == other.bot_user_id


async def test_a_code_exchange_answers_slacks_shape_without_rotation(fake: FakeSlack) -> None:
    code = fake.authorize(client_id=fake.client_id, scope=SCOPES, redirect_uri=REDIRECT)
    answer = await exchange(fake, code)

    assert answer["ok"] is True
    assert answer["token_type"] == "bot"
    assert answer["scope"] == SCOPES
    assert answer["authed_user"] == {"id": "U0ALICE"}
    assert answer["team"] == {"id": fake.team_id, "name": "Fake Team"}
    assert (answer["enterprise"], answer["is_enterprise_install"]) == (None, False)
    assert answer["app_id"] == fake.app_id and answer["bot_user_id"] == fake.bot_user_id
    token = str(answer["access_token"])
    assert token.startswith("xoxb-") and token != fake.bot_token
    assert "refresh_token" not in answer and "expires_in" not in answer
    assert (await client(fake, token).auth_test())["team_id"] == fake.team_id


async def test_a_code_is_exchanged_once_with_the_apps_credentials(fake: FakeSlack) -> None:
    code = fake.authorize(client_id=fake.client_id, scope=SCOPES, redirect_uri=REDIRECT)
    web = client(fake)

    wrong_id = web.oauth_v2_access(client_id="9.9", client_secret=fake.client_secret, code=code)
    assert await error_of(wrong_id) == "invalid_client_id"
    wrong_secret = web.oauth_v2_access(client_id=fake.client_id, client_secret="no", code=code)
    assert await error_of(wrong_secret) == "bad_client_secret"
    other_redirect = exchange(fake, code, redirect_uri="https://bot.example.com/other")
    assert await error_of(other_redirect) == "bad_redirect_uri"

    # The credentials in the form work as well as slack_sdk's basic auth.
    async with httpx.AsyncClient() as http:
        form = await http.post(
            f"{fake.api_url}oauth.v2.access",
            data={
                "client_id": fake.client_id,
                "client_secret": fake.client_secret,
                "code": code,
                "redirect_uri": REDIRECT,
            },
        )
    assert form.json()["ok"] is True
    assert "Basic " + base64.b64encode(
        f"{fake.client_id}:{fake.client_secret}".encode()
    ).decode() in [r.headers.get("Authorization") for r in fake.api_calls("oauth.v2.access")]

    assert await error_of(exchange(fake, code)) == "invalid_code"
    assert await error_of(exchange(fake, "never-issued")) == "invalid_code"


async def test_an_organisation_wide_install_acts_in_each_of_its_workspaces(
    fake: FakeSlack,
) -> None:
    north = fake.add_workspace("T0NORTH", enterprise_id="E0GRID", channels={"C0NORTH"})
    south = fake.add_workspace("T0SOUTH", enterprise_id="E0GRID", channels={"C0SOUTH"})
    code = fake.authorize(
        client_id=fake.client_id, scope=SCOPES, redirect_uri=REDIRECT, workspace=north, org=True
    )
    answer = await exchange(fake, code)

    assert answer["team"] is None and answer["is_enterprise_install"] is True
    assert answer["enterprise"] == {"id": "E0GRID", "name": "Org E0GRID"}
    web = client(fake, str(answer["access_token"]))
    for channel in ("C0NORTH", "C0SOUTH"):
        assert (await web.chat_postMessage(channel=channel, text="hi"))["ok"]
    assert await error_of(web.chat_postMessage(channel="C0GENERAL", text="hi")) == (
        "channel_not_found"
    )
    assert south.team_id in fake.workspaces
    with pytest.raises(ValueError, match="not_an_enterprise"):
        fake.authorize(client_id=fake.client_id, scope=SCOPES, org=True)


async def test_a_token_of_another_workspace_knows_nothing_of_this_one(fake: FakeSlack) -> None:
    other = fake.add_workspace("T0OTHER", channels={"C0OTHER"})
    other_token = fake.issue_bot_token(other)
    theirs = fake.add_file(name="theirs.wav", workspace=other)
    ours = fake.add_file(name="ours.wav")
    fake.message_event(channel="C0OTHER", text="hello")
    mine, foreign = client(fake, fake.bot_token), client(fake, other_token)

    assert (await foreign.auth_test())["team_id"] == "T0OTHER"
    assert (await foreign.auth_test())["user_id"] == other.bot_user_id
    assert (await foreign.chat_postMessage(channel="C0OTHER", text="hi"))["ok"]
    assert (await foreign.files_info(file=theirs["id"]))["ok"]
    assert await error_of(mine.chat_postMessage(channel="C0OTHER", text="hi")) == (
        "channel_not_found"
    )
    assert await error_of(foreign.chat_postMessage(channel="C0GENERAL", text="hi")) == (
        "channel_not_found"
    )
    assert await error_of(mine.conversations_replies(channel="C0OTHER", ts="1.0")) == (
        "channel_not_found"
    )
    assert await error_of(foreign.files_info(file=ours["id"])) == "file_not_found"
    assert await error_of(mine.files_delete(file=theirs["id"])) == "file_not_found"
    assert await error_of(client(fake, "xoxb-made-up").auth_test()) == "invalid_auth"

    async with httpx.AsyncClient() as http:
        wrong = await http.get(
            ours["url_private_download"], headers={"Authorization": f"Bearer {other_token}"}
        )
        right = await http.get(
            theirs["url_private_download"], headers={"Authorization": f"Bearer {other_token}"}
        )
    assert wrong.text == SIGN_IN_PAGE
    assert right.status_code == 200 and right.content != SIGN_IN_PAGE.encode()


async def test_rotation_gives_expiring_tokens_and_a_refresh_token_used_once(
    fake: FakeSlack,
) -> None:
    fake.token_rotation = True
    fake.token_lifetime_seconds = 600
    code = fake.authorize(client_id=fake.client_id, scope=SCOPES, redirect_uri=REDIRECT)
    installed = await exchange(fake, code)
    token, refresh = str(installed["access_token"]), str(installed["refresh_token"])
    assert token.startswith("xoxe.xoxb-") and refresh.startswith("xoxe-1-")
    assert installed["expires_in"] == 600

    web = client(fake)
    refreshed = await web.oauth_v2_access(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        grant_type="refresh_token",
        refresh_token=refresh,
    )
    assert refreshed["token_type"] == "bot" and refreshed["expires_in"] == 600
    assert refreshed["team"] == {"id": fake.team_id, "name": "Fake Team"}
    assert refreshed["access_token"] not in (token, fake.bot_token)
    assert refreshed["refresh_token"] != refresh
    # The token it replaces works until it expires; then Slack says so.
    assert (await client(fake, token).auth_test())["ok"]
    fake.expire_token(token)
    assert await error_of(client(fake, token).auth_test()) == "token_expired"
    assert (await client(fake, refreshed["access_token"]).auth_test())["ok"]

    again = web.oauth_v2_access(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        grant_type="refresh_token",
        refresh_token=refresh,
    )
    assert await error_of(again) == "invalid_refresh_token"
    unknown_grant = web.oauth_v2_access(
        client_id=fake.client_id, client_secret=fake.client_secret, grant_type="password"
    )
    assert await error_of(unknown_grant) == "invalid_grant_type"
    assert [e["grant_type"] for e in fake.oauth_exchanges] == [
        "authorization_code",
        "refresh_token",
    ]


async def test_revoked_tokens_are_refused_and_expired_ones_download_nothing(
    fake: FakeSlack,
) -> None:
    other = fake.add_workspace("T0OTHER", channels={"C0OTHER"})
    expiring = fake.issue_bot_token(other, expires_in=3600)
    file = fake.add_file(workspace=other)
    fake.expire_token(expiring)
    async with httpx.AsyncClient() as http:
        page = await http.get(
            file["url_private_download"], headers={"Authorization": f"Bearer {expiring}"}
        )
    assert page.text == SIGN_IN_PAGE

    lasting = fake.issue_bot_token(other)
    assert fake.revoke_tokens(other) == [expiring, lasting]
    assert await error_of(client(fake, lasting).auth_test()) == "token_revoked"
    # The first workspace keeps working.
    assert (await client(fake, fake.bot_token).auth_test())["ok"]
