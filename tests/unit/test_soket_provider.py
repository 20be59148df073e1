"""The Soket provider against the loopback fake: one request per step for a whole group, and
tolerance for the parts of the API that are not documented."""

from __future__ import annotations

import hashlib
import io
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.errors import NotReadyYet, PermanentError, ProviderAuthError, TemporaryError, WorkLost
from bot.providers.base import Progress, ProgressStatus, ProviderJob, Submitted, Uploaded
from bot.providers.soket import SoketProvider, unique_names
from bot.providers.soket_answers import transcript_from_result
from bot.transcript import to_plain_text
from tests.fakes.slack import silent_wav
from tests.fakes.soket import FAILED_UPLOAD_MESSAGE, FakeSoket, ResultShape
from tests.fakes.soniox import DECODE_ERROR_MESSAGE, DOWNLOAD_ERROR_MESSAGE


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


@pytest.fixture
def provider(fake_soket: FakeSoket, client: httpx.AsyncClient) -> SoketProvider:
    return SoketProvider(client, api_url=fake_soket.api_url, api_token=fake_soket.token)


def spooled(tmp_path: Path, filename: str, content: bytes | None = None) -> ProviderJob:
    content = silent_wav() if content is None else content
    path = tmp_path / uuid.uuid4().hex
    path.write_bytes(content)
    return ProviderJob(
        job_id=uuid.uuid4().hex,
        filename=filename,
        spool_path=path,
        size_bytes=len(content),
        mimetype="audio/wav",
    )


def link(url: str) -> ProviderJob:
    return ProviderJob(job_id=uuid.uuid4().hex, filename=url.rsplit("/", 1)[-1], url=url)


async def upload(provider: SoketProvider, jobs: Sequence[ProviderJob]) -> None:
    outcomes = await provider.upload(jobs)
    for job in jobs:
        outcome = outcomes[job.job_id]
        assert isinstance(outcome, Uploaded), outcome
        job.file_id, job.upload_id = outcome.file_id, outcome.upload_id


async def submit(provider: SoketProvider, jobs: Sequence[ProviderJob]) -> dict[str, Submitted]:
    outcomes = await provider.submit(jobs)
    submitted: dict[str, Submitted] = {}
    for job in jobs:
        outcome = outcomes[job.job_id]
        assert isinstance(outcome, Submitted), outcome
        job.remote_id = outcome.remote_id
        job.file_id = outcome.file_id or job.file_id
        submitted[job.job_id] = outcome
    return submitted


async def ready_and_submit(provider: SoketProvider, jobs: Sequence[ProviderJob]) -> str:
    """Upload the spooled jobs, wait for storage, submit everything; return the batch id."""
    spools = [job for job in jobs if job.spool_path is not None]
    if spools:
        await upload(provider, spools)
        ready = await provider.uploads_ready(spools)
        assert all(value is True for value in ready.values()), ready
    submitted = await submit(provider, jobs)
    (batch_id,) = {outcome.remote_id for outcome in submitted.values()}
    return batch_id


async def poll_until_done(
    provider: SoketProvider, jobs: Sequence[ProviderJob], *, rounds: int = 5
) -> dict[str, Progress]:
    for _ in range(rounds):
        outcomes = await provider.poll(jobs)
        if all(progress.status.is_terminal for progress in outcomes.values()):
            return dict(outcomes)
    raise AssertionError(f"not finished after {rounds} polls: {outcomes}")


# -- one request per step -------------------------------------------------------------------------


async def test_three_files_share_one_upload_one_batch_and_one_results_walk(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    fake_soket.set_transcript("standup.wav", [("A", "Morning all."), ("B", "Morning.")])
    jobs = [
        spooled(tmp_path, "standup.wav"),
        spooled(tmp_path, "memo.wav"),
        spooled(tmp_path, "memo.wav"),
    ]

    await upload(provider, jobs)
    assert len(fake_soket.requests_to(r"/files/upload$", "POST")) == 1
    assert len({job.upload_id for job in jobs}) == 1
    # The two "memo.wav" got distinct names at Soket, and each job its own file.
    assert [fake_soket.files[str(job.file_id)]["filename"] for job in jobs] == [
        "standup.wav",
        "memo.wav",
        "memo (2).wav",
    ]

    ready = await provider.uploads_ready(jobs)
    assert ready == {job.job_id: True for job in jobs}
    assert len(fake_soket.requests_to(r"/files/upload/")) == 1  # one read for one upload id

    submitted = await submit(provider, jobs)
    assert len(fake_soket.requests_to(r"/batch$", "POST")) == 1
    assert fake_soket.batch_bodies == [{"file_ids": [job.file_id for job in jobs]}]
    assert {outcome.eta_seconds for outcome in submitted.values()} == {2.0}
    batch_id = jobs[0].remote_id

    outcomes = await provider.poll(jobs)
    assert len(fake_soket.requests_to(rf"/results/batch/{batch_id}$")) == 1
    texts = {job.job_id: outcomes[job.job_id].transcript for job in jobs}
    assert all(outcome.status is ProgressStatus.COMPLETED for outcome in outcomes.values())
    first = texts[jobs[0].job_id]
    assert first is not None
    assert to_plain_text(first) == "Speaker 1 [00:00]: Morning all.\nSpeaker 2 [00:00]: Morning."
    second, third = texts[jobs[1].job_id], texts[jobs[2].job_id]
    assert second is not None and second.text == "Hello from memo.wav. Thanks, that is clear."
    assert third is not None and third.text.startswith("Hello from memo (2).wav.")
    # Finished files need no estimate.
    assert fake_soket.requests_to(r"/status/batch/") == []


async def test_links_and_files_go_in_one_batch_and_links_get_their_file_id(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    file = spooled(tmp_path, "clip.mp3")
    first = link("https://a.example/clip.mp3")
    second = link("https://b.example/clip.mp3")

    batch_id = await ready_and_submit(provider, [file, first, second])

    (body,) = fake_soket.batch_bodies
    assert body["file_ids"] == [file.file_id]
    assert body["sources"] == [
        {"url": "https://a.example/clip.mp3", "filename": "clip (2).mp3"},
        {"url": "https://b.example/clip.mp3", "filename": "clip (3).mp3"},
    ]
    assert first.file_id and second.file_id and first.file_id != second.file_id
    assert fake_soket.files[first.file_id]["url"] == "https://a.example/clip.mp3"
    assert fake_soket.files[second.file_id]["url"] == "https://b.example/clip.mp3"

    outcomes = await poll_until_done(provider, [file, first, second])
    assert all(p.status is ProgressStatus.COMPLETED for p in outcomes.values())
    assert len(fake_soket.requests_to(rf"/results/batch/{batch_id}$")) == 1


async def test_upload_still_moving_is_waited_out_not_failed(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    fake_soket.upload_polls_until_complete = 3
    jobs = [spooled(tmp_path, "a.wav"), spooled(tmp_path, "b.wav")]
    await upload(provider, jobs)

    assert await provider.uploads_ready(jobs) == {job.job_id: False for job in jobs}
    with pytest.raises(NotReadyYet) as caught:
        await provider.submit(jobs)
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert fake_soket.batch_bodies == []

    assert await provider.uploads_ready(jobs) == {job.job_id: False for job in jobs}
    assert await provider.uploads_ready(jobs) == {job.job_id: True for job in jobs}
    await submit(provider, jobs)
    assert len(fake_soket.batch_bodies) == 1


async def test_failed_upload_fails_its_file_and_stays_out_of_the_batch(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    good = spooled(tmp_path, "good.wav")
    bad = spooled(tmp_path, "bad.wav", b"FAILUPLOAD" + silent_wav())
    await upload(provider, [good, bad])

    ready = await provider.uploads_ready([good, bad])
    assert ready[good.job_id] is True
    failure = ready[bad.job_id]
    assert isinstance(failure, PermanentError)
    assert FAILED_UPLOAD_MESSAGE in failure.user_message

    await submit(provider, [good])
    assert fake_soket.batch_bodies == [{"file_ids": [good.file_id]}]


async def test_a_file_the_upload_status_leaves_out_is_left_to_the_submission(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    fake_soket.upload_polls_until_complete = 2
    fake_soket.unlisted_in_upload_status = {"quiet.wav"}
    quiet = spooled(tmp_path, "quiet.wav")
    await upload(provider, [quiet])

    # Not listed is not lost: the submission's 409 does the waiting while the upload moves on.
    assert await provider.uploads_ready([quiet]) == {quiet.job_id: True}
    with pytest.raises(NotReadyYet):
        await provider.submit([quiet])
    assert await provider.uploads_ready([quiet]) == {quiet.job_id: True}
    await submit(provider, [quiet])
    assert fake_soket.batch_bodies == [{"file_ids": [quiet.file_id]}]


# -- results -------------------------------------------------------------------------------------


async def test_every_results_page_is_walked(provider: SoketProvider, fake_soket: FakeSoket) -> None:
    jobs = [link(f"https://audio.example/clip-{index:03d}.wav") for index in range(450)]
    batch_id = await ready_and_submit(provider, jobs)

    outcomes = await provider.poll(jobs)

    pages = [r.query for r in fake_soket.requests_to(rf"/results/batch/{batch_id}$")]
    assert [query["page"] for query in pages] == ["1", "2", "3"]
    assert {query["limit"] for query in pages} == {"200"}
    assert {query["speech_information"] for query in pages} == {"true"}
    assert len(outcomes) == 450
    assert all(progress.status is ProgressStatus.COMPLETED for progress in outcomes.values())
    last = outcomes[jobs[-1].job_id].transcript
    assert last is not None and "clip-449.wav" in last.text


async def test_unfinished_files_report_soket_estimate(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    fake_soket.polls_until_complete = 3
    fake_soket.retrying_once = True
    fake_soket.estimated_completion_seconds = 7.5
    jobs = [spooled(tmp_path, "long.wav")]
    batch_id = await ready_and_submit(provider, jobs)

    statuses: list[tuple[ProgressStatus, float | None]] = []
    for _ in range(4):
        progress = (await provider.poll(jobs))[jobs[0].job_id]
        statuses.append((progress.status, progress.eta_seconds))

    assert statuses == [
        (ProgressStatus.PROCESSING, 7.5),  # retrying
        (ProgressStatus.PROCESSING, 7.5),
        (ProgressStatus.PROCESSING, 7.5),
        (ProgressStatus.COMPLETED, None),
    ]
    # One status read per poll that left work running, none once finished.
    assert len(fake_soket.requests_to(rf"/status/batch/{batch_id}$")) == 3


async def test_a_failed_file_fails_alone_with_soket_reason(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    good = spooled(tmp_path, "good.wav")
    corrupt = spooled(tmp_path, "corrupt.wav", b"CORRUPT" + silent_wav())
    gone = link("https://unreachable.example/talk.mp3")
    await ready_and_submit(provider, [good, corrupt, gone])

    outcomes = await poll_until_done(provider, [good, corrupt, gone])

    assert outcomes[good.job_id].status is ProgressStatus.COMPLETED
    failed = outcomes[corrupt.job_id]
    assert failed.status is ProgressStatus.FAILED and failed.error is not None
    assert failed.error.user_message == (
        f"Soket could not transcribe this file: {DECODE_ERROR_MESSAGE}"
    )
    assert failed.raw["errors"] == [{"message": DECODE_ERROR_MESSAGE}]
    unreachable = outcomes[gone.job_id].error
    assert unreachable is not None and DOWNLOAD_ERROR_MESSAGE in unreachable.user_message


@pytest.mark.parametrize("shape", ["transcript", "text", "segments"])
async def test_each_result_shape_gives_the_text(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path, shape: ResultShape
) -> None:
    fake_soket.result_shape = shape
    fake_soket.set_transcript("call.wav", [("x", "One two."), ("y", "Three.")])
    jobs = [spooled(tmp_path, "call.wav")]
    await ready_and_submit(provider, jobs)

    progress = (await poll_until_done(provider, jobs))[jobs[0].job_id]

    assert progress.transcript is not None
    assert progress.transcript.text == "One two. Three."
    assert progress.raw["result"]  # kept as Soket sent it
    segments = progress.transcript.segments
    if shape == "transcript":
        assert [(s.speaker, s.start_ms, s.text) for s in segments] == [
            ("1", 0, "One two."),
            ("2", 600, "Three."),
        ]
        assert progress.transcript.language == "en"
    elif shape == "segments":
        assert [(s.speaker, s.start_ms, s.end_ms) for s in segments] == [
            (None, 0, 560),
            (None, 600, 860),
        ]
    else:
        assert segments == []


def test_result_reading_is_tolerant_of_other_layouts() -> None:
    assert transcript_from_result("plain words ").text == "plain words"
    assert transcript_from_result(None).is_empty
    assert transcript_from_result({"utterances": [{"text": "a"}, {"text": "b"}]}).text == "a b"
    from_info = transcript_from_result(
        {
            "speech_information": [
                {"speaker_id": "SPEAKER_01", "start": 0.5, "end": 1.25, "text": "Hi"},
                {"speaker_id": "SPEAKER_00", "start": "bad", "end": None, "text": "Yo"},
                {"speaker_id": "SPEAKER_01", "text": "  "},
            ]
        }
    )
    assert from_info.text == "Hi Yo"
    assert [(s.speaker, s.start_ms, s.end_ms) for s in from_info.segments] == [
        ("1", 500, 1250),
        ("2", None, None),
    ]


async def test_completed_file_without_words_is_an_empty_transcript(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    jobs = [spooled(tmp_path, "quiet.wav", b"SILENCE" + silent_wav())]
    await ready_and_submit(provider, jobs)

    progress = (await poll_until_done(provider, jobs))[jobs[0].job_id]

    assert progress.status is ProgressStatus.COMPLETED
    assert progress.transcript is not None and progress.transcript.is_empty
    assert progress.error is None


# -- errors --------------------------------------------------------------------------------------


async def test_wrong_token_is_an_auth_error_logged_once(
    fake_soket: FakeSoket,
    client: httpx.AsyncClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = SoketProvider(client, api_url=fake_soket.api_url, api_token="not-the-token")
    right = SoketProvider(client, api_url=fake_soket.api_url, api_token=fake_soket.token)

    with caplog.at_level(logging.ERROR, logger="bot.providers.soket"):
        with pytest.raises(ProviderAuthError) as caught:
            await wrong.check_credentials()
        with pytest.raises(ProviderAuthError):
            await wrong.upload([spooled(tmp_path, "memo.wav")])

    assert "SOKET_API_TOKEN" in caught.value.user_message
    assert "401" in caught.value.detail
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert "not-the-token" not in caplog.text
    await right.check_credentials()  # a 404 for a made-up batch proves the token works


async def test_not_found_answers_become_plain_failures(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    missing_upload = ProviderJob(job_id="j2", filename="a.wav", file_id="f2", upload_id="gone")
    ready = (await provider.uploads_ready([missing_upload]))["j2"]
    assert isinstance(ready, PermanentError)
    assert ready.user_message.startswith("Soket no longer has this upload")

    unknown_file = ProviderJob(job_id="j3", filename="a.wav", file_id="no-such-file")
    with pytest.raises(PermanentError) as caught:
        await provider.submit([unknown_file])
    assert caught.value.user_message.startswith("Soket no longer has this file")


@pytest.mark.parametrize("status", [200, 404, 410, 400, 500, 503])
async def test_a_lost_batch_is_recognised_by_its_body_whatever_the_status(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path, status: int
) -> None:
    fake_soket.missing_batch_status = status
    jobs = [spooled(tmp_path, "a.wav"), link("https://audio.example/b.mp3")]
    batch_id = await ready_and_submit(provider, jobs)
    fake_soket.lose_batch(batch_id)

    outcomes = await provider.poll(jobs)

    for job in jobs:
        progress = outcomes[job.job_id]
        assert progress.status is ProgressStatus.FAILED
        assert isinstance(progress.error, WorkLost), progress.error
        assert progress.error.user_message == "Soket lost this transcription."
        assert f"{status} batch not found" in progress.error.detail


async def test_a_lost_batch_named_only_by_its_status_call_is_lost(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    fake_soket.missing_batch_status = 200
    job = link("https://audio.example/b.mp3")
    batch_id = await ready_and_submit(provider, [job])
    fake_soket.lose_batch(batch_id)
    # A results page that says nothing of the batch's files, without an error.
    empty = {"batch_id": batch_id, "page": 1, "limit": 200, "total_pages": 0, "files": []}
    fake_soket.inject(r"/results/batch/", status=200, body=empty)

    progress = (await provider.poll([job]))[job.job_id]

    assert isinstance(progress.error, WorkLost)
    assert "batch status: 200 batch not found" in progress.error.detail


async def test_a_lost_batch_is_lost_whatever_else_its_body_holds(
    provider: SoketProvider, fake_soket: FakeSoket
) -> None:
    job = link("https://audio.example/b.mp3")
    batch_id = await ready_and_submit(provider, [job])
    fake_soket.lose_batch(batch_id)
    lost = {"error": "batch not found", "batch_id": batch_id}
    fake_soket.inject(r"/results/batch/", status=200, body=lost)
    fake_soket.inject(r"/status/batch/", status=200, body=lost)

    progress = (await provider.poll([job]))[job.job_id]

    assert progress.status is ProgressStatus.FAILED
    assert isinstance(progress.error, WorkLost), progress.error
    assert "batch results: 200 batch not found" in progress.error.detail


async def test_other_server_errors_of_a_batch_stay_temporary(
    provider: SoketProvider, fake_soket: FakeSoket
) -> None:
    job = link("https://audio.example/b.mp3")
    await ready_and_submit(provider, [job])
    fake_soket.inject(
        r"/results/batch/", status=503, body={"error": "busy"}, headers={"Retry-After": "4"}
    )

    with pytest.raises(TemporaryError) as caught:
        await provider.poll([job])
    assert not isinstance(caught.value, WorkLost)
    assert caught.value.retry_after == 4.0
    assert "503" in caught.value.detail

    fake_soket.inject(r"/status/batch/", status=500, body={"error": "internal error"})
    progress = (await provider.poll([job]))[job.job_id]
    assert progress.error is None, "a status call in trouble only loses its estimate"


async def test_an_unknown_error_in_a_200_is_retried_not_read_as_progress(
    provider: SoketProvider, fake_soket: FakeSoket
) -> None:
    job = link("https://audio.example/b.mp3")
    await ready_and_submit(provider, [job])
    fake_soket.inject(r"/results/batch/", status=200, body={"error": "results store busy"})

    with pytest.raises(TemporaryError) as caught:
        await provider.poll([job])
    assert "results store busy" in caught.value.detail


async def test_the_token_check_takes_any_batch_not_found_as_proof(
    provider: SoketProvider, fake_soket: FakeSoket
) -> None:
    for status in (200, 404, 410):
        fake_soket.missing_batch_status = status
        await provider.check_credentials()


async def test_bad_request_is_permanent_and_server_trouble_temporary(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    jobs = [spooled(tmp_path, "a.wav")]
    fake_soket.inject(r"/files/upload$", status=422, body={"error": "unsupported format"})
    with pytest.raises(PermanentError) as refused:
        await provider.upload(jobs)
    assert refused.value.user_message == "Soket refused this file: unsupported format"

    fake_soket.inject(r"/files/upload$", status=503, body="busy", headers={"Retry-After": "4"})
    with pytest.raises(TemporaryError) as busy:
        await provider.upload(jobs)
    assert busy.value.retry_after == 4.0


# -- clean-up and streaming ------------------------------------------------------------------------


async def test_clean_up_deletes_the_group_in_one_call_and_survives_unknown_ids(
    provider: SoketProvider, fake_soket: FakeSoket, tmp_path: Path
) -> None:
    jobs = [spooled(tmp_path, "a.wav"), spooled(tmp_path, "b.wav"), spooled(tmp_path, "c.wav")]
    await ready_and_submit(provider, jobs)
    await poll_until_done(provider, jobs)

    await provider.clean_up(jobs[:2])
    deletes = fake_soket.requests_to(r"/files$", "DELETE")
    assert [r.body for r in deletes] == [{"file_ids": [jobs[0].file_id, jobs[1].file_id]}]

    # One id is gone already: the rest is still deleted, one by one.
    await provider.clean_up([jobs[0], jobs[2]])
    assert fake_soket.deleted_files == [jobs[0].file_id, jobs[1].file_id, jobs[2].file_id]
    assert not fake_soket.files
    await provider.clean_up([ProviderJob(job_id="x", filename="never-uploaded.wav")])
    assert len(fake_soket.requests_to(r"/files$", "DELETE")) == 4


class _RecordingFile(io.FileIO):
    """A file that remembers how much each read asked for."""

    reads: list[int] = []

    def read(self, size: int | None = -1, /) -> bytes:
        _RecordingFile.reads.append(-1 if size is None else size)
        return super().read(size)


async def test_upload_is_streamed_from_the_spool_file(
    provider: SoketProvider,
    fake_soket: FakeSoket,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = bytes(range(256)) * (12 * 1024)  # 3 MiB
    job = spooled(tmp_path, "big.wav", content)
    _RecordingFile.reads = []

    def recording_open(path: Path, mode: str = "r", *args: Any, **kwargs: Any) -> io.FileIO:
        assert mode == "rb"
        return _RecordingFile(path, "rb")

    monkeypatch.setattr(Path, "open", recording_open)
    await upload(provider, [job])

    stored = fake_soket.files[str(job.file_id)]
    assert stored["size_bytes"] == len(content)
    assert stored["sha256"] == hashlib.sha256(content).hexdigest()
    assert len(_RecordingFile.reads) > 40
    assert all(0 < size <= 64 * 1024 for size in _RecordingFile.reads)
    (request,) = fake_soket.requests_to(r"/files/upload$", "POST")
    assert int(request.headers["Content-Length"]) > len(content)


def test_unique_names_number_repeats_before_the_extension() -> None:
    assert unique_names(["memo.wav", "memo.wav", "notes", "notes", "memo.wav"]) == [
        "memo.wav",
        "memo (2).wav",
        "notes",
        "notes (2)",
        "memo (3).wav",
    ]
    assert unique_names(["a.mp3"], taken={"a.mp3"}) == ["a (2).mp3"]
