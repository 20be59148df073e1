"""A file its provider would refuse, by size or by length, is answered before a byte of it is
downloaded: at intake, or once ``files.info`` has described a Slack Connect stub."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import Runtime, running_bot
from storage.models import ChannelSettings
from tests.conftest import SettingsFactory, SlackSender, final_replies
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox
from tests.workspaces import FAKE_WORKSPACE

MIB = 1024 * 1024
#: 5 h 12 min, as Slack gives a clip's length.
FIVE_HOURS_TWELVE = (5 * 60 + 12) * 60 * 1000
TOO_LONG_FOR_SONIOX = (
    "This recording is 5 h 12 min long; Soniox takes at most 300 minutes per file."
)


def long_clip(fake_slack: FakeSlack, *, stub: bool = False) -> dict[str, Any]:
    """A voice clip whose Slack object says it lasts 5 h 12 min (its bytes are a short WAV)."""
    return fake_slack.add_file(
        name="all-hands.m4a",
        mimetype="audio/mp4",
        filetype="m4a",
        content=silent_wav(),
        stub=stub,
        extra={"subtype": "slack_audio", "duration_ms": FIVE_HOURS_TWELVE},
    )


async def refused_reply(
    runtime: Runtime, fake_slack: FakeSlack, event: dict[str, Any]
) -> dict[str, Any]:
    await SlackSender(fake_slack, runtime).event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))
    await fake_slack.wait_for(
        lambda: fake_slack.reactions.get((event["channel"], event["ts"])) == ["warning"]
    )
    return reply


async def test_a_file_over_soniox_size_limit_is_refused_whatever_max_file_mb_says(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    async with running_bot(make_settings(max_file_mb=2000), host="127.0.0.1") as runtime:
        # Only its size is known to the fake: its bytes would be generated if it were fetched.
        big = fake_slack.add_file(
            name="webinar.mp4", mimetype="video/mp4", filetype="mp4", size=600 * MIB
        )
        event = fake_slack.message_event(files=[big])
        reply = await refused_reply(runtime, fake_slack, event)

    assert (
        "webinar.mp4: This file is 600 MB; Soniox takes at most 500 MB per file. Trim or "
        "compress it and share it again." in reply["text"]
    )
    assert fake_slack.download_bytes.get(big["id"], 0) == 0
    assert fake_slack.downloads == []
    assert not fake_soniox.requests_to(r"^/v1/files$")


async def test_a_recording_over_soniox_duration_limit_is_refused_before_any_download(
    bot: Runtime, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    clip = long_clip(fake_slack)
    event = fake_slack.message_event(files=[clip], subtype="slack_audio")

    reply = await refused_reply(bot, fake_slack, event)

    assert f"all-hands.m4a: {TOO_LONG_FOR_SONIOX}" in reply["text"]
    assert fake_slack.download_bytes.get(clip["id"], 0) == 0
    assert fake_slack.downloads == []
    assert not fake_soniox.requests_to(r"^/v1/files$")


@pytest.mark.parametrize("over", ["size", "duration"])
async def test_a_slack_connect_stub_over_the_limits_is_refused_once_files_info_tells(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox, over: str
) -> None:
    async with running_bot(make_settings(max_file_mb=2000), host="127.0.0.1") as runtime:
        if over == "size":
            stub = fake_slack.add_file(name="all-hands.m4a", size=600 * MIB, stub=True)
            expected = "This file is 600 MB; Soniox takes at most 500 MB per file."
        else:
            stub = long_clip(fake_slack, stub=True)
            expected = TOO_LONG_FOR_SONIOX
        assert "size" not in stub and "duration_ms" not in stub
        event = fake_slack.message_event(files=[stub])
        reply = await refused_reply(runtime, fake_slack, event)

    assert f"all-hands.m4a: {expected}" in reply["text"]
    assert fake_slack.api_args("files.info")[0]["file"] == stub["id"]
    assert fake_slack.download_bytes.get(stub["id"], 0) == 0
    assert fake_slack.downloads == []
    assert not fake_soniox.requests_to(r"^/v1/files$")


async def test_the_long_recording_goes_to_soket_which_sets_no_such_limit(
    bot: Runtime, fake_slack: FakeSlack, fake_soket: FakeSoket, slack_sender: SlackSender
) -> None:
    fake_soket.estimated_completion_seconds = 0.1
    await bot.store.save_channel_settings(
        FAKE_WORKSPACE, ChannelSettings(channel_id="C0SOKET", provider="soket"), bot.clock()
    )
    event = fake_slack.message_event(
        files=[long_clip(fake_slack)], subtype="slack_audio", channel="C0SOKET"
    )

    await slack_sender.event(event)
    (reply,) = await fake_slack.wait_for(lambda: final_replies(fake_slack, event))

    assert "Hello from all-hands.m4a." in reply["text"]


async def test_the_download_stops_at_the_provider_limit_when_slack_gave_no_size(
    make_settings: SettingsFactory, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    async with running_bot(make_settings(max_file_mb=100), host="127.0.0.1") as runtime:
        # A provider limit small enough to reach in a test, below MAX_FILE_MB.
        runtime.providers["soniox"].max_file_bytes = 2 * MIB
        stub = fake_slack.add_file(name="memo.wav", size=3 * MIB, stub=True, extra={"size": None})
        event = fake_slack.message_event(files=[stub])
        reply = await refused_reply(runtime, fake_slack, event)

    assert "memo.wav: This file is over 2 MB; Soniox takes at most 2 MB per file." in reply["text"]
    assert len(fake_slack.downloads) == 1
    assert not fake_soniox.requests_to(r"^/v1/files$")
