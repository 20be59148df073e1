"""A workspace removes the app: its work stops, the providers' copies and spool files go, its data
is erased, its installation deleted; later requests from it are acknowledged and ignored, and a
re-install starts clean. The other workspace goes on as before."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.app import Runtime, running_bot
from storage.models import ChannelSettings, JobState, Workspace, WorkspaceKey
from tests.conftest import ManualClock, SettingsFactory, final_replies
from tests.e2e.test_workspaces import (
    NORTH,
    SOUTH,
    Browser,
    install,
    multi_workspace,
    share,
)
from tests.fakes.slack import FakeSlack, FakeWorkspace
from tests.fakes.soniox import FakeSoniox


async def post_signed(
    runtime: Runtime, fake: FakeSlack, body: str, *, form: bool = False, **headers: str
) -> httpx.Response:
    content_type = "application/x-www-form-urlencoded" if form else "application/json"
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"http://127.0.0.1:{runtime.port}/slack/events",
            content=body,
            headers={**fake.signed_headers(body, content_type=content_type), **headers},
        )


async def deliver(runtime: Runtime, fake: FakeSlack, envelope: dict[str, Any], retry: int = 0):
    """Send an Events API envelope as Slack does (``retry`` > 0: a redelivery of it)."""
    extra = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "timeout"} if retry else {}
    answer = await post_signed(runtime, fake, json.dumps(envelope), **extra)
    assert answer.status_code == 200, answer.text
    return answer


def calls_with(fake: FakeSlack, tokens: list[str], since: int) -> list[str]:
    """The paths of the requests made to Slack with any of ``tokens`` since request ``since``."""
    bearers = {f"Bearer {token}" for token in tokens}
    return [r.path for r in fake.requests[since:] if r.headers.get("Authorization") in bearers]


async def running_north_batch(runtime: Runtime, north: FakeWorkspace) -> str:
    (batch,) = await runtime.store.running_batches(Workspace(north.team_id), NORTH)
    return batch.id


async def test_uninstalling_while_a_file_is_in_flight_stops_deletes_and_erases_its_work(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    south = fake_slack.add_workspace("T0SOUTH", channels={SOUTH})
    fake_soniox.polls_until_complete = 10**6  # every transcription stays processing
    clock = ManualClock()
    settings = multi_workspace(make_settings, fake_slack)
    async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
        store = runtime.store
        await install(runtime, fake_slack, north)
        await install(runtime, fake_slack, south)
        north_ws, south_ws = Workspace(north.team_id), Workspace(south.team_id)
        await store.save_channel_settings(
            north_ws, ChannelSettings(NORTH, vocabulary=["Northwind"]), clock()
        )
        in_north = await share(runtime, fake_slack, north, NORTH)
        in_south = await share(runtime, fake_slack, south, SOUTH)
        await fake_soniox.wait_for(lambda: len(fake_soniox.create_bodies) == 2)
        processing = await running_north_batch(runtime, north)

        # A second file of north is being uploaded when the app is removed: Soniox holds the
        # upload, and the file waits in the spool.
        fake_soniox.inject(r"^/v1/files$", method="POST", status=0, delay=3)
        uploads = len(fake_soniox.requests_to(r"^/v1/files$", "POST"))
        second = await share(runtime, fake_slack, north, NORTH)
        await fake_soniox.wait_for(
            lambda: len(fake_soniox.requests_to(r"^/v1/files$", "POST")) > uploads
        )
        assert list(settings.spool_path.iterdir()), "the second file is in the spool"
        north_jobs = [
            job
            for batch in (await store.running_batches(north_ws, NORTH))
            for job in await store.jobs_of(batch.id)
        ]
        assert len(north_jobs) == 2
        (north_file,) = [job.provider_file_id for job in north_jobs if job.provider_file_id]
        (north_transcription,) = [job.provider_job_id for job in north_jobs if job.provider_job_id]

        north_tokens = fake_slack.tokens_of(north)
        revoked, uninstalled = fake_slack.uninstall(north)
        since = len(fake_slack.requests)
        await deliver(runtime, fake_slack, uninstalled)

        # Durable before the ack: the work is stopped and erased, the installation gone.
        assert await store.workspace_removed(north_ws)
        assert await store.installation(WorkspaceKey(None, north.team_id)) is None
        assert await store.running_batches(north_ws, NORTH) == []
        batch = await store.get_batch(processing)
        assert batch is not None and batch.state.value == "cancelled"
        assert (batch.channel_id, batch.message_ts, batch.user_id) == ("", "", None)
        for job in await store.jobs_of(processing):
            assert job.state is JobState.FAILED
            assert (job.filename, job.transcript, job.slack_file_id) == ("", None, None)
        assert await store.channel_settings(north_ws, NORTH) == ChannelSettings(NORTH)
        # Promptly after the ack: the upload stopped, the spool file deleted.
        await fake_slack.wait_for(lambda: not list(settings.spool_path.iterdir()), timeout=2)
        await fake_slack.wait_for(lambda: runtime.engine.steps_running == 0, timeout=2)

        # Soniox lets a transcription go only once it has ended: the clean-up tries again.
        await fake_soniox.wait_for(
            lambda: fake_soniox.requests_to(rf"^/v1/transcriptions/{north_transcription}$")
        )
        await fake_soniox.complete_all()
        fake_soniox.polls_until_complete = 0
        clock.advance(seconds=61)
        await fake_soniox.wait_for(
            lambda: (
                north_transcription in fake_soniox.deleted_transcriptions
                and north_file in fake_soniox.deleted_files
            ),
            timeout=15,
        )
        await fake_slack.wait_for(lambda: final_replies(fake_slack, in_south), timeout=15)
        assert await store.finished_batches(south_ws, SOUTH, 10)
        assert not await store.workspace_removed(south_ws)
        # The upload Soniox held was answered after the app stopped waiting for it: that copy
        # is found and deleted too (and south's, its transcript delivered).
        await fake_soniox.wait_for(lambda: not fake_soniox.files, timeout=15)
        # The other order's event and redeliveries of both change nothing.
        await deliver(runtime, fake_slack, revoked)
        await deliver(runtime, fake_slack, uninstalled, retry=1)

    assert final_replies(fake_slack, in_north) == []
    assert final_replies(fake_slack, second) == []
    assert calls_with(fake_slack, north_tokens, since) == []
    assert not [m for m in fake_slack.messages if m.get("channel") == NORTH and m["ts"] > since]


@pytest.mark.parametrize("order", ["app_uninstalled first", "tokens_revoked first"])
async def test_either_event_in_either_order_removes_and_later_requests_are_ignored(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox, order: str
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    south = fake_slack.add_workspace("T0SOUTH", channels={SOUTH})
    async with running_bot(multi_workspace(make_settings, fake_slack), host="127.0.0.1") as runtime:
        store = runtime.store
        await install(runtime, fake_slack, north)
        await install(runtime, fake_slack, south)
        old = await share(runtime, fake_slack, north, NORTH)
        await fake_slack.wait_for(lambda: final_replies(fake_slack, old))
        north_ws = Workspace(north.team_id)
        assert await store.finished_batches(north_ws, NORTH, 10)

        revoked, uninstalled = fake_slack.uninstall(north)
        first, then = (
            (uninstalled, revoked)
            if order == "app_uninstalled first"
            else (
                revoked,
                uninstalled,
            )
        )
        await deliver(runtime, fake_slack, first)
        assert await store.workspace_removed(north_ws)
        assert await store.installation(WorkspaceKey(None, north.team_id)) is None
        assert await store.finished_batches(north_ws, NORTH, 10) == []
        await deliver(runtime, fake_slack, first, retry=1)
        await deliver(runtime, fake_slack, then)
        await deliver(runtime, fake_slack, then, retry=2)

        # Later requests from the removed workspace: a 200, nothing recorded, no Slack call.
        counts = await store.count_batches_by_state()
        since, responses = len(fake_slack.requests), len(fake_slack.responses)
        late = fake_slack.add_file(name="late.wav", content=b"RIFF", workspace=north)
        event = fake_slack.message_event(channel=NORTH, files=[late])
        answer = await deliver(
            runtime, fake_slack, fake_slack.event_callback(event, workspace=north)
        )
        assert answer.text == ""
        fields = fake_slack.slash_command("status", channel=NORTH)
        fields["team_id"] = north.team_id
        command = await post_signed(runtime, fake_slack, urlencode(fields), form=True)
        assert (command.status_code, command.text) == (200, "")
        # A forged request from it is still refused.
        forged = json.dumps(fake_slack.event_callback(event, workspace=north))
        async with httpx.AsyncClient() as client:
            refused = await client.post(
                f"http://127.0.0.1:{runtime.port}/slack/events",
                content=forged,
                headers=fake_slack.signed_headers(forged, secret="not-the-secret"),
            )
        assert refused.status_code == 401
        await runtime.engine.run_cycle()
        assert await store.count_batches_by_state() == counts
        assert fake_slack.requests[since:] == []
        assert len(fake_slack.responses) == responses

        # Installed again: it works, and starts clean.
        done = await Browser(runtime.port).install(north)
        assert done.status_code == 200, done.text
        new_token = fake_slack.oauth_exchanges[-1]["access_token"]
        assert not await store.workspace_removed(north_ws)
        assert await store.finished_batches(north_ws, NORTH, 10) == []
        again = await share(runtime, fake_slack, north, NORTH)
        await fake_slack.wait_for(lambda: final_replies(fake_slack, again))
        assert len(final_replies(fake_slack, again)) == 1, final_replies(fake_slack, again)
        assert {
            r.headers["Authorization"]
            for r in fake_slack.requests_to(r"^/api/chat\.postMessage$")
            if isinstance(r.body, dict) and r.body.get("thread_ts") == again["ts"]
        } == {f"Bearer {new_token}"}
        assert await store.installation(WorkspaceKey(None, south.team_id)) is not None


async def test_a_revocation_of_users_tokens_only_changes_nothing(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    async with running_bot(multi_workspace(make_settings, fake_slack), host="127.0.0.1") as runtime:
        await install(runtime, fake_slack, north)
        users_only = {"type": "tokens_revoked", "tokens": {"oauth": ["U0ALICE"], "bot": []}}
        await deliver(runtime, fake_slack, fake_slack.event_callback(users_only, workspace=north))
        assert not await runtime.store.workspace_removed(Workspace(north.team_id))
        assert await runtime.store.installation(WorkspaceKey(None, north.team_id)) is not None
        event = await share(runtime, fake_slack, north, NORTH)
        await fake_slack.wait_for(lambda: final_replies(fake_slack, event))


async def test_socket_mode_uninstall_removes_the_workspace(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    north = fake_slack.add_workspace("T0NORTH", channels={NORTH})
    settings = multi_workspace(make_settings, fake_slack, slack_app_token=fake_slack.app_token)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        await fake_slack.wait_for(lambda: fake_slack.connected)
        await install(runtime, fake_slack, north)
        revoked, _ = fake_slack.uninstall(north)
        envelope = await fake_slack.send_envelope(revoked)
        await fake_slack.wait_for_ack(envelope)
        assert await runtime.store.workspace_removed(Workspace(north.team_id))
        assert await runtime.store.installation(WorkspaceKey(None, north.team_id)) is None
        # A later event over the socket is acknowledged and ignored.
        since = len(fake_slack.requests)
        late = fake_slack.add_file(name="late.wav", content=b"RIFF", workspace=north)
        event = fake_slack.message_event(channel=NORTH, files=[late])
        later = await fake_slack.send_envelope(fake_slack.event_callback(event, workspace=north))
        await fake_slack.wait_for_ack(later)
        assert await runtime.store.count_batches_by_state() == {}
        assert fake_slack.requests[since:] == []


async def test_one_workspace_bot_uninstalled_erases_its_data_and_says_so(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    own = Workspace(fake_slack.team_id)
    async with running_bot(make_settings(), host="127.0.0.1") as runtime:
        event = fake_slack.message_event(channel="C0GENERAL", files=[fake_slack.add_file()])
        await deliver(runtime, fake_slack, fake_slack.event_callback(event))
        await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
        _, uninstalled = fake_slack.uninstall(fake_slack.workspace)
        await deliver(runtime, fake_slack, uninstalled)
        assert await runtime.store.workspace_removed(own)
        assert await runtime.store.finished_batches(own, "C0GENERAL", 10) == []
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"http://127.0.0.1:{runtime.port}/healthz")).json()
        assert health["status"] == "degraded"
        assert any("uninstalled" in problem for problem in health["problems"])

    # Installed again, with a new bot token: the bot works there again, from a clean start.
    fake_slack.bot_token = fake_slack.issue_bot_token(fake_slack.workspace)
    async with running_bot(make_settings(), host="127.0.0.1") as runtime:
        assert not await runtime.store.workspace_removed(own)
        again = fake_slack.message_event(channel="C0GENERAL", files=[fake_slack.add_file()])
        await deliver(runtime, fake_slack, fake_slack.event_callback(again))
        await fake_slack.wait_for(lambda: final_replies(fake_slack, again))
        assert len(await runtime.store.finished_batches(own, "C0GENERAL", 10)) == 1
