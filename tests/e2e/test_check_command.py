"""``python -m bot check`` (and ``transcribe``'s upload progress) run as an operator runs them: a
separate process configured by its environment, against the loopback fakes in this event loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.cli import manifest_bot_scopes
from bot.config import load_settings
from bot.database import open_store
from storage.models import SlackInstallation, WorkspaceKey
from tests.bot_process import PROJECT_ROOT, clean_environment, run_cli
from tests.fakes.slack import FakeSlack
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox

MANIFEST = """\
display_information:
  name: threadscribe   # the name people see
oauth_config:
  scopes:
    bot:
      - channels:history
      - files:read
      - "chat:write"
      - reactions:write
settings:
  socket_mode_enabled: true
"""


def environment(
    slack: FakeSlack, soniox: FakeSoniox, soket: FakeSoket, workdir: Path, **values: str
) -> dict[str, str]:
    """The fakes' settings and nothing left over from the test runner's environment."""
    env = clean_environment()
    env.update(
        {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_API_URL": slack.api_url,
            "SONIOX_API_KEY": soniox.api_key,
            "SONIOX_API_URL": soniox.api_url,
            "SOKET_API_TOKEN": soket.token,
            "SOKET_API_URL": soket.api_url,
            "DATABASE_PATH": str(workdir / "data" / "threadscribe.db"),
        }
    )
    env.update(values)
    return env


async def test_check_passes_against_working_credentials(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    (tmp_path / "manifest.yml").write_text(MANIFEST)  # found in the working directory
    env = environment(fake_slack, fake_soniox, fake_soket, tmp_path)

    code, out, err = await run_cli("check", env=env, cwd=tmp_path)

    assert code == 0, err
    assert "Slack: OK" in out
    assert "Slack scopes: OK, all 4 scopes of manifest.yml are granted" in out
    assert "soniox: OK" in out and "soket: OK" in out
    assert "Database: OK" in out
    assert out.rstrip().endswith("All checks passed.")
    assert (tmp_path / "data" / "threadscribe.db").is_file()
    for secret in (fake_slack.bot_token, fake_soniox.api_key, fake_soket.token):
        assert secret not in out + err


async def test_check_names_a_missing_scope_and_how_to_fix_it(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    manifest = tmp_path / "app-manifest.yml"
    manifest.write_text(MANIFEST)
    fake_slack.scopes.remove("reactions:write")
    env = environment(fake_slack, fake_soniox, fake_soket, tmp_path)

    code, out, err = await run_cli("check", "--manifest", str(manifest), env=env, cwd=tmp_path)

    assert code == 1
    assert "Slack: OK" in out
    assert "Slack scope reactions:write is missing" in err
    assert "OAuth & Permissions" in err and "reinstall" in err
    assert "chat:write" not in err, "only the missing scope is named"


async def test_check_reports_a_wrong_soniox_key(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    (tmp_path / "manifest.yml").write_text(MANIFEST)
    env = environment(fake_slack, fake_soniox, fake_soket, tmp_path, SONIOX_API_KEY="not-the-key")

    code, out, err = await run_cli("check", env=env, cwd=tmp_path)

    assert code == 1
    assert "soket: OK" in out
    assert "soniox:" in err and "API key" in err
    assert "Slack scope" not in err
    assert "not-the-key" not in out + err


async def test_check_reports_a_rejected_bot_token_and_app_token(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    env = environment(
        fake_slack,
        fake_soniox,
        fake_soket,
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-revoked-token",
        SLACK_APP_TOKEN="xapp-1-wrong",
    )

    code, out, err = await run_cli("check", env=env, cwd=tmp_path)

    assert code == 1
    assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in err
    assert "Slack rejected SLACK_APP_TOKEN (invalid_auth)" in err
    assert "connections:write" in err
    assert "Mode: Socket Mode" in out


async def test_transcribe_shows_upload_progress_for_a_large_file(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    audio = tmp_path / "town-hall.wav"
    audio.write_bytes(b"RIFF" + bytes(3 * 1024 * 1024))
    env = environment(fake_slack, fake_soniox, fake_soket, tmp_path, POLL_INTERVAL_SECONDS="0.05")

    code, out, err = await run_cli("transcribe", str(audio), env=env, cwd=tmp_path)

    assert code == 0, err
    assert "Hello from town-hall.wav." in out
    progress = [line for line in err.splitlines() if "uploaded" in line]
    assert progress[-1].strip().startswith("uploaded 100%")
    assert 2 <= len(progress) <= 11, "a line every 10 % when stderr is not a terminal"


def test_manifest_reader_handles_the_shapes_manifests_use() -> None:
    assert manifest_bot_scopes(MANIFEST) == [
        "channels:history",
        "files:read",
        "chat:write",
        "reactions:write",
    ]
    flow = "oauth_config:\n  scopes:\n    user: [x]\n    bot: ['chat:write', files:read]\n"
    assert manifest_bot_scopes(flow) == ["chat:write", "files:read"]
    unindented = (
        "oauth_config:\n  scopes:\n    bot:\n    - chat:write  # posts\n    user:\n    - x\n"
    )
    assert manifest_bot_scopes(unindented) == ["chat:write"]
    assert manifest_bot_scopes("display_information:\n  name: x\n") is None
    shipped = manifest_bot_scopes((PROJECT_ROOT / "manifest.yml").read_text())
    assert shipped is not None and "files:read" in shipped


async def test_check_and_run_refuse_a_public_url_that_makes_too_long_a_webhook_url(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    public_url = "https://bot.example.com/" + "x" * 230
    env = environment(fake_slack, fake_soniox, fake_soket, tmp_path, PUBLIC_URL=public_url)

    for command in ("check", "run"):
        code, out, err = await run_cli(command, env=env, cwd=tmp_path)

        assert code == 2, (command, out, err)
        assert "threadscribe cannot start; fix these settings:" in err
        assert "PUBLIC_URL is too long" in err and "at most 256 characters" in err
    assert fake_soniox.requests == [], "nothing reached Soniox"


async def test_check_in_the_multi_workspace_mode_explains_the_install(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    (tmp_path / "manifest.yml").write_text(MANIFEST)
    env = environment(
        fake_slack,
        fake_soniox,
        fake_soket,
        tmp_path,
        SLACK_CLIENT_ID=fake_slack.client_id,
        SLACK_CLIENT_SECRET=fake_slack.client_secret,
        SLACK_REDIRECT_URI="https://bot.example.com/slack/elsewhere",
    )
    del env["SLACK_BOT_TOKEN"]

    code, out, err = await run_cli("check", env=env, cwd=tmp_path)

    assert code == 1
    assert fake_slack.api_calls("auth.test") == [], "no bot token to sign in with"
    assert f"installs through OAuth with Client ID {fake_slack.client_id}" in out
    assert "an install asks for the 4 bot scopes" in out
    assert "many workspaces (OAuth)" in out
    assert "SLACK_REDIRECT_URI does not end in SLACK_REDIRECT_PATH (/slack/oauth_redirect)" in err
    assert "Database: OK" in out
    assert fake_slack.client_secret not in out + err


async def test_check_in_the_multi_workspace_mode_names_installations_the_bot_cannot_act_in(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, fake_soket: FakeSoket
) -> None:
    (tmp_path / "manifest.yml").write_text(MANIFEST)
    env = environment(
        fake_slack,
        fake_soniox,
        fake_soket,
        tmp_path,
        SLACK_CLIENT_ID=fake_slack.client_id,
        SLACK_CLIENT_SECRET=fake_slack.client_secret,
    )
    del env["SLACK_BOT_TOKEN"]
    now = datetime.now(UTC)
    store = await open_store(
        load_settings(
            _env_file=None,
            slack_bot_token=None,
            slack_signing_secret=fake_slack.signing_secret,
            slack_client_id=fake_slack.client_id,
            slack_client_secret=fake_slack.client_secret,
            soniox_api_key=fake_soniox.api_key,
            database_path=tmp_path / "data" / "threadscribe.db",
            database_url="",
        )
    )
    secrets = ["xoxb-works-fine", "xoxe.xoxb-expired", "xoxe.xoxb-refreshable", "xoxe-1-refresh"]
    try:
        for team, token, refresh, expires in (
            ("T0FINE", secrets[0], None, None),
            ("T0GONE", "xoxb-revoked-soon", None, None),
            ("T0STALE", secrets[1], None, now - timedelta(hours=1)),
            ("T0ROTATES", secrets[2], secrets[3], now - timedelta(hours=1)),
        ):
            await store.save_installation(
                SlackInstallation(
                    key=WorkspaceKey(None, team),
                    bot_token=token,
                    bot_user_id="U0BOT",
                    bot_id="B0BOT",
                    bot_scopes=("chat:write",),
                    installer_user_id="U0ALICE",
                    installed_at=now - timedelta(days=1),
                    bot_refresh_token=refresh,
                    bot_token_expires_at=expires,
                    team_name=f"Team {team}",
                ),
                now,
            )
        await store.delete_bot(WorkspaceKey(None, "T0GONE"), now)
    finally:
        await store.close()

    code, out, err = await run_cli("check", env=env, cwd=tmp_path)

    assert code == 1
    assert "Slack installations: 4, 2 with a usable bot token" in out
    assert "the bot token of workspace T0GONE (Team T0GONE) was revoked" in err
    assert "the bot token of workspace T0STALE (Team T0STALE) expired at" in err
    assert "T0FINE" not in err and "T0ROTATES" not in err
    for secret in secrets:
        assert secret not in out + err
