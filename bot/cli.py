"""``threadscribe`` / ``python -m bot``: run the bot, transcribe one file, check the settings."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from slack_sdk.errors import SlackApiError

from bot.app import build_http_client, serve
from bot.config import ConfigError, ProviderName, Settings, load_settings
from bot.errors import TranscribeError
from bot.logs import configure_logging
from bot.media import link_filename
from bot.providers import build_providers
from bot.providers.base import Progress, Provider, ProviderJob, Submitted, Uploaded
from bot.slack_api import build_web_client, slack_error_code
from bot.transcript import to_plain_text


def _secrets(settings: Settings) -> list[str]:
    values = [
        settings.slack_bot_token,
        settings.slack_app_token,
        settings.slack_signing_secret,
        settings.soniox_api_key,
        settings.soket_api_token,
    ]
    return [value.get_secret_value() for value in values if value is not None]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadscribe", description="Transcribe audio shared in Slack, in its thread."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the bot (Socket Mode if SLACK_APP_TOKEN is set)")
    transcribe = commands.add_parser("transcribe", help="transcribe one file or URL and print it")
    transcribe.add_argument("source", metavar="PATH_OR_URL")
    transcribe.add_argument(
        "--provider", choices=[name.value for name in ProviderName], default=None
    )
    commands.add_parser("check", help="validate the configuration and the credentials")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(need_slack=args.command != "transcribe")
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    configure_logging(settings.log_level, _secrets(settings))
    if args.command == "run":
        asyncio.run(serve(settings))
        return 0
    if args.command == "transcribe":
        return asyncio.run(transcribe(settings, args.source, args.provider))
    return asyncio.run(check(settings))


# -- transcribe ---------------------------------------------------------------------------------


async def transcribe(settings: Settings, source: str, provider_name: str | None) -> int:
    name = provider_name or settings.transcribe_provider.value
    async with build_http_client() as http:
        provider = build_providers(settings, http).get(name)
        if provider is None:
            print(f"The {name} provider has no credentials configured.", file=sys.stderr)
            return 2
        is_url = source.startswith(("http://", "https://"))
        path = Path(source)
        if not is_url and not path.is_file():
            print(f"No such file: {source}", file=sys.stderr)
            return 2
        job = ProviderJob(
            job_id=f"cli-{uuid.uuid4().hex[:12]}",
            filename=link_filename(source) if is_url else path.name,
            spool_path=None if is_url else path,
            url=source if is_url else None,
            size_bytes=None if is_url else path.stat().st_size,
        )
        try:
            progress = await _run_one(provider, job, settings.poll_interval_seconds)
        except TranscribeError as exc:
            print(f"Failed: {exc.user_message}\n({exc.detail})", file=sys.stderr)
            return 1
        finally:
            await _quiet_clean_up(provider, job)
    if progress.transcript is None:
        message = progress.error.user_message if progress.error else "no transcript"
        print(f"Failed: {message}", file=sys.stderr)
        return 1
    print(to_plain_text(progress.transcript) or "(no speech found)")
    return 0


async def _run_one(provider: Provider, job: ProviderJob, interval: float) -> Progress:
    """Walk one job through the provider's steps, as the pipeline does for a group of one."""
    if job.spool_path is not None:
        print(f"Uploading {job.filename} ({job.size_bytes:,} bytes)…", file=sys.stderr)
        uploaded = (await provider.upload([job]))[job.job_id]
        if not isinstance(uploaded, Uploaded):
            raise uploaded
        job.file_id, job.upload_id = uploaded.file_id, uploaded.upload_id
        while True:
            ready = (await provider.uploads_ready([job]))[job.job_id]
            if not isinstance(ready, bool):
                raise ready
            if ready:
                break
            await asyncio.sleep(interval)
    submitted = (await provider.submit([job]))[job.job_id]
    if not isinstance(submitted, Submitted):
        raise submitted
    job.remote_id = submitted.remote_id
    job.file_id = submitted.file_id or job.file_id
    print("Transcribing…", file=sys.stderr)
    while True:
        await asyncio.sleep(interval)
        progress = (await provider.poll([job]))[job.job_id]
        if progress.status.is_terminal:
            return progress


async def _quiet_clean_up(provider: Provider, job: ProviderJob) -> None:
    try:
        await provider.clean_up([job])
    except TranscribeError as exc:
        logging.getLogger(__name__).warning("could not clean up at the provider: %s", exc.detail)


# -- check --------------------------------------------------------------------------------------


async def check(settings: Settings) -> int:
    problems: list[str] = []
    assert settings.slack_bot_token is not None
    client = build_web_client(
        settings.slack_bot_token.get_secret_value(), str(settings.slack_api_url)
    )
    try:
        auth = await client.auth_test()
        print(f"Slack: OK, signed in as {auth.get('user')} in {auth.get('team')}")
    except SlackApiError as exc:
        problems.append(
            f"Slack rejected SLACK_BOT_TOKEN ({slack_error_code(exc)}): reinstall the app and "
            "copy the Bot User OAuth Token"
        )
    except Exception as exc:
        problems.append(f"Slack could not be reached at {settings.slack_api_url}: {exc}")
    async with build_http_client() as http:
        for name, provider in build_providers(settings, http).items():
            try:
                await provider.check_credentials()
                print(f"{name}: OK")
            except TranscribeError as exc:
                problems.append(f"{name}: {exc.user_message} ({exc.detail})")
    print(f"Mode: {'Socket Mode' if settings.socket_mode else f'HTTP on port {settings.port}'}")
    if problems:
        print("Problems:", *[f"  - {problem}" for problem in problems], sep="\n", file=sys.stderr)
        return 1
    print("All checks passed.")
    return 0
