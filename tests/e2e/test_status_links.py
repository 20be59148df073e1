"""``/transcribe status`` links each finished batch to its thread with the link Slack gives
(``chat.getPermalink``), not one built from the team's subdomain."""

from __future__ import annotations

from bot.app import Runtime
from tests.conftest import SlackSender
from tests.e2e.test_commands import command_answer, share_file
from tests.fakes.slack import FakeSlack
from tests.workspaces import FAKE_WORKSPACE


async def finished_batch(bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack) -> str:
    done = await share_file(slack_sender, name="weekly.wav")
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get(("C0GENERAL", done["ts"])) == ["white_check_mark"]
    )
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)
    return batch.id


async def test_status_links_come_from_slack_and_are_asked_for_once(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    batch_id = await finished_batch(bot, slack_sender, fake_slack)
    (batch,) = await bot.store.finished_batches(FAKE_WORKSPACE, "C0GENERAL", 10)
    assert batch.reply_ts is not None

    first = await command_answer(slack_sender, "status")
    second = await command_answer(slack_sender, "status")

    (asked,) = fake_slack.api_args("chat.getPermalink")
    assert (asked["channel"], asked["message_ts"]) == ("C0GENERAL", batch.reply_ts)
    assert fake_slack.permalink_base != f"https://{fake_slack.team_domain}.slack.com"
    assert f"<{fake_slack.permalink_base}/archives/C0GENERAL/p" in first
    assert f"|{batch_id}>" in first
    assert ".slack.com/archives" not in first.replace(fake_slack.permalink_base, "")
    assert second == first


async def test_status_goes_out_without_a_link_slack_would_not_give(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack
) -> None:
    batch_id = await finished_batch(bot, slack_sender, fake_slack)
    fake_slack.inject(
        r"^/api/chat\.getPermalink$", status=200, body={"ok": False, "error": "internal_error"}
    )

    text = await command_answer(slack_sender, "status")

    assert f"• `{batch_id}` *weekly.wav* · transcribed" in text
    assert "<http" not in text
    # A failure is not remembered: the next status asks again, and links it.
    again = await command_answer(slack_sender, "status")
    assert f"|{batch_id}>" in again
    assert len(fake_slack.api_args("chat.getPermalink")) == 2
