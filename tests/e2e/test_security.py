"""The bot token goes to Slack's file hosts only; nothing secret reaches a reply."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bot import slack_files
from bot.app import Runtime
from tests.conftest import SlackSender, final_replies
from tests.fakes.server import LoopbackServer
from tests.fakes.slack import SIGN_IN_PAGE, FakeSlack, silent_wav


class Elsewhere(LoopbackServer):
    """A host that is not Slack: it serves audio to anyone, and a sign-in page under ``/sso/``
    (as a company's identity provider would), and notes who asked."""

    def routes(self, app: web.Application) -> None:
        async def audio(_: web.Request) -> web.Response:
            return web.Response(body=silent_wav(), content_type="audio/wav")

        async def sign_in(_: web.Request) -> web.Response:
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html")

        app.router.add_get("/sso/{rest:.*}", sign_in)
        app.router.add_get("/{name}", audio)


@pytest.fixture
async def elsewhere() -> AsyncIterator[Elsewhere]:
    server = Elsewhere()
    await server.start()
    yield server
    await server.stop()


async def test_token_is_never_sent_to_a_host_that_is_not_slack(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender, elsewhere: Elsewhere
) -> None:
    file = fake_slack.add_file(name="memo.wav", content=silent_wav())
    # Same machine, other name: only the configured Slack host may see the token.
    foreign = f"http://localhost:{elsewhere.port}/memo.wav"
    file["url_private_download"] = file["url_private"] = foreign
    event = fake_slack.message_event(files=[file])

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    assert elsewhere.requests == [], "nothing was fetched from the foreign host"
    assert "does not point to Slack" in reply["text"]


async def test_replies_and_errors_carry_no_secret(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    fake_slack.scopes.remove("files:read")
    event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
    jobs = await bot.store.jobs_of(reply["metadata"]["event_payload"]["batch_id"])
    assert jobs and jobs[0].error_detail, "the failure was recorded in detail"
    for secret in (fake_slack.bot_token, fake_slack.signing_secret, "soniox-fake-key"):
        assert secret not in str(reply)
        assert all(secret not in str(job) for job in jobs)


# -- redirects of file downloads -----------------------------------------------------------------


async def test_a_download_redirected_to_another_slack_host_is_followed_with_the_token(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    file = fake_slack.add_file(name="memo.wav", content=silent_wav())
    fake_slack.redirect_download(file["id"])
    event = fake_slack.message_event(files=[file])

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    assert "Hello from memo.wav." in reply["text"]
    (edge,) = fake_slack.requests_to(r"^/files-edge/")
    assert edge.headers["Authorization"] == f"Bearer {fake_slack.bot_token}"
    assert fake_slack.downloads == [{"file_id": file["id"], "authorized": True}]


async def test_a_download_redirected_off_slack_is_not_followed_and_says_so(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender, elsewhere: Elsewhere
) -> None:
    file = fake_slack.add_file(name="memo.wav", content=silent_wav())
    # Same machine, other name: not one of Slack's hosts.
    fake_slack.redirect_download(file["id"], f"http://localhost:{elsewhere.port}/sso/login?f=1")
    event = fake_slack.message_event(files=[file])

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    assert elsewhere.requests == [], "the redirect was not followed"
    assert "led outside Slack (to localhost)" in reply["text"]
    assert "files:read" not in reply["text"], "not blamed on a missing scope"
    assert len(fake_slack.requests_to(r"^/files-pri/")) == 1, "failed at once, not retried"


async def test_a_download_that_keeps_redirecting_stops(
    bot: Runtime, fake_slack: FakeSlack, slack_sender: SlackSender
) -> None:
    file = fake_slack.add_file(name="memo.wav", content=silent_wav())
    fake_slack.redirect_download(file["id"], file["url_private_download"])
    event = fake_slack.message_event(files=[file])

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    assert "kept redirecting" in reply["text"]
    assert len(fake_slack.requests_to(r"^/files-pri/")) == slack_files.MAX_REDIRECTS + 1
