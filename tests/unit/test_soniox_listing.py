"""Polling many Soniox transcriptions at once: the listing, its pages, and the single look-ups it
leaves, over real HTTP against the fake Soniox."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bot.errors import TemporaryError
from bot.providers.base import Progress, ProgressStatus, ProviderJob
from bot.providers.soniox import LIST_PAGE_SIZE, SonioxProvider
from tests.fakes.soniox import FakeSoniox


@pytest.fixture
async def fake() -> AsyncIterator[FakeSoniox]:
    fake = FakeSoniox(polls_until_complete=10**6)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def provider(fake: FakeSoniox) -> AsyncIterator[SonioxProvider]:
    async with httpx.AsyncClient() as client:
        yield SonioxProvider(
            client, api_url=fake.api_url, api_key=fake.api_key, model="stt-async-v5"
        )


async def running(provider: SonioxProvider, count: int) -> list[ProviderJob]:
    """``count`` transcriptions created through the provider, as the engine would have."""
    jobs = [
        ProviderJob(job_id=f"job-{n}", filename=f"{n}.mp3", url=f"https://example.com/{n}.mp3")
        for n in range(count)
    ]
    submitted = await provider.submit(jobs)
    for job in jobs:
        outcome = submitted[job.job_id]
        assert not isinstance(outcome, Exception)
        job.remote_id = outcome.remote_id
    return jobs


def calls(fake: FakeSoniox, since: int) -> list[tuple[str, str, str | None]]:
    return [(r.method, r.path, r.query.get("cursor")) for r in fake.requests[since:]]


async def test_many_running_transcriptions_take_one_listing(
    fake: FakeSoniox, provider: SonioxProvider
) -> None:
    jobs = await running(provider, 5)
    before = len(fake.requests)

    outcomes = await provider.poll_many(jobs)

    assert calls(fake, before) == [("GET", "/v1/transcriptions", None)]
    assert fake.requests[-1].query["limit"] == str(LIST_PAGE_SIZE)
    assert {job_id: progress.status for job_id, progress in outcomes.items()} == {
        job.job_id: ProgressStatus.PROCESSING for job in jobs
    }


async def test_only_finished_transcriptions_have_their_transcript_fetched(
    fake: FakeSoniox, provider: SonioxProvider
) -> None:
    jobs = await running(provider, 3)
    assert jobs[1].remote_id is not None
    await fake.complete(jobs[1].remote_id)
    before = len(fake.requests)

    outcomes = await provider.poll_many(jobs)

    assert [(method, path) for method, path, _ in calls(fake, before)] == [
        ("GET", "/v1/transcriptions"),
        ("GET", f"/v1/transcriptions/{jobs[1].remote_id}/transcript"),
    ]
    finished = outcomes[jobs[1].job_id]
    assert isinstance(finished, Progress) and finished.status is ProgressStatus.COMPLETED
    assert finished.transcript is not None and "Hello from 1.mp3." in finished.transcript.text


@pytest.mark.parametrize("newest_first", [False, True], ids=["oldest first", "newest first"])
async def test_the_listing_is_paged_with_its_cursor_until_every_id_is_seen(
    fake: FakeSoniox, provider: SonioxProvider, newest_first: bool
) -> None:
    # The order of the listing is not documented: the account's other transcriptions fill the
    # first page either way.
    fake.list_newest_first = newest_first
    if not newest_first:
        fake.add_others(LIST_PAGE_SIZE)
    jobs = await running(provider, 3)
    if newest_first:
        fake.add_others(LIST_PAGE_SIZE)
    before = len(fake.requests)

    outcomes = await provider.poll_many(jobs)

    first, second = calls(fake, before)
    assert first == ("GET", "/v1/transcriptions", None)
    assert second[:2] == ("GET", "/v1/transcriptions") and second[2], "the second page's cursor"
    assert all(isinstance(outcomes[job.job_id], Progress) for job in jobs)


async def test_ids_the_listing_did_not_show_are_asked_about_alone(
    fake: FakeSoniox, provider: SonioxProvider
) -> None:
    jobs = await running(provider, 3)
    gone = jobs[0].remote_id
    assert gone is not None
    # Someone deleted a finished transcription behind the app's back (the console's "delete all
    # transcriptions"): the listing no longer shows it, and its own GET says why.
    await fake.complete(gone)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {fake.api_key}"}) as other:
        assert (await other.delete(f"{fake.api_url}/transcriptions/{gone}")).status_code == 204
    before = len(fake.requests)

    outcomes = await provider.poll_many(jobs)

    assert [(method, path) for method, path, _ in calls(fake, before)] == [
        ("GET", "/v1/transcriptions"),
        ("GET", f"/v1/transcriptions/{gone}"),
    ]
    lost = outcomes[jobs[0].job_id]
    assert not isinstance(lost, Progress)
    assert lost.user_message == "Soniox no longer has this file."
    assert all(isinstance(outcomes[job.job_id], Progress) for job in jobs[1:])


async def test_paging_stops_once_asking_each_alone_costs_no_more(
    fake: FakeSoniox, provider: SonioxProvider
) -> None:
    fake.add_others(2 * LIST_PAGE_SIZE)
    jobs = await running(provider, 2)
    before = len(fake.requests)

    outcomes = await provider.poll_many(jobs)

    # Two pages of others found neither; a third might not either, and two GETs are certain.
    assert [(method, path) for method, path, _ in calls(fake, before)] == [
        ("GET", "/v1/transcriptions"),
        ("GET", "/v1/transcriptions"),
        *(("GET", f"/v1/transcriptions/{job.remote_id}") for job in jobs),
    ]
    assert all(isinstance(outcomes[job.job_id], Progress) for job in jobs)


async def test_one_running_transcription_is_asked_about_alone(
    fake: FakeSoniox, provider: SonioxProvider
) -> None:
    (job,) = await running(provider, 1)
    before = len(fake.requests)

    await provider.poll_many([job])

    assert calls(fake, before) == [("GET", f"/v1/transcriptions/{job.remote_id}", None)]


async def test_a_failed_listing_fails_the_whole_call(
    fake: FakeSoniox, provider: SonioxProvider
) -> None:
    jobs = await running(provider, 2)
    fake.inject(r"^/v1/transcriptions$", method="GET", status=503, body="unavailable")

    with pytest.raises(TemporaryError):
        await provider.poll_many(jobs)
