"""A provider account that refuses new work (Soniox's 402: a used-up balance or budget) is the
operator's problem: the files wait, each thread hears it once, and all goes on by itself after."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Runtime, running_bot
from bot.messages.work import HELD_MARK
from storage.models import JobState
from tests.bot_process import bot_environment, run_cli
from tests.conftest import ManualClock, SettingsFactory, SlackSender, cycles, final_replies
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox

BALANCE = "organization_balance_exhausted"


async def get(runtime: Runtime, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{runtime.port}{path}")


async def account_gauge(runtime: Runtime, reason: str = BALANCE) -> float | None:
    response = await get(runtime, "/metrics")
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "threadscribe_provider_account_problem" and sample.labels == {
                "provider": "soniox",
                "reason": reason,
            }:
                return sample.value
    return None


async def share(fake: FakeSlack, runtime: Runtime, name: str) -> dict[str, Any]:
    event = fake.message_event(files=[fake.add_file(name=name, content=silent_wav())])
    assert (await SlackSender(fake, runtime).event(event)).status_code == 200
    return event


def bot_messages(fake: FakeSlack, event: dict[str, Any]) -> list[dict[str, Any]]:
    return fake.replies_in(event["channel"], event["ts"])


async def test_a_used_up_balance_holds_the_files_tells_each_thread_once_and_they_go_on_after(
    make_settings: SettingsFactory,
    fake_slack: FakeSlack,
    fake_soniox: FakeSoniox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    fake_soniox.exhaust_account(BALANCE)
    settings = make_settings()
    with caplog.at_level(logging.ERROR, logger="bot.work"):
        async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
            events = [await share(fake_slack, runtime, f"memo-{n}.wav") for n in range(3)]
            await cycles(runtime, clock, 5, seconds=2)

            # The operator sees it: /healthz (degraded, not failing: a restart cannot help),
            # the metric, and an ERROR line.
            health = await get(runtime, "/healthz")
            assert health.status_code == 200
            body = health.json()
            assert body["status"] == "degraded"
            assert body["provider_accounts"][0]["provider"] == "soniox"
            assert body["provider_accounts"][0]["reason"] == BALANCE
            (problem,) = body["problems"]
            assert "soniox account refuses new work" in problem and BALANCE in problem
            assert await account_gauge(runtime) == 1
            assert await account_gauge(runtime, "project_monthly_budget_exhausted") == 0
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert any(BALANCE in r.getMessage() for r in errors)

            # Nothing failed; every file waits for the account.
            jobs = [job for job in await runtime.store.unfinished_jobs()]
            assert len(jobs) == 3
            assert all(job.held_by == "soniox" for job in jobs)
            assert all(job.state is JobState.UPLOADED for job in jobs)

            # The refusals stop: the account is tried again once a minute, not by every file.
            refused = fake_soniox.payment_refusals
            assert 1 <= refused <= 3
            await cycles(runtime, clock, 20, seconds=30)
            assert fake_soniox.payment_refusals - refused <= 11
        caplog.clear()

        # A restart neither forgets the problem nor tells any thread a second time.
        async with running_bot(settings, clock=clock, host="127.0.0.1") as runtime:
            assert (await get(runtime, "/healthz")).json()["status"] == "degraded"
            await cycles(runtime, clock, 3, seconds=2)
            assert any(BALANCE in r.getMessage() for r in caplog.records), "said again on start"
            for event in events:
                (note,) = bot_messages(fake_slack, event)
                assert note["text"].startswith(HELD_MARK)
                assert "Soniox account of this app cannot take new work" in note["text"]
                assert "Nothing is wrong with *memo-" in note["text"]
                assert "could not accept" not in note["text"]
            assert not any(final_replies(fake_slack, event) for event in events)

            # An admin tops up the balance: everything goes on without anyone asking, and
            # each note gives way to the usual progress, then to the reply.
            fake_soniox.polls_until_complete = 10**6
            fake_soniox.restore_account()
            await cycles(runtime, clock, 1, seconds=61)
            await cycles(runtime, clock, 3, seconds=4)
            for event in events:
                (progress,) = bot_messages(fake_slack, event)
                assert progress["text"].startswith(":hourglass_flowing_sand: Transcribing")
            await fake_soniox.complete_all()
            for _ in range(20):
                if all(final_replies(fake_slack, event) for event in events):
                    break
                await cycles(runtime, clock, 1, seconds=2)

            health = await get(runtime, "/healthz")
            assert health.json()["status"] == "ok" and health.json()["problems"] == []
            assert await account_gauge(runtime) == 0

    for event in events:
        (reply,) = bot_messages(fake_slack, event)  # the note gave way to the reply
        assert reply in final_replies(fake_slack, event)
        assert "Hello from memo-" in reply["text"]
    assert len(fake_soniox.create_bodies) == 3, "each file transcribed once"
    assert len(fake_soniox.files) + len(fake_soniox.deleted_files) == 3, "each uploaded once"


async def test_an_account_that_also_refuses_uploads_holds_them_and_fails_at_the_age_limit(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clock = ManualClock()
    fake_soniox.exhaust_account("project_monthly_budget_exhausted", uploads=True)
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        event = await share(fake_slack, runtime, "call.wav")
        await cycles(runtime, clock, 3, seconds=2)
        (job,) = await runtime.store.unfinished_jobs()
        assert job.state is JobState.UPLOADING and job.held_by == "soniox"
        (note,) = bot_messages(fake_slack, event)
        assert note["text"].startswith(HELD_MARK)
        assert fake_soniox.files == {}

        # Nobody fixes it: after JOB_MAX_AGE_HOURS the file fails, saying why and what to do.
        await cycles(runtime, clock, 8, hours=1)
        (reply,) = final_replies(fake_slack, event)

    assert reply["ts"] == note["ts"]
    assert "Gave up after 6 hours of waiting" in reply["text"]
    assert "project's monthly budget is used up" in reply["text"]
    assert "could not accept" not in reply["text"]
    assert fake_soniox.payment_refusals <= 9


@pytest.mark.parametrize("uploads", [False, True], ids=["submissions", "uploads"])
async def test_a_refusal_is_an_answer_nothing_is_looked_for_after_it(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox, uploads: bool
) -> None:
    clock = ManualClock()
    fake_soniox.exhaust_account(BALANCE, uploads=uploads)
    listing = r"^/v1/files$" if uploads else r"^/v1/transcriptions$"
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        await share(fake_slack, runtime, "call.wav")
        await cycles(runtime, clock, 3, seconds=2)
        (held,) = await runtime.store.unfinished_jobs()
        assert held.held_by == "soniox" and fake_soniox.payment_refusals == 1
        assert held.sent_at is None, "the 402 answered the call: nothing to look for"

        # Each probe of the account is the one call it takes, not a listing first.
        await cycles(runtime, clock, 5, seconds=61)
        assert fake_soniox.payment_refusals > 1
        assert fake_soniox.requests_to(listing, "GET") == []

        # Failed at the age limit, it owes Soniox nothing: its copies go at once.
        await cycles(runtime, clock, 8, hours=1)
        (failed,) = await runtime.store.jobs_of(held.batch_id)
        assert failed.state is JobState.FAILED and failed.sent_at is None
    assert fake_soniox.files == {}


async def test_check_lists_the_account_problem_the_bot_recorded(
    tmp_path: Path,
    make_settings: SettingsFactory,
    fake_slack: FakeSlack,
    fake_soniox: FakeSoniox,
    fake_soket: FakeSoket,
) -> None:
    clock = ManualClock()
    fake_soniox.exhaust_account(BALANCE)
    async with running_bot(make_settings(), clock=clock, host="127.0.0.1") as runtime:
        await share(fake_slack, runtime, "memo.wav")
        await cycles(runtime, clock, 3, seconds=2)
        assert fake_soniox.payment_refusals == 1
    env = bot_environment(tmp_path, fake_slack, fake_soniox, fake_soket)

    code, out, err = await run_cli("check", env=env, cwd=tmp_path)

    assert code == 1
    assert "soniox: OK" in out, "the key itself is fine"
    assert "the soniox account refuses new work since" in err
    assert BALANCE in err and "add funds or raise its limit" in err
