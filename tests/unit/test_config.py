from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bot.config import ConfigError, ProviderName, load_settings
from bot.providers import build_providers


def test_defaults_follow_the_operator_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv("SONIOX_API_KEY", "key")
    settings = load_settings(_env_file=None)
    assert settings.transcribe_provider is ProviderName.SONIOX
    assert str(settings.slack_api_url) == "https://slack.com/api/"
    assert str(settings.soniox_api_url) == "https://api.soniox.com/v1"
    assert settings.soniox_model == "stt-async-v5"
    assert str(settings.soket_api_url) == "https://api.soket.ai/transcribe"
    assert settings.database_path == Path("./threadscribe.db")
    assert (settings.poll_interval_seconds, settings.port, settings.max_file_mb) == (5, 3000, 500)
    assert settings.log_level == "INFO"
    assert not settings.socket_mode
    assert settings.slack_signing_secret is not None
    assert "s3cret" not in repr(settings)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None,
            slack_bot_token="not-a-token",
            port="eighty",
            transcribe_provider="whisper",
            log_level="LOUD",
        )
    message = caught.value.render()
    assert "SLACK_BOT_TOKEN" in message
    assert "PORT" in message
    assert "TRANSCRIBE_PROVIDER" in message
    assert "LOG_LEVEL" in message
    # And, in the same message, what is missing besides what is invalid.
    assert any("SLACK_SIGNING_SECRET is required" in p for p in caught.value.problems)
    assert any("SONIOX_API_KEY is required" in p for p in caught.value.problems)
    assert len(caught.value.problems) == 6


def test_http_mode_needs_a_signing_secret_and_the_default_provider_needs_a_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, slack_bot_token="xoxb-1", transcribe_provider="soket")
    assert any("SLACK_SIGNING_SECRET" in problem for problem in caught.value.problems)
    assert any("SOKET_API_TOKEN" in problem for problem in caught.value.problems)


def test_app_token_switches_to_socket_mode_without_a_signing_secret() -> None:
    settings = load_settings(
        _env_file=None, slack_bot_token="xoxb-1", slack_app_token="xapp-1", soniox_api_key="k"
    )
    assert settings.socket_mode


def test_transcribe_command_needs_no_slack_settings() -> None:
    settings = load_settings(_env_file=None, need_slack=False, soniox_api_key="k")
    assert settings.slack_bot_token is None


def test_a_public_url_too_long_for_soniox_webhooks_is_refused_with_the_other_problems() -> None:
    base = "https://bot.example.com/"
    fits = base + "a" * (240 - len(base))  # + /webhooks/soniox = 256, Soniox's limit
    settings = load_settings(
        _env_file=None,
        slack_bot_token="xoxb-1",
        slack_signing_secret="s",
        soniox_api_key="k",
        public_url=fits,
    )
    assert settings.soniox_webhook is not None and len(settings.soniox_webhook.url) == 256

    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None,
            slack_bot_token="xoxb-1",
            slack_signing_secret="s",
            soniox_api_key="k",
            public_url=fits + "b",
            log_level="LOUD",
        )
    (too_long,) = [p for p in caught.value.problems if p.startswith("PUBLIC_URL")]
    assert "at most 256 characters" in too_long and "has 257" in too_long
    assert "at most 240 characters" in too_long
    assert any(p.startswith("LOG_LEVEL") for p in caught.value.problems), "listed together"


def test_a_long_public_url_is_fine_where_soniox_gets_no_webhook() -> None:
    long_url = "https://bot.example.com/" + "a" * 300
    # Socket Mode: no webhook route, so nothing is sent to Soniox.
    load_settings(
        _env_file=None,
        slack_bot_token="xoxb-1",
        slack_app_token="xapp-1",
        soniox_api_key="k",
        public_url=long_url,
    )
    # Soniox not set up: nothing to send it to.
    load_settings(
        _env_file=None,
        slack_bot_token="xoxb-1",
        slack_signing_secret="s",
        transcribe_provider="soket",
        soket_api_token="t",
        public_url=long_url,
    )


async def test_soniox_storage_caps_default_to_sonioxs_own_and_reach_the_provider() -> None:
    settings = load_settings(_env_file=None, need_slack=False, soniox_api_key="k")
    assert (settings.soniox_max_files, settings.soniox_max_storage_mb) == (1000, 9536)
    async with httpx.AsyncClient() as client:
        default = build_providers(settings, client)["soniox"]
    # Soniox's "10 GB" may mean 10^10 bytes: the default must stay under it whichever it is.
    assert default.max_stored_bytes < 10**10
    raised = load_settings(
        _env_file=None,
        need_slack=False,
        soniox_api_key="k",
        soniox_max_files="5000",
        soniox_max_storage_mb="51200",
    )
    async with httpx.AsyncClient() as client:
        soniox = build_providers(raised, client)["soniox"]
    assert soniox.max_stored_files == 5000
    assert soniox.max_stored_bytes == 50 * 1024**3
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, need_slack=False, soniox_api_key="k", soniox_max_files=0)
    assert any(p.startswith("SONIOX_MAX_FILES") for p in caught.value.problems)


def test_database_url_selects_postgresql_and_is_a_secret() -> None:
    base = {"_env_file": None, "slack_bot_token": "xoxb-1", "slack_app_token": "xapp-1"}
    base |= {"soniox_api_key": "k"}
    assert load_settings(**base).database_url is None, "SQLite unless told otherwise"
    assert load_settings(**base, database_url="").database_url is None
    url = "postgresql://bot:pw-7%40x@db.internal:5432/threadscribe"
    settings = load_settings(**base, database_url=url)
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == url
    assert "pw-7" not in repr(settings)
    assert url in settings.secret_values() and "pw-7@x" in settings.secret_values()
    in_query = "postgresql://bot@db.internal/threadscribe?password=pw-7%40x"
    assert "pw-7@x" in load_settings(**base, database_url=in_query).secret_values()
    # Without a password, it names a server, which check and the errors must show.
    bare = "postgresql://bot@db.internal:5432/threadscribe"
    assert bare not in load_settings(**base, database_url=bare).secret_values()


def test_a_database_url_that_is_not_postgresql_is_one_clear_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None,
            slack_bot_token="xoxb-1",
            slack_app_token="xapp-1",
            soniox_api_key="k",
            database_url="mysql://root:hunter2-secret@db/threadscribe",
        )
    (problem,) = caught.value.problems
    assert problem.startswith("DATABASE_URL: must be a PostgreSQL URL, postgresql://")
    assert "scheme 'mysql'" in problem and "DATABASE_PATH" in problem
    assert "hunter2" not in caught.value.render()
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None, need_slack=False, database_url="postgresql://bot:pw@db:port5432/x"
        )
    assert caught.value.problems[0].startswith("DATABASE_URL: must be a PostgreSQL URL")
    assert "pw" not in caught.value.problems[0].split("(")[1]


def test_the_confidence_threshold_is_a_share_between_0_and_1() -> None:
    def threshold(**given: str) -> float:
        return load_settings(
            _env_file=None, slack_bot_token="xoxb-1", slack_signing_secret="s", soniox_api_key="k",
            **given,
        ).confidence_threshold  # fmt: skip

    assert threshold() == 0.5
    assert threshold(confidence_threshold="0.8") == 0.8
    with pytest.raises(ConfigError) as caught:
        threshold(confidence_threshold="1.5")
    assert caught.value.problems == [
        "CONFIDENCE_THRESHOLD: Input should be less than or equal to 1"
    ]


SOCKET_MODE = {
    "_env_file": None,
    "slack_bot_token": "xoxb-1",
    "slack_app_token": "xapp-1",
    "soniox_api_key": "k",
}


def test_oauth_settings_default_to_bolts_routes_and_the_client_secret_is_a_secret() -> None:
    settings = load_settings(**SOCKET_MODE)
    assert (settings.slack_client_id, settings.slack_client_secret) == (None, None)
    assert settings.slack_redirect_uri is None and not settings.oauth_configured
    assert (settings.slack_install_path, settings.slack_redirect_path) == (
        "/slack/install",
        "/slack/oauth_redirect",
    )

    settings = load_settings(
        **SOCKET_MODE,
        slack_client_id=" 1234567890.9876543210 ",
        slack_client_secret="0123456789abcdef0123456789abcdef",
        slack_redirect_uri="https://bot.example.com/slack/oauth_redirect",
        slack_install_path="/install",
        slack_redirect_path="/install/done",
    )
    assert settings.oauth_configured
    assert settings.slack_client_id == "1234567890.9876543210"
    assert str(settings.slack_redirect_uri) == "https://bot.example.com/slack/oauth_redirect"
    assert (settings.slack_install_path, settings.slack_redirect_path) == (
        "/install",
        "/install/done",
    )
    assert "0123456789abcdef" not in repr(settings)
    assert "0123456789abcdef0123456789abcdef" in settings.secret_values()
    # With a bot token, still one workspace: the bot token chooses it.
    assert not settings.multi_workspace


def test_the_settings_choose_one_workspace_or_many() -> None:
    one = load_settings(**SOCKET_MODE)
    assert not one.multi_workspace
    many = load_settings(
        **{**SOCKET_MODE, "slack_bot_token": None},
        slack_client_id="1.2",
        slack_client_secret="s3cret-value",
    )
    assert many.multi_workspace
    # Neither: what each mode needs is named.
    with pytest.raises(ConfigError) as caught:
        load_settings(**{**SOCKET_MODE, "slack_bot_token": None})
    assert caught.value.problems == [
        "SLACK_BOT_TOKEN is required (the bot token, xoxb-…) for one workspace; for many, set "
        "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET instead"
    ]
    # Half of the OAuth pair: the other half is what is missing, not the bot token.
    with pytest.raises(ConfigError) as caught:
        load_settings(**{**SOCKET_MODE, "slack_bot_token": None}, slack_client_id="1.2")
    assert caught.value.problems == [
        "SLACK_CLIENT_SECRET is required with SLACK_CLIENT_ID (both are on the app's Basic "
        "Information page)"
    ]
    # Many workspaces over HTTP: Slack's requests are signed, so the signing secret is needed.
    with pytest.raises(ConfigError) as caught:
        load_settings(
            _env_file=None,
            soniox_api_key="k",
            slack_client_id="1.2",
            slack_client_secret="s3cret-value",
        )
    assert caught.value.problems == [
        "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
    ]


def test_each_bad_oauth_setting_is_named_with_the_other_problems() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            **SOCKET_MODE,
            slack_client_id="my-app",
            slack_client_secret="has a space",
            slack_redirect_uri="http://bot.example.com/slack/oauth_redirect",
            slack_install_path="install",
            slack_redirect_path="/healthz",
        )
    assert sorted(caught.value.problems) == [
        "SLACK_CLIENT_ID: must be the app's Client ID as its Basic Information page shows it "
        "(digits, a dot, digits)",
        "SLACK_CLIENT_SECRET: must be the app's Client Secret, without spaces",
        "SLACK_INSTALL_PATH: must be a path starting with / (no query, no spaces)",
        "SLACK_REDIRECT_PATH: /healthz is a route the app serves already; choose another path",
        "SLACK_REDIRECT_URI: must be an https URL, as Slack requires of redirect URLs",
    ]
    assert "has a space" not in caught.value.render()


def test_the_client_id_and_secret_go_together_and_the_routes_differ() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**SOCKET_MODE, slack_client_id="1.2", slack_install_path="/slack/x")
    assert caught.value.problems == [
        "SLACK_CLIENT_SECRET is required with SLACK_CLIENT_ID (both are on the app's Basic "
        "Information page)"
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings(
            **SOCKET_MODE,
            slack_client_secret="s3cret-value",
            slack_install_path="/slack/same",
            slack_redirect_path="/slack/same",
        )
    assert caught.value.problems == [
        "SLACK_CLIENT_ID is required with SLACK_CLIENT_SECRET (both are on the app's Basic "
        "Information page)",
        "SLACK_INSTALL_PATH and SLACK_REDIRECT_PATH must differ (both are /slack/same)",
    ]
    # An http redirect is fine to this machine's browser, and empty settings are unset.
    settings = load_settings(
        **SOCKET_MODE,
        slack_client_id="",
        slack_client_secret=" ",
        slack_redirect_uri="http://localhost:3000/slack/oauth_redirect",
    )
    assert not settings.oauth_configured
    assert str(settings.slack_redirect_uri) == "http://localhost:3000/slack/oauth_redirect"
