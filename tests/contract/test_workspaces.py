"""Each workspace's work kept apart: batches and channel settings carry their workspace, the
channel views show a workspace its own, rows recorded without one are adopted, and a workspace
that removed the app has its work stopped and erased."""

from __future__ import annotations

from datetime import timedelta

from storage.models import (
    Batch,
    BatchState,
    ChannelSettings,
    Job,
    JobState,
    ProgressShown,
    ReplyFile,
    SlackInstallation,
    Workspace,
    WorkspaceKey,
)
from storage.states import FINISHED_BATCH_STATES, FINISHED_JOB_STATES
from storage.store import Store
from storage.workspace_sql import ERASED_WORKSPACE
from tests.contract.backends import Backend
from tests.contract.builders import (
    FAILURE,
    NOW,
    batch_at,
    batch_with,
    job_at,
    new_batch,
    new_job,
    new_link,
    next_ts,
)
from tests.workspaces import T1

#: A second workspace, in an organisation, sharing channel C1 with T1 (Slack Connect).
T2 = Workspace("T2", "E1")
#: Another workspace of T2's organisation, and one of another organisation.
T3 = Workspace("T3", "E1")
T4 = Workspace("T4", "E2")
GONE = NOW + timedelta(hours=1)


def _installation(workspace: Workspace, *, org_wide: bool = False) -> SlackInstallation:
    key = WorkspaceKey.of(
        workspace.enterprise_id, workspace.team_id, is_enterprise_install=org_wide
    )
    return SlackInstallation(
        key=key,
        bot_token="xoxb-new",
        bot_user_id="U0BOT",
        bot_id="B0BOT",
        bot_scopes=("chat:write",),
        installer_user_id="U1",
        installed_at=GONE,
    )


async def _failed_batch(store: Store, workspace: Workspace, channel: str = "C1") -> Batch:
    batch, (job,) = await batch_with(store, channel=channel, workspace=workspace)
    await store.fail_jobs([job.id], FAILURE, NOW)
    assert await store.record_reply(batch.id, "1767225600.999990", NOW)
    found = await store.get_batch(batch.id)
    assert found is not None
    return found


async def test_a_batch_keeps_its_workspace_and_organisation(store: Store) -> None:
    batch, _ = await batch_with(store, workspace=T2)
    assert batch.workspace == T2
    found = await store.get_batch(batch.id)
    assert found is not None and found.workspace == T2 and found.enterprise_id == "E1"


async def test_a_channel_in_two_workspaces_shows_each_only_its_own(store: Store) -> None:
    running_1, _ = await batch_with(store, workspace=T1)
    running_2, _ = await batch_with(store, workspace=T2)
    delivered_1 = await batch_at(store, BatchState.DELIVERED, workspace=T1)
    delivered_2 = await batch_at(store, BatchState.DELIVERED, workspace=T2)
    failed_1 = await _failed_batch(store, T1)
    failed_2 = await _failed_batch(store, T2)

    for workspace, running, finished in (
        (T1, running_1, {delivered_1.id, failed_1.id}),
        (T2, running_2, {delivered_2.id, failed_2.id}),
    ):
        assert [b.id for b in await store.running_batches(workspace, "C1")] == [running.id]
        assert {b.id for b in await store.finished_batches(workspace, "C1", 10)} == finished
        active = await store.active_batch_for_message(workspace, "C1", running_1.message_ts)
        assert (active is not None) == (workspace == T1)
    last = await store.last_failed_batch(T2, "C1")
    assert last is not None and last.id == failed_2.id
    last = await store.last_failed_batch(T1, "C1")
    assert last is not None and last.id == failed_1.id
    reply = await store.latest_reply_in_thread(T2, "C1", delivered_2.thread_ts)
    assert reply is not None and reply.id == delivered_2.id
    assert await store.latest_reply_in_thread(T1, "C1", delivered_2.thread_ts) is None
    assert await store.running_batches(T3, "C1") == []
    assert await store.last_failed_batch(T3, "C1") is None


async def test_a_running_batch_holds_back_its_own_workspaces_request_alone(store: Store) -> None:
    ts = next_ts()
    first = await store.create_batch(new_batch(ts), [new_job("F1", ts)], NOW)
    assert first is not None
    again = await store.create_batch(new_batch(ts), [new_job("F1", ts)], NOW, unless_running=True)
    assert again is None
    other = await store.create_batch(
        new_batch(ts, workspace=T2),
        [new_link("https://example.com/a.mp3")],
        NOW,
        unless_running=True,
    )
    assert other is not None and other.workspace == T2


async def test_channel_settings_of_a_shared_channel_are_each_workspaces_own(
    store: Store,
) -> None:
    first = ChannelSettings("C1", provider="soket", vocabulary=["Priya"])
    second = ChannelSettings("C1", auto=False, language_hints=["de"])
    await store.save_channel_settings(T1, first, NOW)
    assert await store.channel_settings(T2, "C1") == ChannelSettings("C1")
    await store.save_channel_settings(T2, second, NOW)
    assert await store.channel_settings(T1, "C1") == first
    assert await store.channel_settings(T2, "C1") == second


async def test_rows_without_a_workspace_are_adopted_by_one(store: Store) -> None:
    unowned = Workspace("")
    ts = next_ts()
    batch = await store.create_batch(new_batch(ts, workspace=unowned), [new_job("F1", ts)], NOW)
    assert batch is not None and batch.team_id is None
    assert [b.id for b in await store.running_batches(unowned, "C1")] == [batch.id]
    await store.save_channel_settings(unowned, ChannelSettings("C1", provider="soket"), NOW)
    await store.save_channel_settings(unowned, ChannelSettings("C2", provider="soket"), NOW)
    own = ChannelSettings("C2", auto=False)
    await store.save_channel_settings(T2, own, NOW)
    assert (await store.channel_settings(T2, "C1")).provider is None  # read before adopting
    owned, _ = await batch_with(store, workspace=T1)

    assert await store.adopt_unowned(unowned) == 0, "a workspace without a team adopts nothing"
    assert await store.adopt_unowned(T2) == 2, "the batch and C1's settings"
    adopted = await store.get_batch(batch.id)
    assert adopted is not None and adopted.workspace == T2
    assert {b.id for b in await store.running_batches(T2, "C1")} == {batch.id}
    assert await store.running_batches(unowned, "C1") == []
    assert (await store.channel_settings(T2, "C1")).provider == "soket"
    assert await store.channel_settings(T2, "C2") == own, "its own settings win"
    assert await store.channel_settings(unowned, "C1") == ChannelSettings("C1")
    still = await store.get_batch(owned.id)
    assert still is not None and still.workspace == T1, "another workspace's rows stay its own"
    assert await store.adopt_unowned(T2) == 0, "adopting twice is harmless"


async def _work_at_every_stage(store: Store, workspace: Workspace) -> dict[str, Batch]:
    """Batches of ``workspace`` in C1: one open batch per job state, and one per batch state;
    a delivered one with speaker names and reply files, an open one with a progress message."""
    batches: dict[str, Batch] = {}
    for state in JobState:
        job = await job_at(store, state, workspace=workspace)
        batch = await store.get_batch(job.batch_id)
        assert batch is not None
        batches[f"job {state.value}"] = batch
    for state in BatchState:
        batches[f"batch {state.value}"] = await batch_at(store, state, workspace=workspace)
    delivered = batches[f"batch {BatchState.DELIVERED.value}"]
    (job,) = await store.jobs_of(delivered.id)
    assert await store.name_speakers(delivered.id, {job.id: {"1": "U0ALICE"}}, NOW)
    await store.record_reply_files(delivered.id, [ReplyFile("F0REPLY", "a.txt")], NOW)
    shown = batches[f"job {JobState.PROCESSING.value}"]
    await store.record_progress_shown([ProgressShown(shown.id, "1 of 1: Alice", "5.5")], NOW)
    (uploading,) = await store.jobs_of(batches[f"job {JobState.UPLOADING.value}"].id)
    await store.mark_upload_sent([uploading.id], NOW)
    await store.save_channel_settings(workspace, ChannelSettings("C1", vocabulary=["Alice"]), NOW)
    return batches


async def _snapshot(store: Store, batches: dict[str, Batch]) -> dict[str, object]:
    found: dict[str, object] = {}
    for batch in batches.values():
        found[batch.id] = (await store.get_batch(batch.id), await store.jobs_of(batch.id))
    return found


def _erased(job: Job) -> bool:
    return (
        job.state in FINISHED_JOB_STATES
        and job.filename == ""
        and job.slack_file_id is None
        and job.url is None
        and job.download_url is None
        and job.transcript is None
        and job.raw_result is None
        and job.error is None
        and job.error_detail is None
    )


async def test_removing_a_workspace_stops_and_erases_its_work_at_every_stage(
    store: Store,
) -> None:
    kept = await _work_at_every_stage(store, T1)
    gone = await _work_at_every_stage(store, T2)
    kept_before = await _snapshot(store, kept)
    jobs_counted = sum((await store.count_jobs_by_state_and_provider()).values())
    batches_counted = sum((await store.count_batches_by_state()).values())
    running = {b.id for b in gone.values() if b.state not in FINISHED_BATCH_STATES}
    assert not await store.workspace_removed(T2)

    assert await store.remove_workspace(T2, GONE) == len(running)

    assert await store.workspace_removed(T2)
    assert not await store.workspace_removed(T1)
    assert not await store.workspace_removed(T3), "a team's removal is not its organisation's"
    for name, before in gone.items():
        batch = await store.get_batch(before.id)
        assert batch is not None and batch.workspace == Workspace(ERASED_WORKSPACE), name
        assert batch.state in FINISHED_BATCH_STATES, name
        if before.state is BatchState.OPEN:
            assert batch.state is BatchState.CANCELLED, name
        if before.state is BatchState.DELIVERING:
            assert batch.state is BatchState.UNDELIVERABLE, name
        assert (batch.user_id, batch.channel_id, batch.message_ts, batch.thread_ts) == (
            None,
            "",
            "",
            "",
        ), name
        assert (batch.status_ts, batch.status_text, batch.reply_ts) == (None, None, None), name
        assert all(_erased(job) for job in await store.jobs_of(batch.id)), name
        assert await store.speaker_naming(batch.id) is None, name
        assert await store.reply_files(batch.id) == [], name
    assert await store.channel_settings(T2, "C1") == ChannelSettings("C1")

    # Nothing more is posted or asked of Slack for it.
    gone_ids = {b.id for b in gone.values()}
    assert not gone_ids & {b.id for b in await store.batches_to_deliver(GONE)}
    progress = await store.batches_needing_progress(
        GONE, after=timedelta(0), every=timedelta(0), held_note="||"
    )
    assert not gone_ids & {b.id for b in progress}
    assert not gone_ids & {b.id for b in await store.cancelled_batches_to_settle("stopped")}
    assert not gone_ids & {job.batch_id for job in await store.due_jobs(GONE)}
    assert not gone_ids & {job.batch_id for job in await store.unfinished_jobs()}
    assert not gone_ids & {n.batch_id for n in await store.namings_to_show(GONE)}
    assert await store.running_batches(T2, "C1") == []
    assert await store.finished_batches(T2, "C1", 100) == []
    assert await store.last_failed_batch(T2, "C1") is None

    # What the providers and the spool hold is still found, and cleaned up.
    at_provider = {
        gone[f"job {state.value}"].id
        for state in (
            JobState.UPLOADED,
            JobState.SUBMITTED,
            JobState.PROCESSING,
            JobState.COMPLETED,
        )
    }
    cleaning = {job.batch_id for job in await store.jobs_to_clean_up(GONE)}
    assert at_provider <= cleaning
    spooled = {job.batch_id for job in await store.jobs_with_unneeded_spool()}
    assert gone[f"job {JobState.UPLOADING.value}"].id in spooled
    lost = {job.batch_id for job in await store.lost_answers_to_recover()}
    assert gone[f"job {JobState.UPLOADING.value}"].id in lost

    # Only anonymous counts stay, and they still count everything.
    assert sum((await store.count_jobs_by_state_and_provider()).values()) == jobs_counted
    assert sum((await store.count_batches_by_state()).values()) == batches_counted

    # The other workspace, in the same channel, is untouched.
    assert await _snapshot(store, kept) == kept_before
    assert await store.channel_settings(T1, "C1") == ChannelSettings("C1", vocabulary=["Alice"])
    assert {b.id for b in await store.running_batches(T1, "C1")} == {
        b.id for b in kept.values() if b.state not in FINISHED_BATCH_STATES
    }

    # Removing again is harmless; new work for it is not recorded.
    after = await _snapshot(store, gone)
    assert await store.remove_workspace(T2, GONE + timedelta(hours=1)) == 0
    assert await _snapshot(store, gone) == after
    ts = next_ts()
    refused = await store.create_batch(new_batch(ts, workspace=T2), [new_job("F9", ts)], GONE)
    assert refused is None
    assert sum((await store.count_batches_by_state()).values()) == batches_counted
    ts = next_ts()
    assert await store.create_batch(new_batch(ts), [new_job("F9", ts)], GONE) is not None

    # A progress message posted while the removal ran is not edited afterwards either.
    late = gone[f"job {JobState.PROCESSING.value}"]
    await store.record_progress_shown([ProgressShown(late.id, "1 of 1", "6.6")], GONE)
    assert late.id not in {b.id for b in await store.cancelled_batches_to_settle("stopped")}


async def test_a_reinstall_starts_clean(store: Store) -> None:
    old = await batch_at(store, BatchState.DELIVERED, workspace=T2)
    await store.save_channel_settings(T2, ChannelSettings("C1", provider="soket"), NOW)
    await store.remove_workspace(T2, GONE)
    assert await store.adopt_unowned(T1) == 0, "erased rows are no one's to adopt"

    await store.save_installation(_installation(T2), GONE)

    assert not await store.workspace_removed(T2)
    assert await store.finished_batches(T2, "C1", 10) == []
    assert await store.channel_settings(T2, "C1") == ChannelSettings("C1")
    new, _ = await batch_with(store, workspace=T2)
    assert [b.id for b in await store.running_batches(T2, "C1")] == [new.id]
    erased = await store.get_batch(old.id)
    assert erased is not None and erased.channel_id == "" and erased.user_id is None


async def test_a_removal_forgotten_lets_work_in_again_without_bringing_anything_back(
    store: Store,
) -> None:
    old = await batch_at(store, BatchState.DELIVERED, workspace=T1)
    await store.remove_workspace(T1, GONE)
    assert not await store.forget_removal(T2), "never removed"

    assert await store.forget_removal(T1)
    assert not await store.forget_removal(T1)

    assert not await store.workspace_removed(T1)
    assert await store.finished_batches(T1, "C1", 10) == []
    new, _ = await batch_with(store, workspace=T1)
    assert [b.id for b in await store.running_batches(T1, "C1")] == [new.id]
    erased = await store.get_batch(old.id)
    assert erased is not None and erased.channel_id == ""
    # An organisation's removal is forgotten for each of its workspaces.
    await store.remove_workspace(Workspace("", "E1"), GONE)
    assert await store.forget_removal(T3)
    assert not await store.workspace_removed(T2)


async def test_an_organisations_removal_covers_each_of_its_workspaces(store: Store) -> None:
    of_org = await job_at(store, JobState.SUBMITTED, workspace=T2)
    also_of_org = await job_at(store, JobState.QUEUED, workspace=T3)
    elsewhere = await job_at(store, JobState.QUEUED, workspace=T4)
    await store.save_channel_settings(T3, ChannelSettings("C1", provider="soket"), NOW)
    await store.save_channel_settings(T4, ChannelSettings("C1", provider="soket"), NOW)
    organisation = Workspace("", "E1")

    assert await store.remove_workspace(organisation, GONE) == 2

    for workspace in (T2, T3, Workspace("T9", "E1"), organisation):
        assert await store.workspace_removed(workspace), workspace
    assert not await store.workspace_removed(T4)
    assert not await store.workspace_removed(Workspace("T2")), "known by its organisation"
    for job in (of_org, also_of_org):
        batch = await store.get_batch(job.batch_id)
        assert batch is not None and batch.state is BatchState.CANCELLED
    batch = await store.get_batch(elsewhere.batch_id)
    assert batch is not None and batch.state is BatchState.OPEN
    assert await store.channel_settings(T3, "C1") == ChannelSettings("C1")
    assert (await store.channel_settings(T4, "C1")).provider == "soket"
    assert of_org.id in {job.id for job in await store.jobs_to_clean_up(GONE)}

    # An organisation-wide install again, or one of its workspaces alone, ends the removal.
    await store.save_installation(_installation(organisation, org_wide=True), GONE)
    assert not await store.workspace_removed(T3)
    await store.remove_workspace(organisation, GONE)
    await store.save_installation(_installation(T3), GONE)
    assert not await store.workspace_removed(T3)


async def test_a_workspace_that_names_nothing_removes_nothing(store: Store) -> None:
    batch, _ = await batch_with(store, workspace=Workspace(""))
    assert await store.remove_workspace(Workspace(""), GONE) == 0
    assert not await store.workspace_removed(Workspace(""))
    found = await store.get_batch(batch.id)
    assert found is not None and found.state is BatchState.OPEN


async def test_a_removal_outlives_a_restart(backend: Backend) -> None:
    first = await backend.open()
    await job_at(first, JobState.PROCESSING, workspace=T2)
    await first.remove_workspace(T2, GONE)
    await first.close()
    second = await backend.open()
    try:
        assert await second.workspace_removed(T2)
        ts = next_ts()
        assert (
            await second.create_batch(new_batch(ts, workspace=T2), [new_job("F1", ts)], GONE)
            is None
        )
    finally:
        await second.close()


async def test_an_organisation_wide_install_lets_in_a_workspace_removed_before(
    store: Store,
) -> None:
    await store.remove_workspace(T2, GONE)
    await store.save_installation(_installation(Workspace("", "E1"), org_wide=True), GONE)
    assert not await store.workspace_removed(T2), "installed again, through its organisation"
    made = await store.create_batch(new_batch(next_ts(), workspace=T2), [new_job("F1")], GONE)
    assert made is not None, "its files are taken again"
