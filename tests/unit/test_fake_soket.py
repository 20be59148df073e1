"""The Soket.ai fake answers like the documented batch API, over real loopback HTTP.

These tests pin the fake's behaviour so that tests of the app built on it can trust what they see.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.fakes.soket import FakeSoket

TOKEN = "soket-fake-token"
ENTRY_KEYS = {"file_id", "filename", "status", "result", "errors", "chunk_results"}
PAGE_KEYS = {"batch_id", "page", "limit", "total_pages", "total_files", "count", "files"}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSoket]:
    fake = FakeSoket()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(fake: FakeSoket) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=fake.api_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        yield client


async def upload(client: httpx.AsyncClient, *files: tuple[str, bytes]) -> dict[str, Any]:
    response = await client.post(
        "/files/upload", files=[("files", (name, content)) for name, content in files]
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def submit(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post("/batch", json=body)


async def uploaded_and_stored(client: httpx.AsyncClient, *files: tuple[str, bytes]) -> str:
    """Upload ``files``, poll the upload once (enough by default) and return its id."""
    accepted = await upload(client, *files)
    await client.get(f"/files/upload/{accepted['batch_upload_id']}")
    return str(accepted["batch_upload_id"])


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.json() == {"error": message}


async def test_upload_batch_results_and_delete(fake: FakeSoket, client: httpx.AsyncClient) -> None:
    one, two = b"RIFF" + b"\x01" * 63996, b"ID3" + b"\x02" * 31997
    accepted = await upload(client, ("one.wav", one), ("two.mp3", two))
    assert set(accepted) == {"batch_upload_id", "status", "total_files", "spool_seconds", "files"}
    assert accepted["status"] == "accepted"
    assert accepted["total_files"] == 2
    assert [f["filename"] for f in accepted["files"]] == ["one.wav", "two.mp3"]
    assert [f["size_bytes"] for f in accepted["files"]] == [64000, 32000]
    assert [f["estimated_duration_seconds"] for f in accepted["files"]] == [2.0, 1.0]
    assert {f["upload_status"] for f in accepted["files"]} == {"pending"}
    file_ids = [f["file_id"] for f in accepted["files"]]
    assert fake.files[file_ids[0]]["sha256"] == hashlib.sha256(one).hexdigest()
    assert fake.files[file_ids[1]]["head"] == two[:64]

    status = (await client.get(f"/files/upload/{accepted['batch_upload_id']}")).json()
    assert (status["completed"], status["failed"], status["uploading"], status["pending"]) == (
        2,
        0,
        0,
        0,
    )
    assert all(f["upload_status"] == "completed" and f["gcs_key"] for f in status["files"])

    submitted = await submit(client, batch_upload_id=accepted["batch_upload_id"])
    assert submitted.status_code == 200, submitted.text
    batch = submitted.json()
    assert batch["total_jobs"] == 2
    assert batch["estimated_audio_seconds"] == 3.0
    assert batch["estimated_completion_seconds"] == 2.0
    assert [j["file_id"] for j in batch["jobs"]] == file_ids
    assert all(
        j["status"] == "queued" and j["batch_id"] == batch["batch_id"] for j in batch["jobs"]
    )
    assert fake.batch_bodies == [{"batch_upload_id": accepted["batch_upload_id"]}]

    batch_id = batch["batch_id"]
    before = (await client.get(f"/status/batch/{batch_id}")).json()
    assert before["status"] == "processing" and before["files_completed"] == 0

    results = (await client.get(f"/results/batch/{batch_id}")).json()
    assert set(results) == PAGE_KEYS
    assert (results["page"], results["limit"], results["total_pages"]) == (1, 50, 1)
    assert results["total_files"] == results["count"] == 2
    entry = results["files"][0]
    assert set(entry) == ENTRY_KEYS
    assert entry["status"] == "completed"
    assert entry["result"] == {
        "transcript": "Hello from one.wav. Thanks, that is clear.",
        "language": "en",
    }
    assert entry["errors"] == [] and entry["chunk_results"] == []
    assert fake.results_calls == {batch_id: 1}

    after = (await client.get(f"/status/batch/{batch_id}")).json()
    assert after == {
        "batch_id": batch_id,
        "total_files": 2,
        "files_completed": 2,
        "files_failed": 0,
        "estimated_audio_seconds": 3.0,
        "estimated_completion_seconds": 2.0,
        "status": "completed",
    }
    assert (await client.get(f"/results/file/{file_ids[1]}")).json() == results["files"][1]

    deleted = await client.request("DELETE", "/files", json={"file_ids": file_ids})
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 2}
    assert fake.deleted_files == file_ids
    assert_error(await client.get(f"/results/file/{file_ids[0]}"), 404, "file not found")
    assert (await client.get(f"/status/batch/{batch_id}")).json()["total_files"] == 0


async def test_uploads_in_progress_block_submission() -> None:
    async with FakeSoket(upload_polls_until_complete=2) as slow:
        assert isinstance(slow, FakeSoket)
        async with httpx.AsyncClient(
            base_url=slow.api_url, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            accepted = await upload(client, ("a.wav", b"a"), ("broken.wav", b"FAILUPLOAD!"))
            upload_id = accepted["batch_upload_id"]
            a_id, broken_id = (f["file_id"] for f in accepted["files"])
            assert_error(await submit(client, file_ids=[a_id]), 409, "uploads still in progress")

            first = (await client.get(f"/files/upload/{upload_id}")).json()
            assert first["uploading"] == 2 and first["pending"] == 0
            assert all("gcs_key" not in f for f in first["files"])
            assert_error(
                await submit(client, batch_upload_id=upload_id), 409, "uploads still in progress"
            )

            second = (await client.get(f"/files/upload/{upload_id}")).json()
            assert (second["completed"], second["failed"]) == (1, 1)
            broken = next(f for f in second["files"] if f["file_id"] == broken_id)
            assert broken["upload_status"] == "failed"
            assert broken["error"] == "storage upload failed"
            assert "gcs_key" not in broken

            batch = (await submit(client, batch_upload_id=upload_id)).json()
            assert [j["file_id"] for j in batch["jobs"]] == [a_id]
            assert slow.batch_bodies == [{"batch_upload_id": upload_id}]


async def test_a_batch_of_failed_uploads_has_nothing_to_transcribe(
    client: httpx.AsyncClient,
) -> None:
    upload_id = await uploaded_and_stored(client, ("x.wav", b"FAILUPLOAD"))
    assert_error(await submit(client, batch_upload_id=upload_id), 400, "no files to transcribe")
    assert_error(await submit(client), 400, "no files to transcribe")


async def test_unauthenticated_requests_get_401(fake: FakeSoket) -> None:
    async with httpx.AsyncClient(base_url=fake.api_url) as anonymous:
        response = await anonymous.post("/batch", json={"sources": [{"url": "https://a/b.wav"}]})
        assert response.status_code == 401
        assert response.json() == {"detail": "Invalid or expired token"}
        wrong = await anonymous.get("/status/batch/x", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert fake.batches == {}


async def test_not_found_bodies(fake: FakeSoket, client: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    assert_error(await client.get(f"/files/upload/{missing}"), 404, "upload not found")
    assert_error(await submit(client, batch_upload_id=missing), 404, "upload not found")
    assert_error(await submit(client, file_ids=[missing]), 404, "file not found")
    assert_error(await client.get(f"/status/batch/{missing}"), 404, "batch not found")
    assert_error(await client.get(f"/results/batch/{missing}"), 404, "batch not found")
    assert_error(await client.get(f"/results/file/{missing}"), 404, "file not found")

    # With a status filter an unknown batch is an empty page, not an error.
    empty = await client.get(f"/results/batch/{missing}", params={"status": "completed"})
    assert empty.status_code == 200
    assert empty.json()["files"] == [] and empty.json()["total_files"] == 0
    assert fake.results_calls[missing] == 2

    upload_id = await uploaded_and_stored(client, ("keep.wav", b"k"))
    kept = fake.uploads[upload_id]["file_ids"][0]
    response = await client.request("DELETE", "/files", json={"file_ids": [kept, missing]})
    assert_error(response, 404, "file not found")
    assert kept in fake.files and fake.deleted_files == []


async def test_results_query_validation(client: httpx.AsyncClient) -> None:
    upload_id = await uploaded_and_stored(client, ("a.wav", b"a"))
    batch_id = (await submit(client, batch_upload_id=upload_id)).json()["batch_id"]
    path = f"/results/batch/{batch_id}"
    assert_error(await client.get(path, params={"status": "queued"}), 422, "invalid status")
    for bad in ("0", "201", "many"):
        assert_error(await client.get(path, params={"limit": bad}), 422, "invalid limit")
    assert_error(await client.get(path, params={"page": "0"}), 422, "invalid page")
    assert (await client.get(path, params={"limit": "200"})).status_code == 200


async def test_results_pagination_walks_every_file_once(
    fake: FakeSoket, client: httpx.AsyncClient
) -> None:
    upload_id = await uploaded_and_stored(client, *((f"{n}.wav", b"x") for n in range(5)))
    batch_id = (await submit(client, batch_upload_id=upload_id)).json()["batch_id"]
    seen: list[str] = []
    page_number = 1
    while True:
        page = (
            await client.get(f"/results/batch/{batch_id}", params={"page": page_number, "limit": 2})
        ).json()
        assert page["total_pages"] == 3 and page["total_files"] == 5
        assert page["count"] == len(page["files"]) <= 2
        seen.extend(f["file_id"] for f in page["files"])
        if page_number == page["total_pages"]:
            break
        page_number += 1
    assert seen == fake.uploads[upload_id]["file_ids"]
    assert fake.results_calls[batch_id] == 3
    beyond = (await client.get(f"/results/batch/{batch_id}", params={"page": 4, "limit": 2})).json()
    assert beyond["files"] == [] and beyond["count"] == 0

    raw = (await client.get(f"/results/batch/{batch_id}", params={"raw": "true"})).json()
    assert raw["total_jobs"] == 5 and len(raw["jobs"]) == 5
    assert {"job_id", "file_id", "batch_id", "status"} <= set(raw["jobs"][0])


async def test_content_and_url_switches(fake: FakeSoket, client: httpx.AsyncClient) -> None:
    fake.set_transcript("talk.wav", [("alice", "Good morning."), ("bob", "Morning!")])
    upload_id = await uploaded_and_stored(
        client, ("bad.wav", b"CORRUPT..."), ("quiet.wav", b"SILENCE..."), ("talk.wav", b"RIFF")
    )
    sources = [
        {"url": "https://files.example/corrupt.ogg"},
        {"url": "https://unreachable.example/a.ogg"},
        {"url": "https://files.example/path/clip.m4a?sig=1"},
        {"url": "https://files.example/x", "filename": "named.mp3"},
    ]
    batch = (await submit(client, batch_upload_id=upload_id, sources=sources)).json()
    names = [j["filename"] for j in batch["jobs"]]
    assert names == [
        "bad.wav",
        "quiet.wav",
        "talk.wav",
        "corrupt.ogg",
        "a.ogg",
        "clip.m4a",
        "named.mp3",
    ]
    assert batch["estimated_audio_seconds"] == 4 * 30.0
    results = (await client.get(f"/results/batch/{batch['batch_id']}")).json()
    by_name = {entry["filename"]: entry for entry in results["files"]}

    for name in ("bad.wav", "corrupt.ogg"):
        assert by_name[name]["status"] == "failed"
        assert by_name[name]["result"] == {}
        assert by_name[name]["errors"] == [{"message": "Audio could not be decoded"}]
    assert by_name["a.ogg"]["status"] == "failed"
    assert "download" in by_name["a.ogg"]["errors"][0]["message"]
    assert by_name["quiet.wav"]["status"] == "completed"
    assert by_name["quiet.wav"]["result"]["transcript"] == ""
    assert by_name["talk.wav"]["result"]["transcript"] == "Good morning. Morning!"
    assert (
        by_name["clip.m4a"]["result"]["transcript"] == "Hello from clip.m4a. Thanks, that is clear."
    )

    failed_only = await client.get(
        f"/results/batch/{batch['batch_id']}", params={"status": "failed"}
    )
    assert {f["filename"] for f in failed_only.json()["files"]} == {
        "bad.wav",
        "corrupt.ogg",
        "a.ogg",
    }
    status = (await client.get(f"/status/batch/{batch['batch_id']}")).json()
    assert (status["files_completed"], status["files_failed"]) == (4, 3)


async def test_files_advance_once_per_results_call(
    fake: FakeSoket, client: httpx.AsyncClient
) -> None:
    fake.polls_until_complete = 2
    fake.retrying_once = True
    batch = (await submit(client, sources=[{"url": "https://example.com/a.wav"}])).json()
    path = f"/results/batch/{batch['batch_id']}"
    file_id = batch["jobs"][0]["file_id"]
    assert (await client.get(f"/results/file/{file_id}")).json()["status"] == "queued"
    statuses = [(await client.get(path)).json()["files"][0]["status"] for _ in range(4)]
    assert statuses == ["retrying", "processing", "completed", "completed"]
    assert fake.results_calls[batch["batch_id"]] == 4
    # Only results calls move files along: status reads do not.
    other = (await submit(client, sources=[{"url": "https://example.com/b.wav"}])).json()
    for _ in range(3):
        await client.get(f"/status/batch/{other['batch_id']}")
    assert (await client.get(f"/status/batch/{other['batch_id']}")).json()["files_completed"] == 0


async def test_result_shapes(fake: FakeSoket, client: httpx.AsyncClient) -> None:
    fake.set_transcript("s.wav", [("x", "one two three"), ("y", "four"), ("x", "five six")])
    batch = (
        await submit(client, sources=[{"url": "https://example.com/s.wav", "filename": "s.wav"}])
    ).json()
    path = f"/results/batch/{batch['batch_id']}"

    with_speech = (await client.get(path, params={"speech_information": "true"})).json()
    result = with_speech["files"][0]["result"]
    assert result["transcript"] == "one two three four five six"
    info = result["speech_information"]
    assert [s["speaker_id"] for s in info] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    assert [s["text"] for s in info] == ["one two three", "four", "five six"]
    assert info[0]["start"] == 0.0 and info[0]["end"] < info[1]["start"] < info[2]["start"]
    assert all(s["tone"] == "neutral" and s["accent"] == "neutral" for s in info)
    assert "speech_information" not in (await client.get(path)).json()["files"][0]["result"]

    fake.result_shape = "text"
    assert (await client.get(path)).json()["files"][0]["result"] == {
        "text": "one two three four five six"
    }
    fake.result_shape = "segments"
    segments = (await client.get(path)).json()["files"][0]["result"]["segments"]
    assert [s["text"] for s in segments] == ["one two three", "four", "five six"]
    assert all(set(s) == {"text", "start", "end"} for s in segments)


async def test_file_ids_and_upload_ids_combine_without_duplicates(
    fake: FakeSoket, client: httpx.AsyncClient
) -> None:
    first = await uploaded_and_stored(client, ("a.wav", b"a"), ("b.wav", b"b"))
    second = await uploaded_and_stored(client, ("c.wav", b"c"))
    a_id = fake.uploads[first]["file_ids"][0]
    c_id = fake.uploads[second]["file_ids"][0]
    batch = (await submit(client, batch_upload_id=first, file_ids=[a_id, c_id])).json()
    assert [j["filename"] for j in batch["jobs"]] == ["a.wav", "b.wav", "c.wav"]
    assert batch["jobs"][2]["file_id"] == c_id
    assert_error(await client.post("/files/upload", data={"note": "x"}), 400, "no files provided")


async def test_streamed_upload_is_counted_and_hashed(
    fake: FakeSoket, client: httpx.AsyncClient
) -> None:
    boundary = uuid.uuid4().hex
    size = 50 * 1024 * 1024
    digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        for name in ("small.wav", "big.wav"):
            yield (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="files"; filename="{name}"\r\n'
                "Content-Type: audio/wav\r\n\r\n"
            ).encode()
            if name == "small.wav":
                yield b"SILENCE"
            else:
                block = bytes(range(256)) * 4096  # 1 MiB
                for index in range(size // len(block)):
                    chunk = index.to_bytes(4, "big") + block[4:]
                    digest.update(chunk)
                    yield chunk
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    response = await client.post(
        "/files/upload",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 202, response.text
    small, big = response.json()["files"]
    assert small["size_bytes"] == 7
    assert big["size_bytes"] == size
    assert big["estimated_duration_seconds"] == pytest.approx(size / 32000, abs=0.001)
    assert fake.files[big["file_id"]]["sha256"] == digest.hexdigest()
    assert fake.files[small["file_id"]]["head"] == b"SILENCE"
