"""Each workspace's work kept apart, as people see it through ``/transcribe``: a batch of another
workspace in the same channel (Slack Connect) is not found, and what a single-workspace bot
recorded before workspaces were kept stays its own."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from bot.app import Runtime, running_bot
from bot.database import open_store
from storage.models import Batch, ChannelSettings, JobKind, NewBatch, NewJob, Workspace
from storage.store import Store
from tests.conftest import SettingsFactory, SlackSender, on_both_backends
from tests.e2e.test_commands import command_answer
from tests.fakes.slack import FORM_CONTENT_TYPE, FakeSlack
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

#: A workspace that shares the fake's channel C0GENERAL through Slack Connect.
NEIGHBOUR = Workspace("T0NEIGHBOUR", "E0NEIGHBOUR")
THEN = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


async def failed_batch(store: Store, workspace: Workspace, ts: str) -> Batch:
    """A batch whose one file was refused, given up on: nothing is left for the bot to do with
    it, and ``retry`` would take it."""
    batch = await store.create_batch(
        NewBatch(
            team_id=workspace.team_id or None,
            enterprise_id=workspace.enterprise_id,
            channel_id="C0GENERAL",
            message_ts=ts,
            thread_ts=ts,
            user_id="U0ALICE",
            provider="soniox",
            source="upload",
        ),
        [NewJob(kind=JobKind.URL, filename="theirs.mp3", refused_reason="too large")],
        THEN,
    )
    assert batch is not None
    assert await store.mark_undeliverable(batch.id, THEN)
    found = await store.get_batch(batch.id)
    assert found is not None
    return found


@on_both_backends
async def test_a_batch_of_another_workspace_in_the_same_channel_is_not_found(
    bot: Runtime, slack_sender: SlackSender
) -> None:
    theirs = await failed_batch(bot.store, NEIGHBOUR, "1700000000.000100")

    for verb in ("retry", "cancel"):
        answer = await command_answer(slack_sender, f"{verb} {theirs.id}")
        assert f"no batch `{theirs.id}` in this channel" in answer, verb
    assert theirs.id not in await command_answer(slack_sender, "status")
    assert theirs.id not in await command_answer(slack_sender, "retry")
    assert await bot.store.get_batch(theirs.id) == theirs, "untouched"
    assert await bot.store.finished_batches(NEIGHBOUR, "C0GENERAL", 10) == [theirs]


@on_both_backends
async def test_work_recorded_before_workspaces_were_kept_stays_the_bots_own(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    settings = make_settings()
    store = await open_store(settings)
    try:
        before = await failed_batch(store, Workspace(""), "1700000000.000200")
        await store.save_channel_settings(
            Workspace(""), ChannelSettings("C0GENERAL", auto=False), THEN
        )
    finally:
        await store.close()
    assert before.team_id is None

    async with running_bot(settings, host="127.0.0.1") as runtime:
        sender = SlackSender(fake_slack, runtime)
        assert before.id in await command_answer(sender, "status")
        assert "off" in (await command_answer(sender, "auto")).lower()
        adopted = await runtime.store.get_batch(before.id)
        assert adopted is not None and adopted.workspace == FAKE_WORKSPACE


async def batches_of(store: Store, workspace: Workspace, channel: str) -> list[Batch]:
    return [
        *await store.running_batches(workspace, channel),
        *await store.finished_batches(workspace, channel, 100),
    ]


@on_both_backends
async def test_work_in_an_enterprise_grid_workspace_keeps_its_organisation(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    fake_slack.workspace.enterprise_id = "E0GRID"
    grid = Workspace(fake_slack.team_id, "E0GRID")
    async with running_bot(make_settings(), host="127.0.0.1") as runtime:
        sender = SlackSender(fake_slack, runtime)
        shared = fake_slack.message_event(text="<https://media.example.com/standup.mp3>")
        assert (await sender.event(shared)).status_code == 200
        (batch,) = await batches_of(runtime.store, grid, "C0GENERAL")
        assert batch.workspace == grid

        # Slack sends a slash command's organisation in its form.
        form = fake_slack.slash_command("https://media.example.com/retro.mp3")
        form["enterprise_id"] = "E0GRID"
        body = urlencode(form)
        headers = fake_slack.signed_headers(body, content_type=FORM_CONTENT_TYPE)
        assert (await sender.post(body, headers)).status_code == 200
        by_source = {b.source: b for b in await batches_of(runtime.store, grid, "C0GENERAL")}
        assert by_source["command"].workspace == grid
        assert by_source["link"].workspace == grid
        await fake_soniox.wait_for(lambda: len(fake_soniox.create_bodies) == 2)
