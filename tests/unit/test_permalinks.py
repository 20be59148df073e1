"""Message links from ``chat.getPermalink``, kept in memory up to a bound."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot import slack_api
from bot.slack_api import SlackGateway, build_web_client
from tests.fakes.slack import FakeSlack


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


async def test_links_are_kept_up_to_a_bound_least_recently_used_first(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slack_api, "PERMALINKS_KEPT", 2)
    gateway = SlackGateway(build_web_client(fake.bot_token, fake.api_url))
    parent = fake.message_event(files=[])["ts"]
    reply = await gateway.post_reply(
        channel="C0GENERAL", thread_ts=parent, text="hi", blocks=[], batch_id="b-1"
    )

    assert await gateway.permalink("C0GENERAL", reply) == (
        f"{fake.permalink_base}/archives/C0GENERAL/p{reply.replace('.', '')}"
        f"?thread_ts={parent}&cid=C0GENERAL"
    )
    assert await gateway.permalink("C0GENERAL", parent) is not None
    assert await gateway.permalink("C0GENERAL", reply) is not None  # kept, and now the newest
    assert len(fake.api_args("chat.getPermalink")) == 2

    other = fake.message_event(files=[])["ts"]
    assert await gateway.permalink("C0GENERAL", other) is not None  # the parent's link goes
    assert await gateway.permalink("C0GENERAL", reply) is not None
    assert await gateway.permalink("C0GENERAL", parent) is not None
    asked = [args["message_ts"] for args in fake.api_args("chat.getPermalink")]
    assert asked == [reply, parent, other, parent]

    assert await gateway.permalink("C0GENERAL", "1.000001") is None, "message_not_found"
