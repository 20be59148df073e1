"""A provider is one module and one line in the registry: a provider declared here, and added to
the registry alone, is set up from its variables, chosen with ``/transcribe provider`` and
``transcribe --provider``, has its secret masked in logs and gets its webhook route."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from pydantic import Field, SecretStr

from bot import cli
from bot.app import running_bot
from bot.config import ConfigError, load_settings
from bot.errors import PermanentError
from bot.providers import build_providers, registry
from bot.providers.base import Progress, Provider, ProviderJob, Submitted, Uploaded
from bot.providers.spec import ProviderContext, ProviderSettings, ProviderSpec, WebhookRoute
from tests.bot_process import free_port
from tests.conftest import SettingsFactory, SlackSender
from tests.e2e.test_commands import command_answer
from tests.fakes.slack import FakeSlack
from tests.workspaces import FAKE_WORKSPACE

ECHO_TOKEN = "echo-secret-token-0123456789"

log = logging.getLogger(__name__)


class EchoProvider(Provider):
    """Never called with work here: these tests are about how the app finds it."""

    name = "echo"
    display_name = "Echo"

    def __init__(self, token: str, region: str) -> None:
        self.token = token
        self.region = region

    async def check_credentials(self) -> None:
        log.info("checking the echo token %s", self.token)

    async def upload(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded | PermanentError]:
        raise NotImplementedError

    async def submit(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted | PermanentError]:
        raise NotImplementedError

    async def poll(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Progress]:
        raise NotImplementedError

    async def clean_up(self, jobs: Sequence[ProviderJob]) -> None:
        raise NotImplementedError


class EchoSettings(ProviderSettings):
    token: SecretStr | None = None
    region: str = "eu"
    retries: Annotated[int, Field(ge=0)] = 3

    def build(self, context: ProviderContext) -> EchoProvider:
        assert self.token is not None
        # What a careless provider might do; the log handler must still hide the token.
        log.info("building the echo provider with token %s", self.token.get_secret_value())
        return EchoProvider(self.token.get_secret_value(), self.region)


def _finished_job(notice: Any) -> str:
    return str(notice["job"])


ECHO = ProviderSpec(
    provider=EchoProvider,
    settings=EchoSettings,
    required=("token",),
    webhook=WebhookRoute(
        path="/webhooks/echo", finished_id=_finished_job, expected_body="expected {job}"
    ),
)


@pytest.fixture(autouse=True)
def echo_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "PROVIDERS", (*registry.PROVIDERS, ECHO))


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


async def test_its_settings_are_read_from_its_variables_and_checked_with_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ECHO_TOKEN", ECHO_TOKEN)
    monkeypatch.setenv("ECHO_REGION", "ap")
    settings = load_settings(_env_file=None, need_slack=False, soniox_api_key="k")
    assert settings.provider_configured("echo")
    async with httpx.AsyncClient() as client:
        echo = build_providers(settings, client)["echo"]
    assert isinstance(echo, EchoProvider) and (echo.token, echo.region) == (ECHO_TOKEN, "ap")
    assert ECHO_TOKEN in settings.secret_values()

    monkeypatch.delenv("ECHO_TOKEN")
    unset = load_settings(_env_file=None, need_slack=False, soniox_api_key="k")
    assert not unset.provider_configured("echo")
    async with httpx.AsyncClient() as client:
        assert "echo" not in build_providers(unset, client)

    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, need_slack=False, echo_retries=-1, log_level="LOUD")
    problems = caught.value.problems
    assert any(problem.startswith("ECHO_RETRIES: ") for problem in problems)
    assert any(problem.startswith("LOG_LEVEL: ") for problem in problems), "in one message"
    assert any(problem.startswith("SONIOX_API_KEY is required") for problem in problems)


def test_the_cli_offers_it_and_masks_its_secret_in_logs(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    restored_logging: None,
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("SONIOX_API_KEY", "soniox-key-0123456789")
    monkeypatch.setenv("ECHO_TOKEN", ECHO_TOKEN)
    missing = str(tmp_path / "missing.wav")

    assert cli.main(["transcribe", "--provider", "echo", missing]) == 2

    stderr = capsys.readouterr().err
    assert "building the echo provider with token [redacted]" in stderr
    assert f"No such file: {missing}" in stderr
    assert ECHO_TOKEN not in stderr


async def test_it_is_a_choice_of_transcribe_provider_and_gets_its_webhook_route(
    make_settings: SettingsFactory, fake_slack: FakeSlack
) -> None:
    port = free_port()
    settings = make_settings(port=port, public_url=f"http://127.0.0.1:{port}", echo_token=None)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        sender = SlackSender(fake_slack, runtime)
        unset = await command_answer(sender, "provider echo")
    assert "Echo is not set up on this app (ECHO_TOKEN is missing)" in unset

    settings = make_settings(
        port=port, public_url=f"http://127.0.0.1:{port}", echo_token=ECHO_TOKEN
    )
    webhook = settings.webhook_target(ECHO)
    assert webhook is not None and webhook.url == f"http://127.0.0.1:{port}/webhooks/echo"
    async with running_bot(settings, host="127.0.0.1") as runtime:
        sender = SlackSender(fake_slack, runtime)
        help_text = await command_answer(sender, "help")
        shown = await command_answer(sender, "provider")
        chosen = await command_answer(sender, "provider echo")
        async with httpx.AsyncClient() as client:
            notices = [
                await client.post(webhook.url, json={"job": "j-1"}, headers=headers)
                for headers in (
                    {webhook.header_name: "guess"},
                    {webhook.header_name: webhook.header_value},
                )
            ]
            malformed = await client.post(
                webhook.url, json={}, headers={webhook.header_name: webhook.header_value}
            )

    assert "speech-to-text provider: `soniox`, `soket` or `echo`" in help_text
    assert "Available: `echo`, `soket`, `soniox`." in shown
    assert "This channel now uses *Echo* for new work" in chosen
    assert [notice.status_code for notice in notices] == [401, 200]
    assert (malformed.status_code, malformed.json()) == (400, {"error": "expected {job}"})


async def test_what_it_declares_decides_which_transcript_settings_its_channels_get(
    make_settings: SettingsFactory, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(echo_token=ECHO_TOKEN)
    async with running_bot(settings, host="127.0.0.1") as runtime:
        sender = SlackSender(fake_slack, runtime)
        await command_answer(sender, "provider echo")
        refused = await command_answer(sender, "translate de")
        monkeypatch.setattr(EchoProvider, "supports_translation", True)
        monkeypatch.setattr(EchoProvider, "translation_languages", frozenset({"eo"}))
        wrong = await command_answer(sender, "translate de")
        taken = await command_answer(sender, "translate eo")
        translation = (
            await runtime.store.channel_settings(FAKE_WORKSPACE, "C0GENERAL")
        ).translation

    assert refused == (
        "Echo (this channel's provider) does not support translation, so nothing was changed. "
        "Soniox does: `/transcribe provider soniox` switches this channel to it."
    )
    assert wrong == "`de` is not a language code Echo translates. It takes these (ISO 639-1): `eo`."
    assert "now translated into *Esperanto* (`eo`)" in taken
    assert translation == ("eo",)
