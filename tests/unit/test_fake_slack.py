"""The Slack fake against the real slack_sdk clients over loopback HTTP: if these pass, the bot's
tests talk to something that answers in the shapes and with the quirks the SDK meets in production.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import CHUNK_SIZE, SIGN_IN_PAGE, FakeSlack, pattern_bytes


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def web(fake: FakeSlack) -> AsyncWebClient:
    # No session given: the SDK opens and closes one per call, so nothing is left unclosed.
    return AsyncWebClient(token=fake.bot_token, base_url=fake.api_url)


async def test_auth_test_answers_the_bot_identity_and_scopes(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    response = await web.auth_test()
    assert response["user_id"] == fake.bot_user_id
    assert response["bot_id"] == fake.bot_id
    assert response["team_id"] == fake.team_id
    assert response["url"] == f"{fake.base_url}/"
    assert response.headers["x-oauth-scopes"].split(",") == fake.scopes
    assert len(fake.api_calls("auth.test")) == 1


async def test_wrong_or_missing_token_is_an_ok_false_answer(fake: FakeSlack) -> None:
    wrong = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    with pytest.raises(SlackApiError) as caught:
        await wrong.auth_test()
    assert caught.value.response.status_code == 200
    assert caught.value.response["error"] == "invalid_auth"

    anonymous = AsyncWebClient(base_url=fake.api_url)
    with pytest.raises(SlackApiError) as caught:
        await anonymous.auth_test()
    assert caught.value.response["error"] == "not_authed"

    app_token = AsyncWebClient(token=fake.app_token, base_url=fake.api_url)
    with pytest.raises(SlackApiError) as caught:
        await app_token.chat_postMessage(channel="C1", text="hi")
    assert caught.value.response["error"] == "not_allowed_token_type"


async def test_unknown_method_and_missing_scope(fake: FakeSlack, web: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        await web.api_call("users.list")
    assert caught.value.response["error"] == "unknown_method"

    fake.scopes.remove("reactions:write")
    event = fake.message_event(text="hello", subtype=None)
    with pytest.raises(SlackApiError) as caught:
        await web.reactions_add(channel=event["channel"], timestamp=event["ts"], name="eyes")
    assert caught.value.response["error"] == "missing_scope"
    assert caught.value.response["needed"] == "reactions:write"


async def test_thread_reply_with_metadata_comes_back_from_conversations_replies(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    parent = fake.message_event(files=[fake.add_file()])
    metadata = {"event_type": "transcript_posted", "event_payload": {"file_id": "F1"}}
    posted = await web.chat_postMessage(
        channel=parent["channel"], text="Transcribing…", thread_ts=parent["ts"], metadata=metadata
    )
    assert posted["message"]["metadata"] == metadata
    assert fake.messages[0]["thread_ts"] == parent["ts"]
    assert fake.replies_in(parent["channel"], parent["ts"]) == [fake.messages[0]]

    thread = await web.conversations_replies(
        channel=parent["channel"], ts=parent["ts"], include_all_metadata=True
    )
    messages = thread["messages"]
    assert [m["ts"] for m in messages] == [parent["ts"], posted["ts"]]
    assert messages[0]["reply_count"] == 1
    assert messages[0]["files"][0]["id"] == parent["files"][0]["id"]
    assert messages[1]["metadata"] == metadata
    assert messages[1]["bot_id"] == fake.bot_id
    assert thread["has_more"] is False

    # Like Slack, metadata needs include_all_metadata.
    plain = await web.conversations_replies(channel=parent["channel"], ts=parent["ts"])
    assert "metadata" not in plain["messages"][1]

    with pytest.raises(SlackApiError) as caught:
        await web.conversations_replies(channel=parent["channel"], ts="1.000001")
    assert caught.value.response["error"] == "thread_not_found"


async def test_conversations_replies_paginates(fake: FakeSlack, web: AsyncWebClient) -> None:
    parent = fake.message_event(text="root", subtype=None)
    for n in range(4):
        await web.chat_postMessage(channel=parent["channel"], text=f"r{n}", thread_ts=parent["ts"])
    seen: list[str] = []
    cursor = None
    while True:
        page = await web.conversations_replies(
            channel=parent["channel"], ts=parent["ts"], limit=2, cursor=cursor
        )
        seen += [m["text"] for m in page["messages"]]
        if not page["has_more"]:
            break
        cursor = page["response_metadata"]["next_cursor"]
    assert seen == ["root", "r0", "r1", "r2", "r3"]


async def test_post_message_errors(fake: FakeSlack, web: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as caught:
        await web.api_call("chat.postMessage", json={"text": "no channel"})
    assert caught.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as caught:
        await web.api_call("chat.postMessage", json={"channel": "C1"})
    assert caught.value.response["error"] == "no_text"
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="C1", text="long", blocks=[section])
    assert caught.value.response["error"] == "invalid_blocks"
    assert fake.messages == []


async def test_form_encoded_arguments_are_accepted(fake: FakeSlack) -> None:
    """Other clients (and ``api_call(data=...)``) send forms with JSON-string blocks."""
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Done*"}}]
    metadata = {"event_type": "job", "event_payload": {"id": 1}}
    form = {
        "channel": "C1",
        "text": "Done",
        "blocks": json.dumps(blocks),
        "metadata": json.dumps(metadata),
    }
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{fake.api_url}chat.postMessage",
            data=form,
            headers={"Authorization": f"Bearer {fake.bot_token}"},
        )
    assert answer.status_code == 200
    assert answer.json()["ok"] is True
    assert fake.messages[0]["blocks"] == blocks
    assert fake.messages[0]["metadata"] == metadata
    assert fake.api_args("chat.postMessage")[0]["text"] == "Done"


async def test_chat_update_edits_in_place(fake: FakeSlack, web: AsyncWebClient) -> None:
    posted = await web.chat_postMessage(channel="C1", text="Transcribing…")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "Done"}}]
    updated = await web.chat_update(channel="C1", ts=posted["ts"], text="Done", blocks=blocks)
    assert updated["ts"] == posted["ts"]
    assert fake.messages[0]["text"] == "Done"
    assert fake.messages[0]["blocks"] == blocks
    assert len(fake.message_edits) == 1
    assert fake.message_edits[0]["previous"]["text"] == "Transcribing…"

    with pytest.raises(SlackApiError) as caught:
        await web.chat_update(channel="C1", ts="1.000001", text="nope")
    assert caught.value.response["error"] == "message_not_found"

    user_message = fake.message_event(text="mine", subtype=None)
    with pytest.raises(SlackApiError) as caught:
        await web.chat_update(channel=user_message["channel"], ts=user_message["ts"], text="x")
    assert caught.value.response["error"] == "cant_update_message"


async def test_ephemeral(fake: FakeSlack, web: AsyncWebClient) -> None:
    answer = await web.chat_postEphemeral(channel="C1", user="U0ALICE", text="only you")
    assert fake.ephemerals[0]["text"] == "only you"
    assert fake.ephemerals[0]["message_ts"] == answer["message_ts"]


async def test_reactions(fake: FakeSlack, web: AsyncWebClient) -> None:
    event = fake.message_event(files=[fake.add_file()])
    key = (event["channel"], event["ts"])
    await web.reactions_add(channel=key[0], timestamp=key[1], name="hourglass_flowing_sand")
    await web.reactions_add(channel=key[0], timestamp=key[1], name="white_check_mark")
    assert fake.reactions[key] == ["hourglass_flowing_sand", "white_check_mark"]

    with pytest.raises(SlackApiError) as caught:
        await web.reactions_add(channel=key[0], timestamp=key[1], name="white_check_mark")
    assert caught.value.response["error"] == "already_reacted"

    await web.reactions_remove(channel=key[0], timestamp=key[1], name="hourglass_flowing_sand")
    assert fake.reactions[key] == ["white_check_mark"]
    with pytest.raises(SlackApiError) as caught:
        await web.reactions_remove(channel=key[0], timestamp=key[1], name="hourglass_flowing_sand")
    assert caught.value.response["error"] == "no_reaction"

    thread = await web.conversations_replies(channel=key[0], ts=key[1])
    assert thread["messages"][0]["reactions"][0]["name"] == "white_check_mark"


async def test_files_info_completes_a_slack_connect_stub(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    stub = fake.add_file(name="call.m4a", mimetype="audio/mp4", filetype="m4a", stub=True)
    assert stub["file_access"] == "check_file_info"
    assert "url_private_download" not in stub

    info = await web.files_info(file=stub["id"])
    assert info["file"]["name"] == "call.m4a"
    assert info["file"]["mimetype"] == "audio/mp4"
    assert info["file"]["url_private_download"].startswith(fake.base_url)

    with pytest.raises(SlackApiError) as caught:
        await web.files_info(file="F404")
    assert caught.value.response["error"] == "file_not_found"


async def test_files_upload_v2_lands_in_uploads_and_the_thread(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    parent = fake.message_event(files=[fake.add_file()])
    content = "00:00 Alice: hello\n" * 500
    response = await web.files_upload_v2(
        content=content,
        filename="transcript.txt",
        title="Transcript",
        channel=parent["channel"],
        thread_ts=parent["ts"],
        initial_comment="Full transcript attached.",
    )
    assert response["file"]["name"] == "transcript.txt"
    [upload] = fake.uploads
    assert upload["content"] == content.encode()
    assert upload["filename"] == "transcript.txt"
    assert upload["title"] == "Transcript"
    assert upload["channel_id"] == parent["channel"]
    assert upload["thread_ts"] == parent["ts"]
    assert upload["initial_comment"] == "Full transcript attached."

    [share] = fake.replies_in(parent["channel"], parent["ts"])
    assert share["files"][0]["id"] == upload["id"]
    assert fake.messages == []  # chat.postMessage only
    info = await web.files_info(file=upload["id"])
    assert info["file"]["size"] == len(content.encode())


async def test_upload_target_accepts_multipart_too(fake: FakeSlack, web: AsyncWebClient) -> None:
    target = await web.files_getUploadURLExternal(filename="notes.txt", length=5)
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            target["upload_url"], files={"file": ("notes.txt", b"hello", "text/plain")}
        )
    assert answer.text == "OK - 5"
    await web.files_completeUploadExternal(files=[{"id": target["file_id"], "title": "Notes"}])
    assert fake.uploads[0]["content"] == b"hello"
    assert fake.uploads[0]["channel_id"] is None


async def test_private_file_download_needs_the_bot_token(fake: FakeSlack) -> None:
    audio = b"RIFF" + bytes(range(256)) * 10
    file = fake.add_file(content=audio)
    async with httpx.AsyncClient() as http:
        ok = await http.get(
            file["url_private_download"],
            headers={"Authorization": f"Bearer {fake.bot_token}"},
        )
        anonymous = await http.get(file["url_private"])
        wrong = await http.get(
            file["url_private_download"], headers={"Authorization": "Bearer xoxb-wrong"}
        )
    assert ok.status_code == 200
    assert ok.content == audio
    assert ok.headers["content-type"] == "audio/wav"
    assert ok.headers["content-length"] == str(len(audio))
    for page in (anonymous, wrong):
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.text == SIGN_IN_PAGE
    assert fake.downloads == [
        {"file_id": file["id"], "authorized": True},
        {"file_id": file["id"], "authorized": False},
        {"file_id": file["id"], "authorized": False},
    ]


async def test_sized_file_streams_its_pattern(fake: FakeSlack) -> None:
    size = 3 * CHUNK_SIZE + 12_345
    file = fake.add_file(size=size)
    headers = {"Authorization": f"Bearer {fake.bot_token}"}
    received = bytearray()
    async with (
        httpx.AsyncClient() as http,
        http.stream("GET", file["url_private_download"], headers=headers) as response,
    ):
        assert response.headers["content-length"] == str(size)
        async for chunk in response.aiter_bytes():
            received += chunk
    assert len(received) == size
    assert bytes(received) == pattern_bytes(size)

    async with httpx.AsyncClient() as http:
        part = await http.get(
            file["url_private_download"], headers={**headers, "Range": "bytes=65530-65545"}
        )
    assert part.status_code == 206
    assert part.content == pattern_bytes(size)[65530:65546]


async def test_missing_files_read_scope_gives_the_sign_in_page(fake: FakeSlack) -> None:
    file = fake.add_file()
    fake.scopes.remove("files:read")
    async with httpx.AsyncClient() as http:
        page = await http.get(
            file["url_private_download"], headers={"Authorization": f"Bearer {fake.bot_token}"}
        )
    assert page.status_code == 200
    assert page.text == SIGN_IN_PAGE


async def test_injected_rate_limit_reaches_the_sdk(fake: FakeSlack, web: AsyncWebClient) -> None:
    fake.inject_rate_limit("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="C1", text="hi")
    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert caught.value.response.headers["Retry-After"] == "7"
    # One-shot: the next call goes through.
    await web.chat_postMessage(channel="C1", text="hi")
    assert len(fake.messages) == 1


async def test_http_mode_events_signatures_and_response_urls(fake: FakeSlack) -> None:
    event = fake.message_event(files=[fake.add_file()], thread_ts=None)
    body = json.dumps(fake.event_callback(event))
    headers = fake.signed_headers(body)
    verifier = SignatureVerifier(fake.signing_secret)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body, fake.signed_headers(body, secret="other"))
    stale = fake.signed_headers(body, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)

    envelope = json.loads(body)
    assert envelope["type"] == "event_callback"
    assert envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"][0]["user_id"] == fake.bot_user_id
    assert envelope["event"]["subtype"] == "file_share"
    assert envelope["event"]["files"][0]["url_private_download"]

    url = fake.response_url()
    async with httpx.AsyncClient() as http:
        answer = await http.post(url, json={"text": "Working on it", "response_type": "ephemeral"})
    assert answer.json() == {"ok": True}
    assert fake.responses[0]["text"] == "Working on it"
    assert url.endswith(fake.responses[0]["response_id"])


async def test_timestamps_increase(fake: FakeSlack) -> None:
    stamps = [fake.next_ts() for _ in range(50)]
    assert stamps == sorted(stamps, key=lambda ts: tuple(int(p) for p in ts.split(".")))
    assert len(set(stamps)) == 50


async def test_socket_mode_round_trip(fake: FakeSlack) -> None:
    received: list[SocketModeRequest] = []
    frames: list[dict[str, object]] = []

    async def on_frame(
        client: AsyncBaseSocketModeClient, message: dict[str, object], raw: str | None
    ) -> None:
        frames.append(message)

    async def listener(client: AsyncBaseSocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id))

    client = SocketModeClient(
        app_token=fake.app_token, web_client=AsyncWebClient(base_url=fake.api_url)
    )
    client.socket_mode_request_listeners.append(listener)
    client.message_listeners.append(on_frame)
    try:
        await client.connect()  # type: ignore[no-untyped-call]
        assert await fake.wait_for(lambda: fake.connected, timeout=2)
        assert fake.api_args("apps.connections.open") == [{}]  # token went in the header
        await fake.wait_for(lambda: frames, timeout=2)
        assert frames[0]["type"] == "hello"

        event = fake.message_event(files=[fake.add_file()])
        envelope_id = await fake.send_envelope(fake.event_callback(event), timeout=2)
        ack = await fake.wait_for_ack(envelope_id, timeout=2)
        assert ack == {"envelope_id": envelope_id}
        assert received[0].type == "events_api"
        assert received[0].payload["event"]["ts"] == event["ts"]

        # A refresh: the SDK opens a new connection and keeps receiving.
        await fake.disconnect_all()
        await fake.wait_for(lambda: len(fake.api_calls("apps.connections.open")) == 2, timeout=3)
        second = await fake.send_envelope({"event": {"type": "app_mention"}}, timeout=3)
        await fake.wait_for_ack(second, timeout=3)
    finally:
        await client.close()  # type: ignore[no-untyped-call]
    await fake.wait_for(lambda: not fake.connected, timeout=2)
    # Let the client's cancelled tasks finish before the loop closes.
    await asyncio.sleep(0)


# -- buttons, modals, members, people --------------------------------------------------------------

BUTTON_BLOCKS = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Transcript"}},
    {
        "type": "actions",
        "block_id": "speakers",
        "elements": [
            {
                "type": "button",
                "action_id": "name_speakers",
                "text": {"type": "plain_text", "text": "Name speakers"},
                "value": "b-123",
            }
        ],
    },
]

MODAL = {
    "type": "modal",
    "callback_id": "name_speakers",
    "title": {"type": "plain_text", "text": "Name speakers"},
    "submit": {"type": "plain_text", "text": "Save"},
    "private_metadata": '{"batch": "b-123"}',
    "blocks": [
        {
            "type": "input",
            "block_id": "speaker-0-1",
            "optional": True,
            "label": {"type": "plain_text", "text": "Speaker 1"},
            "element": {
                "type": "users_select",
                "action_id": "person",
                "initial_user": "U0BOB",
            },
        },
        {
            "type": "input",
            "block_id": "speaker-0-2",
            "optional": True,
            "label": {"type": "plain_text", "text": "Speaker 2"},
            "element": {"type": "users_select", "action_id": "person"},
        },
    ],
}


async def test_a_button_press_opens_one_modal_within_three_seconds(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    posted = await web.chat_postMessage(channel="C1", text="Transcript", blocks=BUTTON_BLOCKS)
    press = fake.block_action("C1", posted["ts"], "name_speakers", user="U0CAROL")

    assert press["type"] == "block_actions"
    assert press["actions"][0]["value"] == "b-123"
    assert press["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    opened = await web.views_open(trigger_id=press["trigger_id"], view=MODAL)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["private_metadata"] == '{"batch": "b-123"}'
    assert fake.views[0]["user"] == "U0CAROL"

    with pytest.raises(SlackApiError) as caught:
        await web.views_open(trigger_id=press["trigger_id"], view=MODAL)
    assert caught.value.response["error"] == "exchanged_trigger_id"
    late = fake.block_action("C1", posted["ts"], "name_speakers")
    fake.expire_triggers()
    with pytest.raises(SlackApiError) as caught:
        await web.views_open(trigger_id=late["trigger_id"], view=MODAL)
    assert caught.value.response["error"] == "expired_trigger_id"
    with pytest.raises(SlackApiError) as caught:
        await web.views_open(trigger_id="1.T0FAKE.made-up", view=MODAL)
    assert caught.value.response["error"] == "invalid_arguments"


async def test_a_modal_is_checked_as_slack_checks_it(fake: FakeSlack, web: AsyncWebClient) -> None:
    posted = await web.chat_postMessage(channel="C1", text="Transcript", blocks=BUTTON_BLOCKS)
    too_long = {**MODAL, "title": {"type": "plain_text", "text": "x" * 25}}
    without_submit = {key: value for key, value in MODAL.items() if key != "submit"}
    for view in (too_long, without_submit, {**MODAL, "private_metadata": "x" * 3001}):
        press = fake.block_action("C1", posted["ts"], "name_speakers")
        with pytest.raises(SlackApiError) as caught:
            await web.views_open(trigger_id=press["trigger_id"], view=view)
        assert caught.value.response["error"] == "invalid_arguments"
    assert fake.views == []


async def test_a_submission_carries_the_people_chosen_and_the_metadata(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    posted = await web.chat_postMessage(channel="C1", text="Transcript", blocks=BUTTON_BLOCKS)
    press = fake.block_action("C1", posted["ts"], "name_speakers")
    opened = await web.views_open(trigger_id=press["trigger_id"], view=MODAL)

    submitted = fake.view_submission(opened["view"]["id"], {"speaker-0-2": "U0ALICE"})

    assert submitted["type"] == "view_submission"
    assert submitted["user"]["id"] == "U0ALICE"
    assert submitted["view"]["callback_id"] == "name_speakers"
    assert submitted["view"]["private_metadata"] == '{"batch": "b-123"}'
    assert submitted["view"]["state"]["values"] == {
        "speaker-0-1": {"person": {"type": "users_select", "selected_user": "U0BOB"}},
        "speaker-0-2": {"person": {"type": "users_select", "selected_user": "U0ALICE"}},
    }


async def test_conversations_members_pages_and_needs_the_read_scope(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    fake.set_members("C1", [f"U{n:04d}" for n in range(5)])
    first = await web.conversations_members(channel="C1", limit=4)
    assert first["members"] == [fake.bot_user_id, "U0000", "U0001", "U0002"]
    cursor = first["response_metadata"]["next_cursor"]
    second = await web.conversations_members(channel="C1", limit=4, cursor=cursor)
    assert second["members"] == ["U0003", "U0004"]
    assert second["response_metadata"]["next_cursor"] == ""
    with pytest.raises(SlackApiError) as caught:
        await web.conversations_members(channel="C0NOWHERE")
    assert caught.value.response["error"] == "channel_not_found"
    fake.scopes.remove("groups:read")
    with pytest.raises(SlackApiError) as caught:
        await web.conversations_members(channel="G1")
    assert caught.value.response["error"] == "missing_scope"


async def test_users_info_gives_the_names_a_person_goes_by(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    alice = await web.users_info(user="U0ALICE")
    assert alice["user"]["profile"]["display_name"] == "Alice"
    assert alice["user"]["profile"]["real_name"] == "Alice Adams"
    with pytest.raises(SlackApiError) as caught:
        await web.users_info(user="U0NOBODY")
    assert caught.value.response["error"] == "user_not_found"


async def test_a_bot_deletes_only_its_own_files(fake: FakeSlack, web: AsyncWebClient) -> None:
    theirs = fake.add_file(name="memo.wav")
    posted = await web.chat_postMessage(channel="C1", text="parent")
    uploaded = await web.files_upload_v2(
        channel="C1", thread_ts=posted["ts"], filename="memo-transcript.txt", content="hello"
    )
    ours = uploaded["files"][0]["id"]
    assert [f["id"] for f in fake.files_in_thread("C1", posted["ts"])] == [ours]

    await web.files_delete(file=ours)

    assert fake.deleted_files == [ours]
    assert fake.files_in_thread("C1", posted["ts"]) == []
    for file_id, error in ((ours, "file_deleted"), (theirs["id"], "cant_delete_file")):
        with pytest.raises(SlackApiError) as caught:
            await web.files_delete(file=file_id)
        assert caught.value.response["error"] == error
