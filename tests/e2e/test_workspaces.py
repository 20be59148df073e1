"""Many workspaces: the app installed in each through the real OAuth flow (the install page on
PORT, Slack's authorize page, the redirect back), and each workspace's work done with its own
bot token, refreshed when it is about to expire."""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

import httpx

from bot.app import Runtime, running_bot
from tests.conftest import ManualClock, SettingsFactory, final_replies
from tests.fakes.slack import FakeSlack, FakeWorkspace, silent_wav
from tests.fakes.soniox import FakeSoniox

NORTH, SOUTH = "C0NORTH", "C0SOUTH"


def multi_workspace(make_settings: SettingsFactory, fake: FakeSlack, **overrides: Any) -> Any:
    """Settings of a bot installed through OAuth: the app's credentials, no bot token."""
    return make_settings(
        slack_bot_token=None,
        slack_client_id=fake.client_id,
        slack_client_secret=fake.client_secret,
        **overrides,
    )


class Browser:
    """A person's browser on this machine: it keeps the install page's cookie, and follows the
    install to Slack's authorize page and back."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.cookie = ""

    async def install_page(self) -> str:
        """Open the install page; the URL of Slack's authorize page it links to."""
        async with httpx.AsyncClient() as client:
            page = await client.get(f"{self.base}/slack/install")
        assert page.status_code == 200, page.text
        # Bolt sets its state cookie "Secure": a browser keeps it for localhost all the same.
        self.cookie = page.headers["set-cookie"].split(";", 1)[0]
        found = re.search(r'href="([^"]*/oauth/v2/authorize[^"]*)"', page.text)
        assert found is not None, page.text
        return html.unescape(found[1])

    async def approve(self, authorize_url: str, workspace: FakeWorkspace) -> str:
        """Approve the install in ``workspace`` on Slack's page: where it sends the browser."""
        async with httpx.AsyncClient() as client:
            approved = await client.get(f"{authorize_url}&team={workspace.team_id}")
        assert approved.status_code == 302, approved.text
        return approved.headers["location"]

    async def back(self, redirect: str) -> httpx.Response:
        async with httpx.AsyncClient() as client:
            return await client.get(redirect, headers={"Cookie": self.cookie})

    async def install(self, workspace: FakeWorkspace) -> httpx.Response:
        return await self.back(await self.approve(await self.install_page(), workspace))


async def install(runtime: Runtime, fake: FakeSlack, workspace: FakeWorkspace) -> str:
    """Install the app in ``workspace`` through the flow; the bot token it was given."""
    fake.redirect_urls = [f"http://127.0.0.1:{runtime.port}/slack/oauth_redirect"]
    done = await Browser(runtime.port).install(workspace)
    assert done.status_code == 200, done.text
    (exchange,) = [
        each
        for each in fake.oauth_exchanges
        if each["team_id"] == workspace.team_id and each["grant_type"] == "authorization_code"
    ]
    return str(exchange["access_token"])


async def share(
    runtime: Runtime, fake: FakeSlack, workspace: FakeWorkspace, channel: str
) -> dict[str, Any]:
    """Someone in ``workspace`` shares a recording in ``channel``; the event, as Slack sends it."""
    file = fake.add_file(name=f"{channel}.wav", content=silent_wav(), workspace=workspace)
    event = fake.message_event(channel=channel, files=[file])
    body = json.dumps(fake.event_callback(event, workspace=workspace))
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"http://127.0.0.1:{runtime.port}/slack/events",
            content=body,
            headers=fake.signed_headers(body),
        )
    assert answer.status_code == 200, answer.text
    return event


def tokens_used(fake: FakeSlack, path: str, channel: str | None = None) -> set[str]:
    """The bot tokens of the requests to ``path`` (for ``channel``, if given)."""
    found = set()
    for request in fake.requests:
        if not re.search(path, request.path):
            continue
        body = request.body if isinstance(request.body, dict) else {}
        if channel is not None and body.get("channel") != channel:
            continue
        found.add(request.headers.get("Authorization", "").removeprefix("Bearer "))
    return found


def downloads_of(fake: FakeSlack, file_id: str) -> set[str]:
    return {
        request.headers.get("Authorization", "").removeprefix("Bearer ")
        for request in fake.requests
        if request.path.startswith("/files-pri/") and file_id in request.path
    }


async def test_two_workspaces_installed_through_oauth_each_answered_with_its_own_token(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    south = fake_slack.add_workspace("T0SOUTH", channels={SOUTH})
    settings = multi_workspace(make_settings, fake_slack)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        north_token = await install(runtime, fake_slack, north)
        south_token = await install(runtime, fake_slack, south)
        assert north_token != south_token

        in_north = await share(runtime, fake_slack, north, NORTH)
        in_south = await share(runtime, fake_slack, south, SOUTH)
        await fake_slack.wait_for(
            lambda: final_replies(fake_slack, in_north) and final_replies(fake_slack, in_south)
        )

    assert tokens_used(fake_slack, r"^/api/chat\.postMessage$", NORTH) == {north_token}
    assert tokens_used(fake_slack, r"^/api/chat\.postMessage$", SOUTH) == {south_token}
    # Slack answers another workspace's token channel_not_found: the reactions are there, so
    # each was made with its own workspace's token.
    assert fake_slack.reactions[(NORTH, in_north["ts"])]
    assert fake_slack.reactions[(SOUTH, in_south["ts"])]
    assert tokens_used(fake_slack, r"^/api/reactions\.") == {north_token, south_token}
    (north_file,) = in_north["files"]
    (south_file,) = in_south["files"]
    assert downloads_of(fake_slack, north_file["id"]) == {north_token}
    assert downloads_of(fake_slack, south_file["id"]) == {south_token}
    assert all(each["authorized"] for each in fake_slack.downloads)


async def test_a_forged_or_reused_state_is_refused(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    async with running_bot(multi_workspace(make_settings, fake_slack), host="127.0.0.1") as runtime:
        fake_slack.redirect_urls = [f"http://127.0.0.1:{runtime.port}/slack/oauth_redirect"]
        browser = Browser(runtime.port)
        authorize_url = await browser.install_page()
        redirect = await browser.approve(authorize_url, north)

        # A state the app never issued, with a matching cookie: refused, no code exchanged.
        forged = re.sub(r"state=[^&]+", "state=forged-state", redirect)
        attacker = Browser(runtime.port)
        attacker.cookie = "slack-app-oauth-state=forged-state"
        refused = await attacker.back(forged)
        assert refused.status_code in (400, 401, 403)
        assert fake_slack.oauth_exchanges == []

        assert (await browser.back(redirect)).status_code == 200
        assert len(fake_slack.oauth_exchanges) == 1
        # The same redirect again: its state was used up.
        again = await browser.back(redirect)
        assert again.status_code in (400, 401, 403)
        assert len(fake_slack.oauth_exchanges) == 1


async def test_a_token_that_expires_mid_job_is_refreshed_and_the_job_finishes(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    fake_slack.token_rotation = True
    fake_slack.token_lifetime_seconds = 3 * 3600
    fake_soniox.polls_until_complete = 10**6
    clock = ManualClock()
    settings = multi_workspace(make_settings, fake_slack)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        first = await install(runtime, fake_slack, north)
        event = await share(runtime, fake_slack, north, NORTH)
        await fake_soniox.wait_for(lambda: fake_soniox.create_bodies)
        # Three hours on: the token has expired, at Slack and by the bot's clock.
        clock.advance(hours=3, minutes=1)
        fake_slack.expire_token(first)
        expired_at = len(fake_slack.requests)
        fake_soniox.polls_until_complete = 0
        await fake_slack.wait_for(lambda: final_replies(fake_slack, event), timeout=20)

    refreshes = [e for e in fake_slack.oauth_exchanges if e["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1, "refreshed once, its single-use refresh token spent once"
    second = refreshes[0]["access_token"]
    assert tokens_used(fake_slack, r"^/api/chat\.postMessage$", NORTH) == {second}
    used_after = [
        request.path
        for request in fake_slack.requests[expired_at:]
        if request.headers.get("Authorization") == f"Bearer {first}"
    ]
    assert used_after == [], "the expired token was never used after it expired"


async def test_socket_mode_with_oauth_serves_the_install_page(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    settings = multi_workspace(make_settings, fake_slack, slack_app_token=fake_slack.app_token)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        await fake_slack.wait_for(lambda: fake_slack.connected)
        token = await install(runtime, fake_slack, north)
    assert token in fake_slack.tokens_of(north)


async def test_a_rate_limited_workspace_does_not_hold_back_the_others_reply(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    south = fake_slack.add_workspace("T0SOUTH", channels={SOUTH})
    async with running_bot(multi_workspace(make_settings, fake_slack), host="127.0.0.1") as runtime:
        await install(runtime, fake_slack, north)
        await install(runtime, fake_slack, south)
        # Slack asks the north workspace's bot to wait half a minute before posting again.
        fake_slack.inject(
            r"^/api/chat\.postMessage$",
            status=429,
            body={"ok": False, "error": "ratelimited"},
            headers={"Retry-After": "30"},
        )
        in_north = await share(runtime, fake_slack, north, NORTH)
        await fake_slack.wait_for(
            lambda: any(r.path == "/api/chat.postMessage" for r in fake_slack.requests)
        )
        in_south = await share(runtime, fake_slack, south, SOUTH)
        started = asyncio.get_running_loop().time()
        await fake_slack.wait_for(lambda: final_replies(fake_slack, in_south), timeout=10)
        waited = asyncio.get_running_loop().time() - started
        assert waited < 10
        assert final_replies(fake_slack, in_north) == [], "north waits out its Retry-After"
