"""The Soniox fake answers like the documented API, over real loopback HTTP.

These tests pin the fake's behaviour so that tests of the app built on it can trust what they see.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.fakes.soniox import FakeSoniox

KEY = "soniox-fake-key"
ERROR_KEYS = {
    "status_code",
    "error_type",
    "message",
    "validation_errors",
    "request_id",
    "more_info",
}
JOB_KEYS = {
    "id",
    "status",
    "created_at",
    "model",
    "audio_url",
    "file_id",
    "filename",
    "language_hints",
    "enable_speaker_diarization",
    "enable_language_identification",
    "context",
    "audio_duration_ms",
    "error_type",
    "error_message",
    "webhook_url",
    "webhook_auth_header_name",
    "client_reference_id",
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSoniox]:
    fake = FakeSoniox()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(fake: FakeSoniox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=fake.api_url, headers={"Authorization": f"Bearer {KEY}"}
    ) as client:
        yield client


async def upload(
    client: httpx.AsyncClient, name: str, content: bytes, **data: str
) -> dict[str, Any]:
    response = await client.post("/files", files={"file": (name, content)}, data=data)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def create(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await client.post("/transcriptions", json={"model": "stt-async-v5", **fields})


def assert_error(response: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS
    assert body["status_code"] == status
    assert body["error_type"] == error_type
    assert body["more_info"].endswith("#" + error_type.replace("_", "-"))
    uuid.UUID(body["request_id"])
    return body


async def test_file_upload_to_transcript_and_cleanup(
    fake: FakeSoniox, client: httpx.AsyncClient
) -> None:
    audio = b"RIFF" + b"\x01" * 6396
    uploaded = await upload(client, "call.wav", audio, client_reference_id="msg-1")
    assert set(uploaded) == {"id", "filename", "size", "created_at", "client_reference_id"}
    assert uploaded["filename"] == "call.wav"
    assert uploaded["size"] == len(audio)
    assert uploaded["client_reference_id"] == "msg-1"
    assert uploaded["created_at"].endswith("Z")
    stored = fake.files[uploaded["id"]]
    assert stored["sha256"] == hashlib.sha256(audio).hexdigest()
    assert stored["head"] == audio[:64]

    assert (await client.get(f"/files/{uploaded['id']}")).json() == uploaded

    created = await create(
        client,
        file_id=uploaded["id"],
        enable_speaker_diarization=True,
        enable_language_identification=True,
        language_hints=["en"],
        client_reference_id="msg-1",
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert set(job) >= JOB_KEYS
    assert job["status"] == "queued"
    assert job["filename"] == "call.wav"
    assert job["audio_url"] is None
    assert job["audio_duration_ms"] is None
    assert fake.create_bodies[-1]["file_id"] == uploaded["id"]

    polled = (await client.get(f"/transcriptions/{job['id']}")).json()
    assert polled["status"] == "completed"
    assert polled["audio_duration_ms"] == len(audio) // 32
    assert polled["error_type"] is None

    transcript = (await client.get(f"/transcriptions/{job['id']}/transcript")).json()
    assert transcript["id"] == job["id"]
    assert transcript["text"] == "Hello from call.wav. Thanks, that is clear."
    tokens = transcript["tokens"]
    assert "".join(t["text"] for t in tokens) == transcript["text"]
    assert {t["speaker"] for t in tokens} == {"1", "2"}
    assert {t["language"] for t in tokens} == {"en"}
    assert any(not t["text"].startswith(" ") for t in tokens[1:]), "no sub-word pieces"
    starts = [t["start_ms"] for t in tokens]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert all(t["end_ms"] >= t["start_ms"] and 0 < t["confidence"] <= 1 for t in tokens)
    assert tokens[-1]["end_ms"] < 8 * 300

    assert (await client.delete(f"/transcriptions/{job['id']}")).status_code == 204
    assert (await client.delete(f"/files/{uploaded['id']}")).status_code == 204
    assert fake.deleted_transcriptions == [job["id"]]
    assert fake.deleted_files == [uploaded["id"]]
    assert fake.files == {} and fake.transcriptions == {}


async def test_registered_transcript_and_token_labels_follow_the_request(
    fake: FakeSoniox, client: httpx.AsyncClient
) -> None:
    fake.set_transcript("meeting.mp3", [("A", "Budget approved."), ("B", "Great.")])
    uploaded = await upload(client, "meeting.mp3", b"ID3 audio")
    job = (await create(client, file_id=uploaded["id"])).json()
    await fake.complete(job["id"])
    transcript = (await client.get(f"/transcriptions/{job['id']}/transcript")).json()
    assert transcript["text"] == "Budget approved. Great."
    # Without diarization or language identification the tokens carry neither label.
    assert all("speaker" not in t and "language" not in t for t in transcript["tokens"])


async def test_jobs_advance_per_poll_and_reject_early_transcript_or_delete() -> None:
    async with FakeSoniox(polls_until_complete=3) as slow:
        assert isinstance(slow, FakeSoniox)
        async with httpx.AsyncClient(
            base_url=slow.api_url, headers={"Authorization": f"Bearer {KEY}"}
        ) as slow_client:
            job = (await create(slow_client, audio_url="https://cdn.example/a/voice.m4a")).json()
            assert job["filename"] == "voice.m4a"
            path = f"/transcriptions/{job['id']}"
            statuses = [(await slow_client.get(path)).json()["status"] for _ in range(2)]
            assert statuses == ["processing", "processing"]
            assert slow.pending_count == 1
            assert_error(
                await slow_client.get(f"{path}/transcript"), 409, "transcription_invalid_state"
            )
            assert_error(await slow_client.delete(path), 409, "transcription_invalid_state")
            done = (await slow_client.get(path)).json()
            assert done["status"] == "completed"
            assert done["audio_duration_ms"] == 30000
            assert slow.pending_count == 0
            assert (await slow_client.get(f"{path}/transcript")).status_code == 200


async def test_unauthenticated_requests_get_the_documented_401(fake: FakeSoniox) -> None:
    async with httpx.AsyncClient(base_url=fake.api_url) as anonymous:
        assert_error(await anonymous.get("/files"), 401, "unauthenticated")
        wrong = await anonymous.post(
            "/transcriptions", json={"model": "stt-async-v5"}, headers={"Authorization": "Bearer x"}
        )
        body = assert_error(wrong, 401, "unauthenticated")
        assert body["validation_errors"] == []
    assert fake.transcriptions == {}


async def test_not_found_bodies(client: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    assert_error(await client.get(f"/files/{missing}"), 404, "file_not_found")
    assert_error(await client.delete(f"/files/{missing}"), 404, "file_not_found")
    assert_error(await create(client, file_id=missing), 404, "file_not_found")
    assert_error(await client.get(f"/transcriptions/{missing}"), 404, "transcription_not_found")
    assert_error(
        await client.get(f"/transcriptions/{missing}/transcript"), 404, "transcription_not_found"
    )
    assert_error(await client.delete(f"/transcriptions/{missing}"), 404, "transcription_not_found")


async def test_invalid_requests_name_the_field(client: httpx.AsyncClient) -> None:
    no_file = await client.post("/files", files={"other": ("x.wav", b"1")})
    assert assert_error(no_file, 400, "invalid_request")["validation_errors"] == [
        {"error_type": "missing", "location": "file.file", "message": "Field required"}
    ]
    long_ref = await client.post(
        "/files", files={"file": ("x.wav", b"1")}, data={"client_reference_id": "r" * 257}
    )
    assert assert_error(long_ref, 400, "invalid_request")["validation_errors"][0]["location"] == (
        "file.client_reference_id"
    )

    url = "https://example.com/a.mp3"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"audio_url": url}, "body.model"),
        ({"model": "stt-async-v3", "audio_url": url}, "body.model"),
        ({"model": "stt-async-v5"}, "body"),
        ({"model": "stt-async-v5", "audio_url": url, "file_id": str(uuid.uuid4())}, "body"),
        ({"model": "stt-async-v5", "audio_url": "ftp://example.com/a.mp3"}, "body.audio_url"),
    ]
    for body, location in cases:
        response = await client.post("/transcriptions", json=body)
        errors = assert_error(response, 400, "invalid_request")["validation_errors"]
        assert location in [e["location"] for e in errors], (body, errors)
        assert all(set(e) == {"error_type", "location", "message"} for e in errors)


async def test_pending_limit_answers_429_until_jobs_finish() -> None:
    async with FakeSoniox(max_pending=3, polls_until_complete=5) as limited:
        assert isinstance(limited, FakeSoniox)
        async with httpx.AsyncClient(
            base_url=limited.api_url, headers={"Authorization": f"Bearer {KEY}"}
        ) as c:
            for n in range(3):
                created = await create(c, audio_url=f"https://example.com/{n}.mp3")
                assert created.status_code == 201
            assert limited.pending_count == 3
            assert_error(
                await create(c, audio_url="https://example.com/4.mp3"), 429, "limit_exceeded"
            )
            assert len(limited.create_bodies) == 3
            await limited.complete_all()
            assert limited.pending_count == 0
            assert (await create(c, audio_url="https://example.com/5.mp3")).status_code == 201
            assert limited.peak_pending == 3


async def test_content_and_url_switches(fake: FakeSoniox, client: httpx.AsyncClient) -> None:
    corrupt = await upload(client, "bad.mp3", b"CORRUPT data")
    silent = await upload(client, "quiet.mp3", b"SILENCE" + b"\x00" * 3200)
    jobs = {
        "corrupt-file": (await create(client, file_id=corrupt["id"])).json(),
        "silent-file": (await create(client, file_id=silent["id"])).json(),
        "corrupt-url": (await create(client, audio_url="https://x.test/corrupt.ogg")).json(),
        "unreachable": (await create(client, audio_url="https://unreachable.test/a.ogg")).json(),
    }
    finished = {
        name: (await client.get(f"/transcriptions/{job['id']}")).json()
        for name, job in jobs.items()
    }
    for name in ("corrupt-file", "corrupt-url"):
        assert finished[name]["status"] == "error"
        assert "could not be decoded" in finished[name]["error_message"]
        assert finished[name]["error_type"]
    assert finished["unreachable"]["status"] == "error"
    assert "download" in finished["unreachable"]["error_message"]
    assert finished["unreachable"]["error_type"] != finished["corrupt-url"]["error_type"]
    assert_error(
        await client.get(f"/transcriptions/{jobs['corrupt-file']['id']}/transcript"),
        409,
        "transcription_invalid_state",
    )
    assert finished["silent-file"]["status"] == "completed"
    assert finished["silent-file"]["audio_duration_ms"] == 3207 // 32
    silent_transcript = await client.get(f"/transcriptions/{jobs['silent-file']['id']}/transcript")
    assert silent_transcript.json()["text"] == ""
    assert silent_transcript.json()["tokens"] == []
    # Failed jobs are terminal, so they can be deleted.
    assert (await client.delete(f"/transcriptions/{jobs['unreachable']['id']}")).status_code == 204


async def test_pagination_walks_every_item_once(
    fake: FakeSoniox, client: httpx.AsyncClient
) -> None:
    ids = [(await upload(client, f"{n}.wav", b"x"))["id"] for n in range(5)]
    for file_id in ids:
        assert (await create(client, file_id=file_id)).status_code == 201

    for kind in ("files", "transcriptions"):
        seen: list[str] = []
        pages = 0
        cursor: str | None = None
        while True:
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"/{kind}", params=params)).json()
            assert set(page) == {kind, "next_page_cursor"}
            assert len(page[kind]) <= 2
            seen.extend(item["id"] for item in page[kind])
            pages += 1
            cursor = page["next_page_cursor"]
            if cursor is None:
                break
        assert pages == 3
        assert len(seen) == len(set(seen)) == 5
    assert seen == list(fake.transcriptions)

    # Deleting while walking neither skips nor repeats.
    first = (await client.get("/files", params={"limit": "2"})).json()
    assert (await client.delete(f"/files/{first['files'][0]['id']}")).status_code == 204
    rest = (await client.get("/files", params={"cursor": first["next_page_cursor"]})).json()
    assert [f["id"] for f in rest["files"]] == ids[2:]

    assert_error(await client.get("/files", params={"cursor": "nonsense"}), 400, "invalid_request")
    assert_error(await client.get("/files", params={"limit": "0"}), 400, "invalid_request")


async def test_listing_newest_first_walks_every_item_once_and_advances_what_it_shows() -> None:
    fake = FakeSoniox(polls_until_complete=2, list_newest_first=True)
    await fake.start()
    try:
        async with httpx.AsyncClient(
            base_url=fake.api_url, headers={"Authorization": f"Bearer {KEY}"}
        ) as client:
            created = [
                (await create(client, audio_url=f"https://example.com/{n}.mp3")).json()["id"]
                for n in range(3)
            ]
            first = (await client.get("/transcriptions", params={"limit": "2"})).json()
            assert [t["id"] for t in first["transcriptions"]] == created[::-1][:2]
            assert {t["status"] for t in first["transcriptions"]} == {"processing"}
            rest = (
                await client.get("/transcriptions", params={"cursor": first["next_page_cursor"]})
            ).json()
            assert [t["id"] for t in rest["transcriptions"]] == created[:1]
            assert rest["next_page_cursor"] is None
            assert fake.times_seen() == {created[0]: 1, created[1]: 1, created[2]: 1}

            again = (await client.get("/transcriptions")).json()
            assert {t["status"] for t in again["transcriptions"]} == {"completed"}
    finally:
        await fake.stop()


async def test_webhook_is_posted_with_the_auth_header(
    fake: FakeSoniox, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[tuple[dict[str, Any], str | None]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((await request.json(), request.headers.get("X-Hook-Token")))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        job = (
            await create(
                client,
                audio_url="https://example.com/a.mp3",
                webhook_url=f"http://127.0.0.1:{port}/hook",
                webhook_auth_header_name="X-Hook-Token",
                webhook_auth_header_value="s3cret",
            )
        ).json()
        assert job["webhook_auth_header_value"] != "s3cret"
        await fake.complete(job["id"])
        await fake.wait_for(lambda: fake.webhook_deliveries, timeout=5)
        assert received == [({"id": job["id"], "status": "completed"}, "s3cret")]
        assert fake.webhook_deliveries[0]["status"] == 200
        assert (await client.get(f"/transcriptions/{job['id']}")).json()[
            "webhook_status_code"
        ] == 200
    finally:
        await runner.cleanup()

    # A receiver that is down does not disturb the fake: the failure is logged and recorded.
    with caplog.at_level(logging.WARNING, logger="tests.fakes.soniox"):
        failing = (
            await create(
                client,
                audio_url="https://example.com/corrupt.mp3",
                webhook_url=f"http://127.0.0.1:{port}/hook",
            )
        ).json()
        assert (await client.get(f"/transcriptions/{failing['id']}")).json()["status"] == "error"
        await fake.wait_for(lambda: len(fake.webhook_deliveries) == 2, timeout=5)
    assert fake.webhook_deliveries[1]["error"]
    assert fake.webhook_deliveries[1]["body"] == {"id": failing["id"], "status": "error"}
    assert "webhook" in caplog.text


async def test_streamed_upload_is_counted_and_hashed(
    fake: FakeSoniox, client: httpx.AsyncClient
) -> None:
    boundary = uuid.uuid4().hex
    size = 50 * 1024 * 1024
    digest = hashlib.sha256()

    async def body() -> AsyncIterator[bytes]:
        yield (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="big.wav"\r\n'
            "Content-Type: audio/wav\r\n\r\n"
        ).encode()
        block = bytes(range(256)) * 4096  # 1 MiB
        for index in range(size // len(block)):
            chunk = index.to_bytes(4, "big") + block[4:]
            digest.update(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    response = await client.post(
        "/files",
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()
    assert uploaded["size"] == size
    assert fake.files[uploaded["id"]]["sha256"] == digest.hexdigest()
    assert fake.files[uploaded["id"]]["head"] == (0).to_bytes(4, "big") + bytes(range(4, 64))
    assert fake.requests_to("/v1/files$", "POST")[-1].body is None


async def test_injected_faults_come_before_auth_and_routes(
    fake: FakeSoniox, client: httpx.AsyncClient
) -> None:
    fake.inject(
        r"^/v1/transcriptions$", method="POST", status=500, body={"error_type": "internal_error"}
    )
    assert (await create(client, audio_url="https://example.com/a.mp3")).status_code == 500
    assert (await create(client, audio_url="https://example.com/a.mp3")).status_code == 201


async def test_an_exhausted_account_answers_402_until_it_is_restored(
    fake: FakeSoniox, client: httpx.AsyncClient
) -> None:
    uploaded = await upload(client, "a.wav", b"RIFF....")
    fake.exhaust_account("organization_monthly_budget_exhausted")
    refused = assert_error(
        await create(client, file_id=uploaded["id"]), 402, "organization_monthly_budget_exhausted"
    )
    assert refused["validation_errors"] == [] and refused["message"]
    await upload(client, "b.wav", b"RIFF....")  # storage is not paid work
    fake.exhaust_account("organization_balance_exhausted", uploads=True)
    response = await client.post("/files", files={"file": ("c.wav", b"RIFF....")})
    assert_error(response, 402, "organization_balance_exhausted")
    assert fake.payment_refusals == 2 and fake.create_bodies == [] and len(fake.files) == 2

    fake.restore_account()
    assert (await create(client, file_id=uploaded["id"])).status_code == 201


async def test_storage_caps_answer_429_until_files_are_deleted() -> None:
    async with FakeSoniox(max_files=2, max_storage_bytes=100) as capped:
        assert isinstance(capped, FakeSoniox)
        async with httpx.AsyncClient(
            base_url=capped.api_url, headers={"Authorization": f"Bearer {KEY}"}
        ) as c:
            first = await upload(c, "a.wav", b"a" * 40)
            await upload(c, "b.wav", b"b" * 40)
            body = assert_error(
                await c.post("/files", files={"file": ("c.wav", b"c")}), 429, "limit_exceeded"
            )
            assert "file count" in body["message"]
            assert (await c.delete(f"/files/{first['id']}")).status_code == 204
            body = assert_error(
                await c.post("/files", files={"file": ("d.wav", b"d" * 61)}), 429, "limit_exceeded"
            )
            assert "file size" in body["message"]
            await upload(c, "e.wav", b"e" * 60)
            assert capped.storage_refusals == 2
            assert (capped.peak_files, capped.peak_storage_bytes) == (2, 100)


@pytest.mark.parametrize(
    ("context", "location"),
    [
        ({"terms": ["x" * 6000], "text": "y" * 4001}, "body.context"),
        ("z" * 10_001, "body.context"),
        ({"terms": "Kubernetes"}, "body.context.terms"),
        ({"general": [{"key": "domain"}]}, "body.context.general"),
        ({"translation_terms": [{"source": "a", "target": 1}]}, "body.context.translation_terms"),
        ({"vocabulary": ["a"]}, "body.context.vocabulary"),
        (["a"], "body.context"),
    ],
)
async def test_a_context_of_the_wrong_shape_or_size_is_refused(
    fake: FakeSoniox, client: httpx.AsyncClient, context: Any, location: str
) -> None:
    refused = await create(client, audio_url="https://cdn.example/a.mp3", context=context)
    body = assert_error(refused, 400, "invalid_request")
    assert [error["location"] for error in body["validation_errors"]] == [location]
    assert fake.create_bodies == []


async def test_a_context_within_the_limit_is_kept(
    fake: FakeSoniox, client: httpx.AsyncClient
) -> None:
    context = {
        "general": [{"key": "domain", "value": "Platform"}],
        "text": "y" * 4000,
        "terms": ["x" * 5000, "Kubernetes"],
        "translation_terms": [{"source": "pod", "target": "Pod"}],
    }
    created = await create(client, audio_url="https://cdn.example/a.mp3", context=context)
    assert created.status_code == 201, created.text
    assert created.json()["context"] == context
    assert fake.create_bodies[-1]["context"] == context


@pytest.mark.parametrize(
    "translation",
    [
        {"type": "one_way"},
        {"type": "one_way", "target_language": "xx"},
        {"type": "two_way", "language_a": "en", "language_b": "en"},
        {"type": "three_way", "target_language": "de"},
        "de",
    ],
)
async def test_a_wrong_translation_is_refused(client: httpx.AsyncClient, translation: Any) -> None:
    refused = await create(client, audio_url="https://cdn.example/a.mp3", translation=translation)
    assert_error(refused, 400, "invalid_request")


async def test_translated_tokens_follow_the_turns_they_translate(
    fake: FakeSoniox, client: httpx.AsyncClient
) -> None:
    fake.set_transcript(
        "talk.mp3",
        [("1", "Good morning."), ("2", "Hola."), ("1", "Bonjour.")],
        ["en", "es", "fr"],
        translations=["Buenos días."],
        unsure=["morning"],
    )
    uploaded = await upload(client, "talk.mp3", b"ID3 audio")
    job = (
        await create(
            client,
            file_id=uploaded["id"],
            enable_speaker_diarization=True,
            enable_language_identification=True,
            translation={"type": "two_way", "language_a": "en", "language_b": "es"},
        )
    ).json()
    await fake.complete(job["id"])
    tokens = (await client.get(f"/transcriptions/{job['id']}/transcript")).json()["tokens"]

    said = [
        (t["translation_status"], t.get("language"), t.get("speaker"), t["text"]) for t in tokens
    ]
    assert said == [
        ("original", "en", "1", "Go"),
        ("original", "en", "1", "od"),
        ("original", "en", "1", " morn"),
        ("original", "en", "1", "ing"),
        ("original", "en", "1", "."),
        ("translation", "es", "1", " Buenos"),
        ("translation", "es", "1", " días."),
        ("original", "es", "2", " Ho"),
        ("original", "es", "2", "la"),
        ("original", "es", "2", "."),
        # Not registered: a made-up translation says which language it is in.
        ("translation", "en", "2", " [en]"),
        ("translation", "en", "2", " Hola."),
        # Neither of the two languages: only transcribed.
        ("none", "fr", "1", " Bonj"),
        ("none", "fr", "1", "our"),
        ("none", "fr", "1", "."),
    ]
    assert all("start_ms" not in t for t in tokens if t["translation_status"] == "translation")
    assert all(t["source_language"] == "en" for t in tokens[5:7])
    # Every token is scored; the unsure word low.
    scores = {t["text"]: t["confidence"] for t in tokens}
    assert scores[" morn"] < 0.5 and scores["ing"] < 0.5 and scores["Go"] > 0.9
