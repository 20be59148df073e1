"""``threadscribe`` / ``python -m bot``: run the bot, transcribe one file, check the settings,
migrate the database or copy it to PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import httpx
from slack_sdk.errors import SlackApiError

from bot import database
from bot.app import build_http_client, serve
from bot.config import ConfigError, Settings, load_settings
from bot.errors import TranscribeError
from bot.health import account_problem_text
from bot.limits import FileLimits
from bot.logs import configure_logging, redacted_output
from bot.manifest import DEFAULT_MANIFESTS, manifest_bot_scopes
from bot.media import link_filename
from bot.providers import build_providers, registry
from bot.providers.base import Progress, Provider, ProviderJob, Submitted, Uploaded
from bot.slack_api import SlackGateway, build_web_client, slack_error_code
from bot.transcript import to_plain_text
from storage.models import SlackInstallation
from storage.moving import CopyUnverified
from storage.postgres.urls import EXAMPLE, shown_url, url_problem, url_secrets
from storage.store import SchemaTooOld, StorageError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threadscribe", description="Transcribe audio shared in Slack, in its thread."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the bot (Socket Mode if SLACK_APP_TOKEN is set)")
    transcribe = commands.add_parser("transcribe", help="transcribe one file or URL and print it")
    transcribe.add_argument("source", metavar="PATH_OR_URL")
    transcribe.add_argument("--provider", choices=registry.names(), default=None)
    check_command = commands.add_parser(
        "check", help="validate the configuration and the credentials"
    )
    check_command.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="the app manifest whose scopes the token must have (default: ./manifest.yml, "
        "then the one in the checkout threadscribe runs from)",
    )
    commands.add_parser("migrate", help="apply the database migrations, once, and exit")
    copy = commands.add_parser(
        "copy-db",
        help="copy the SQLite database (DATABASE_PATH), work in flight included, to PostgreSQL; "
        "the bot must be stopped",
    )
    copy.add_argument("--to", required=True, metavar="URL", help=f"the target, {EXAMPLE}")
    copy.add_argument(
        "--replace",
        action="store_true",
        help="delete what the target holds before copying (by default a target holding rows "
        "is refused)",
    )
    return parser


#: The commands that never talk to Slack, and so need no Slack settings; and those that never
#: call a provider either.
WITHOUT_SLACK = frozenset({"transcribe", "migrate", "copy-db"})
WITHOUT_PROVIDER = frozenset({"migrate", "copy-db"})


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(
            need_slack=args.command not in WITHOUT_SLACK,
            need_provider=args.command not in WITHOUT_PROVIDER,
        )
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    secrets = settings.secret_values()
    if args.command == "copy-db":
        passwords = url_secrets(args.to)
        secrets += [args.to, *passwords] if passwords else []
    configure_logging(settings.log_level, secrets, settings.log_format)
    # What the commands print is masked as the logs are: it may quote a driver's message.
    with redacted_output(secrets):
        return _run_command(args, settings)


def _run_command(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "run":
        return run(settings)
    if args.command == "transcribe":
        return asyncio.run(transcribe(settings, args.source, args.provider))
    if args.command == "migrate":
        return asyncio.run(migrate(settings))
    if args.command == "copy-db":
        return asyncio.run(copy_db(settings, args.to, replace=args.replace))
    return asyncio.run(check(settings, manifest=args.manifest))


def run(settings: Settings) -> int:
    try:
        asyncio.run(serve(settings))
    except StorageError as exc:
        # Raised at start only: once running, the bot retries what the database refuses.
        print(f"threadscribe cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


# -- the database -------------------------------------------------------------------------------


async def migrate(settings: Settings) -> int:
    try:
        print(await database.migrate(settings))
    except StorageError as exc:
        print(f"Cannot migrate {database.describe(settings)}: {exc}", file=sys.stderr)
        return 1
    return 0


async def copy_db(settings: Settings, target_url: str, *, replace: bool) -> int:
    """Copy the SQLite database to PostgreSQL, then compare the rows of each table."""
    if settings.database_url is not None:
        print(
            "copy-db copies the SQLite database at DATABASE_PATH, and DATABASE_URL is set: "
            "unset it while copying, and set it once the copy is made",
            file=sys.stderr,
        )
        return 2
    problem = url_problem(target_url)
    if problem is not None:
        print(f"--to {problem}", file=sys.stderr)
        return 2
    target = shown_url(target_url)
    try:
        report = await database.copy_database(settings, target_url, replace=replace)
    except CopyUnverified as exc:
        print(f"Copied to {target}, but {exc}: compare the tables by hand", file=sys.stderr)
        return 1
    except StorageError as exc:
        print(f"Nothing copied: {exc}", file=sys.stderr)
        return 1
    for table, count in report.source.items():
        copied = report.target.get(table, 0)
        print(f"  {table}: {count} in SQLite, {copied} in PostgreSQL")
    if not report.complete:
        print(f"The copy in {target} does not match the SQLite database.", file=sys.stderr)
        return 1
    print(
        f"Copied {database.describe(settings)} to PostgreSQL at {target}. Start the bot with "
        "DATABASE_URL set to that URL; keep the SQLite file until it runs well."
    )
    return 0


# -- transcribe ---------------------------------------------------------------------------------


async def transcribe(settings: Settings, source: str, provider_name: str | None) -> int:
    name = provider_name or settings.transcribe_provider.value
    async with build_http_client() as http:
        http.event_hooks["request"].append(UploadProgress.hook(sys.stderr))
        provider = build_providers(settings, http).get(name)
        if provider is None:
            print(f"The {name} provider has no credentials configured.", file=sys.stderr)
            return 2
        is_url = source.startswith(("http://", "https://"))
        path = Path(source)
        if not is_url and not path.is_file():
            print(f"No such file: {source}", file=sys.stderr)
            return 2
        if not is_url:
            limits = FileLimits.of(settings.max_file_bytes, provider)
            refusal = limits.refusal(size_bytes=path.stat().st_size, duration_ms=None)
            if refusal is not None:
                print(f"Refused: {refusal}", file=sys.stderr)
                return 1
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


class UploadProgress(httpx.AsyncByteStream):
    """A request body that reports how much of it has been sent.

    The provider opens the file itself and hands it to httpx, so the progress is taken where the
    bytes leave: the request stream, wrapped by a request hook. It counts the multipart envelope
    too, a few hundred bytes on top of the file.
    """

    #: Smaller bodies go up in a blink; a percentage would only be noise.
    MIN_BYTES = 1024 * 1024

    def __init__(self, inner: httpx.AsyncByteStream, total: int, out: TextIO) -> None:
        self._inner = inner
        self._total = total
        self._out = out
        self._sent = 0
        self._shown = -1
        # On a terminal one line is redrawn; in a log (CI, a pipe) a line every 10 % is enough.
        self._step = 1 if out.isatty() else 10

    @classmethod
    def hook(cls, out: TextIO) -> Callable[[httpx.Request], Awaitable[None]]:
        """A request hook for an ``httpx.AsyncClient`` that reports large uploads to ``out``."""

        async def wrap(request: httpx.Request) -> None:
            total = int(request.headers.get("content-length") or 0)
            if (
                request.method in ("POST", "PUT")
                and total >= cls.MIN_BYTES
                and isinstance(request.stream, httpx.AsyncByteStream)
            ):
                request.stream = cls(request.stream, total, out)

        return wrap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._sent, self._shown = 0, -1  # a retried request starts over
        async for chunk in self._inner:
            self._sent += len(chunk)
            self._show()
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _show(self) -> None:
        percent = min(100, self._sent * 100 // self._total)
        if percent == self._shown or (percent < 100 and percent < self._shown + self._step):
            return
        self._shown = percent
        mb = 1024 * 1024
        text = f"  uploaded {percent:3d}% ({self._sent / mb:,.1f} of {self._total / mb:,.1f} MB)"
        if self._step == 1:
            self._out.write("\r" + text + ("\n" if percent == 100 else ""))
        else:
            self._out.write(text + "\n")
        self._out.flush()


# -- check --------------------------------------------------------------------------------------


async def check(settings: Settings, *, manifest: Path | None = None) -> int:
    """Try every credential and the database once; print what works and what to fix."""
    problems: list[str] = []
    if settings.multi_workspace:
        slack = SlackGateway(build_web_client(None, str(settings.slack_api_url)))
        problems += _check_oauth(settings, manifest)
    else:
        assert settings.slack_bot_token is not None
        slack = SlackGateway(
            build_web_client(
                settings.slack_bot_token.get_secret_value(), str(settings.slack_api_url)
            )
        )
        problems += await _check_bot_token(settings, slack, manifest)
    if settings.slack_app_token is not None:
        problems += await _check_app_token(settings, slack)
    async with build_http_client() as http:
        for name, provider in build_providers(settings, http).items():
            try:
                await provider.check_credentials()
                print(f"{name}: OK")
            except TranscribeError as exc:
                problems.append(f"{name}: {exc.user_message} ({exc.detail})")
    problems += await _check_database(settings)
    transport = "Socket Mode" if settings.socket_mode else f"HTTP on port {settings.port}"
    workspaces = "many workspaces (OAuth)" if settings.multi_workspace else "one workspace"
    print(f"Mode: {transport}, {workspaces}")
    if problems:
        print("Problems:", *[f"  - {problem}" for problem in problems], sep="\n", file=sys.stderr)
        return 1
    print("All checks passed.")
    return 0


async def _check_bot_token(
    settings: Settings, slack: SlackGateway, manifest: Path | None
) -> list[str]:
    """One workspace: sign in with the bot token, and compare its scopes with the manifest's."""
    try:
        identity = await slack.identity()
        print(f"Slack: OK, signed in as {identity.user} in {identity.team}")
        return _check_scopes(identity.scopes, manifest)
    except SlackApiError as exc:
        return [
            f"Slack rejected SLACK_BOT_TOKEN ({slack_error_code(exc)}): reinstall the app and "
            "copy the Bot User OAuth Token"
        ]
    except Exception as exc:
        return [f"Slack could not be reached at {settings.slack_api_url}: {exc}"]


def _check_oauth(settings: Settings, manifest: Path | None) -> list[str]:
    """Many workspaces: no bot token to sign in with. The settings' shapes were checked on
    loading (the Client ID's, the signing secret or app token); what an install needs besides is
    the manifest's scopes, and a redirect URL Slack lists."""
    print(f"Slack: installs through OAuth with Client ID {settings.slack_client_id}")
    path = manifest or next((p for p in DEFAULT_MANIFESTS if p.is_file()), None)
    scopes = manifest_bot_scopes(path.read_text(encoding="utf-8")) if path else None
    problems = []
    if not scopes:
        problems.append(
            "manifest.yml with oauth_config.scopes.bot is needed: its bot scopes are what an "
            "install asks for"
        )
    else:
        print(f"Slack scopes: an install asks for the {len(scopes)} bot scopes of {path}")
    install, redirect = settings.slack_install_path, settings.slack_redirect_path
    if settings.slack_redirect_uri is None:
        print(
            f"OAuth: install page on port {settings.port} at {install}; Slack sends people back "
            f"to the app's only redirect URL, which must end in {redirect}"
        )
    else:
        print(
            f"OAuth: install page on port {settings.port} at {install}; redirect URL "
            f"{settings.slack_redirect_uri} (list it under OAuth & Permissions -> Redirect URLs)"
        )
        if not str(settings.slack_redirect_uri).rstrip("/").endswith(redirect.rstrip("/")):
            problems.append(
                f"SLACK_REDIRECT_URI does not end in SLACK_REDIRECT_PATH ({redirect}): Slack "
                "would send people back to a route the app does not serve"
            )
    return problems


async def _check_app_token(settings: Settings, slack: SlackGateway) -> list[str]:
    """Socket Mode needs the app-level token: ask for a connection URL, which opens nothing."""
    assert settings.slack_app_token is not None
    try:
        await slack.check_app_token(settings.slack_app_token.get_secret_value())
    except SlackApiError as exc:
        return [
            f"Slack rejected SLACK_APP_TOKEN ({slack_error_code(exc)}): under Basic Information "
            "-> App-Level Tokens, generate a token with the connections:write scope, and turn "
            "Socket Mode on"
        ]
    except Exception as exc:
        return [f"Slack could not be reached at {settings.slack_api_url}: {exc}"]
    print("Slack Socket Mode: OK, the app-level token opens connections")
    return []


async def _check_database(settings: Settings) -> list[str]:
    """Open the database (creating an empty SQLite file, as ``run`` would), and read the
    provider account problems the bot recorded there. The schema is never changed: a pending
    migration is reported, and left to ``run`` or ``migrate``."""
    where = database.describe(settings)
    try:
        opened = await database.open_beside_the_bot(settings)
        try:
            await opened.store.ping()
            # Recorded by the running bot: a used-up balance shows only when paid work is asked
            # for, which a check must not do.
            accounts = await opened.store.account_problems()
            installations = await opened.store.installations() if settings.multi_workspace else None
        finally:
            await opened.store.close()
    except database.MigrationPending as exc:
        print(f"Database: OK ({where}); {exc} (or `python -m bot migrate`)")
        return []
    except SchemaTooOld as exc:
        return [f"{exc}; the running bot is older than this threadscribe"]
    except Exception as exc:
        fix = (
            "check DATABASE_URL, that the server is up and that this user may connect"
            if settings.database_url is not None
            else "check DATABASE_PATH and that its directory is writable by this user"
        )
        return [f"the database ({where}) cannot be opened ({type(exc).__name__}: {exc}); {fix}"]
    note = f", {opened.note}" if opened.note else ""
    print(f"Database: OK ({where}{note})")
    problems = [account_problem_text(account) for account in accounts]
    if installations is not None:
        problems += _check_installations(installations, datetime.now(UTC))
    return problems


def _check_installations(installations: Sequence[SlackInstallation], now: datetime) -> list[str]:
    """Many workspaces: the installations whose bot cannot act any more (its token revoked, or
    expired with nothing to refresh it). Their work waits, and nothing is posted there, until
    the app is installed again. No token is ever shown."""
    problems = []
    for found in installations:
        where = _installation_named(found)
        expires = found.bot_token_expires_at
        if found.bot_token is None:
            problems.append(
                f"Slack: the bot token of {where} was revoked: its work waits until someone "
                "there installs the app again"
            )
        elif expires is not None and expires <= now and found.bot_refresh_token is None:
            problems.append(
                f"Slack: the bot token of {where} expired at "
                f"{expires.isoformat(timespec='seconds')} with no refresh token to renew it: its "
                "work waits until someone there installs the app again"
            )
    usable = len(installations) - len(problems)
    print(f"Slack installations: {len(installations)}, {usable} with a usable bot token")
    return problems


def _installation_named(found: SlackInstallation) -> str:
    key = found.key
    if key.is_enterprise_install:
        name = f" ({found.enterprise_name})" if found.enterprise_name else ""
        return f"organisation {key.enterprise_id}{name}"
    name = f" ({found.team_name})" if found.team_name else ""
    return f"workspace {key.team_id}{name}"


# -- scopes -------------------------------------------------------------------------------------


def _check_scopes(granted: set[str] | None, manifest: Path | None) -> list[str]:
    """Compare the granted scopes with the manifest's bot scopes; a missing one is a problem."""
    path = manifest or next((p for p in DEFAULT_MANIFESTS if p.is_file()), None)
    if granted is None:
        print("Slack scopes: Slack did not say which scopes the token has; not compared")
        return []
    if path is None or not path.is_file():
        where = f"{manifest} does not exist" if manifest else "no manifest.yml found"
        print(f"Slack scopes: {', '.join(sorted(granted))} ({where}; not compared)")
        return [f"{manifest} does not exist"] if manifest else []
    declared = manifest_bot_scopes(path.read_text(encoding="utf-8"))
    if declared is None:
        return [f"{path} has no oauth_config.scopes.bot list to compare the token's scopes with"]
    missing = [scope for scope in declared if scope not in granted]
    extra = sorted(granted - set(declared))
    if not missing:
        print(f"Slack scopes: OK, all {len(declared)} scopes of {path.name} are granted")
    if extra:
        print(f"Slack scopes granted but not in {path.name} (not needed): {', '.join(extra)}")
    return [
        f"Slack scope {scope} is missing: add it in OAuth & Permissions -> Bot Token Scopes "
        "(or update the app from manifest.yml) and reinstall the app to the workspace"
        for scope in missing
    ]
