"""An event from a Slack Connect channel names, at its top, the workspace where it
happened (``team_id``: the guest's, where the app may not be installed) and, in
``authorizations``, the installation it is delivered to. Bolt authorizes the installation's;
the work must use the same one, or a file shared by a guest is never answered."""

from __future__ import annotations

import json

import httpx

from bot.app import running_bot
from bot.runtime import Runtime
from tests.conftest import SettingsFactory, SlackSender, final_replies
from tests.e2e.test_commands import command_answer
from tests.e2e.test_workspaces import NORTH, install, multi_workspace, tokens_used
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox


async def test_a_file_shared_by_a_connected_guest_is_answered_with_the_hosts_token(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    guest = fake_slack.add_workspace("T0GUEST")  # the app is not installed there
    async with running_bot(multi_workspace(make_settings, fake_slack), host="127.0.0.1") as runtime:
        north_token = await install(runtime, fake_slack, north)
        file = fake_slack.add_file(name="guest.wav", content=silent_wav(), workspace=north)
        event = fake_slack.message_event(channel=NORTH, files=[file])
        event["user_team"] = event["team"] = guest.team_id
        envelope = fake_slack.event_callback(event, workspace=north)
        # Where the event happened: the guest's workspace; delivered to north's installation.
        envelope["team_id"] = envelope["context_team_id"] = guest.team_id
        envelope["is_ext_shared_channel"] = True
        body = json.dumps(envelope)
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"http://127.0.0.1:{runtime.port}/slack/events",
                content=body,
                headers=fake_slack.signed_headers(body),
            )
        assert answer.status_code == 200
        await fake_slack.wait_for(lambda: final_replies(fake_slack, event), timeout=8)
    assert tokens_used(fake_slack, r"^/api/chat\.postMessage$", NORTH) == {north_token}


async def test_auto_off_holds_for_a_guests_upload_in_a_connected_channel(
    bot: Runtime, slack_sender: SlackSender, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    assert "is now *off*" in await command_answer(slack_sender, "auto off")

    file = fake_slack.add_file(name="guest.wav", content=silent_wav())
    event = fake_slack.message_event(files=[file], user="U0GUEST")
    event["team"] = event["user_team"] = "T0GUEST"
    envelope = fake_slack.event_callback(event)
    envelope["team_id"] = envelope["context_team_id"] = "T0GUEST"
    envelope["is_ext_shared_channel"] = True
    body = json.dumps(envelope)
    assert (await slack_sender.post(body, fake_slack.signed_headers(body))).status_code == 200
    await bot.engine.run_cycle()

    assert ("C0GENERAL", event["ts"]) not in fake_slack.reactions, "auto is off in the channel"
    assert fake_slack.downloads == [] and fake_soniox.create_bodies == []
