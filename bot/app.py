"""The composition root: :func:`build_runtime` is the one place that builds the bot's parts, and
:func:`running_bot` starts them with the two transports (HTTP and Socket Mode).

:func:`running_bot` is what ``python -m bot run`` uses; tests use it the same way, in-process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings

from bot.acks import AckFirst
from bot.commands import Commands
from bot.config import ConfigError, Settings
from bot.database import open_store
from bot.installations import StoreInstallations, StoreOAuthStates
from bot.intake import Intake
from bot.listeners import register_listeners
from bot.manifest import bot_scopes
from bot.providers import build_providers
from bot.providers.base import Provider
from bot.runtime import Runtime
from bot.scheduler import PollScheduler
from bot.slack_api import SlackGateway, build_web_client
from bot.slack_files import SlackFileDownloader, slack_file_hosts
from bot.uninstall import InstalledOnlyApp, Uninstalls, listen_for_uninstalls
from bot.web import build_http_app
from bot.work import Engine, EngineConfig
from bot.workspaces import DirectoryAuthorize, InstalledWorkspaces, OneWorkspace, SlackDirectory
from storage.models import Workspace
from storage.store import Store

log = logging.getLogger(__name__)


class _DropClientTokenNotice(logging.Filter):
    """Bolt reads ``SLACK_BOT_TOKEN`` from the environment on its own and then warns that our
    client's token wins; it is the same token, so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


BOLT_LOGGER = logging.getLogger("bot.slack")
BOLT_LOGGER.addFilter(_DropClientTokenNotice())


def utcnow() -> datetime:
    return datetime.now(UTC)


def build_http_client() -> httpx.AsyncClient:
    """The one HTTP client for providers and Slack file downloads."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(60.0, connect=10.0),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        follow_redirects=True,
    )


async def build_runtime(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    http: httpx.AsyncClient | None = None,
) -> Runtime:
    """Build every part of the bot, each given what it needs as it is made: the store, the HTTP
    client, the Slack gateway, the providers, the scheduler, the engine (which asks the
    scheduler for a cycle when work moved on), intake, the commands, and the Bolt app with its
    listeners."""
    problems = settings.cross_field_problems(need_provider=False)
    if problems:
        raise ConfigError(problems)
    scopes = install_scopes() if settings.multi_workspace else []
    store = await open_store(settings)
    own_http = http is None
    http = http or build_http_client()
    session = aiohttp.ClientSession()
    try:
        return _build_parts(settings, store, http, session, clock, scopes)
    except BaseException:
        # Whatever raised, the store (with SQLite's process lock) and the clients go: a start
        # that failed must not hold the database from the next one.
        await session.close()
        if own_http:
            await http.aclose()
        await store.close()
        raise


def _build_parts(
    settings: Settings,
    store: Store,
    http: httpx.AsyncClient,
    session: aiohttp.ClientSession,
    clock: Callable[[], datetime],
    scopes: list[str],
) -> Runtime:
    slack = build_directory(settings, store, session, clock)
    providers = build_providers(settings, http)
    scheduler = PollScheduler(interval_seconds=settings.poll_interval_seconds)
    engine = build_engine(settings, store, providers, slack, http, clock=clock, wake=scheduler.kick)
    intake = Intake(store, settings, clock, providers)
    commands = Commands(
        store=store,
        intake=intake,
        slack=slack,
        providers=list(providers),
        default_provider=settings.transcribe_provider.value,
        clock=clock,
        kick=scheduler.kick,
        confidence_threshold=settings.confidence_threshold,
    )
    acks = AckFirst()
    uninstalls = Uninstalls(store=store, slack=slack, clock=clock, stop_work=engine.stop_ended_work)
    bolt = build_bolt(settings, slack, store, clock, scopes, admits=uninstalls.admits)
    register_listeners(
        bolt,
        store=store,
        slack=slack,
        intake=intake,
        commands=commands,
        acks=acks,
        kick=scheduler.kick,
        clock=clock,
    )
    listen_for_uninstalls(bolt, uninstalls)
    return Runtime(
        settings=settings,
        store=store,
        http=http,
        slack=slack,
        providers=providers,
        scheduler=scheduler,
        engine=engine,
        intake=intake,
        commands=commands,
        acks=acks,
        bolt=bolt,
        clock=clock,
    )


def build_directory(
    settings: Settings,
    store: Store,
    session: aiohttp.ClientSession,
    clock: Callable[[], datetime],
) -> SlackDirectory:
    """Each workspace's gateway and token: the one bot token's, or each installation's."""
    api_url = str(settings.slack_api_url)
    if settings.slack_bot_token is not None:
        token = settings.slack_bot_token
        client = build_web_client(token.get_secret_value(), api_url, session=session)
        return OneWorkspace(SlackGateway(client), token)
    assert settings.slack_client_id is not None and settings.slack_client_secret is not None
    return InstalledWorkspaces(
        store,
        api_url=api_url,
        session=session,
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret,
        now=clock,
    )


def install_scopes() -> list[str]:
    """The bot scopes an install asks for: ``manifest.yml``'s, the app's one list of them."""
    scopes = bot_scopes()
    if scopes:
        return scopes
    raise ConfigError(
        [
            "manifest.yml (with oauth_config.scopes.bot) is needed in the working directory to "
            "install the app in workspaces: its bot scopes are what an install asks for"
        ]
    )


def build_engine(
    settings: Settings,
    store: Store,
    providers: dict[str, Provider],
    slack: SlackDirectory,
    http: httpx.AsyncClient,
    *,
    clock: Callable[[], datetime],
    wake: Callable[[], None],
) -> Engine:
    """The engine, and the downloader it fetches Slack files with."""
    downloader = SlackFileDownloader(
        http, allowed_hosts=slack_file_hosts(str(settings.slack_api_url))
    )
    config = EngineConfig(
        spool_dir=settings.spool_path,
        max_file_bytes=settings.max_file_bytes,
        max_job_age=timedelta(hours=settings.job_max_age_hours),
        poll_interval=settings.poll_interval_seconds,
        max_concurrent_transfers=settings.max_concurrent_transfers,
        retention=timedelta(days=settings.retention_days),
        progress_after=timedelta(seconds=settings.progress_after_seconds),
        confidence_threshold=settings.confidence_threshold,
        lease_for=timedelta(seconds=settings.lease_seconds),
    )
    return Engine(
        store=store,
        providers=providers,
        slack=slack,
        downloader=downloader,
        config=config,
        clock=clock,
        wake=wake,
    )


def build_bolt(
    settings: Settings,
    slack: SlackDirectory,
    store: Store,
    clock: Callable[[], datetime],
    scopes: list[str],
    *,
    admits: Callable[[Mapping[str, Any]], Awaitable[bool]],
) -> AsyncApp:
    """Bolt, answering only requests from workspaces the app is installed in (``admits``; the
    others get an empty 200). Single workspace: on the gateway's client, whose session its own calls
    (auth.test) share. Many workspaces: with the OAuth flow (the install page and the redirect,
    installations and states in our store), each request authorized with its workspace's
    current token, as the work gets it."""
    secret = settings.slack_signing_secret
    common: dict[str, Any] = {
        "signing_secret": secret.get_secret_value() if secret else None,
        "request_verification_enabled": not settings.socket_mode,
        "process_before_response": False,
        "logger": BOLT_LOGGER,
        "admits": admits,
    }
    if isinstance(slack, OneWorkspace):
        return InstalledOnlyApp(client=slack.only.client, **common)
    assert isinstance(slack, InstalledWorkspaces)
    assert settings.slack_client_id is not None and settings.slack_client_secret is not None
    api_url = str(settings.slack_api_url)
    oauth = AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=scopes,
        redirect_uri=str(settings.slack_redirect_uri) if settings.slack_redirect_uri else None,
        install_path=settings.slack_install_path,
        redirect_uri_path=settings.slack_redirect_path,
        authorization_url=authorization_url(api_url),
        installation_store=StoreInstallations(store, now=clock),
        installation_store_bot_only=True,
        state_store=StoreOAuthStates(store, now=clock),
    )
    return InstalledOnlyApp(
        # The app's own client, without a token: code exchanges go to SLACK_API_URL.
        client=slack.app.client,
        oauth_settings=oauth,
        installation_store_bot_only=True,
        # An AsyncAuthorize is taken as it is (Bolt checks its type).
        authorize=DirectoryAuthorize(slack),
        **common,
    )


def authorization_url(api_url: str) -> str:
    """Slack's authorize page, beside its Web API (``https://slack.com/oauth/v2/authorize``)."""
    return urljoin(api_url, "../oauth/v2/authorize")


@asynccontextmanager
async def running_bot(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    host: str = "0.0.0.0",
) -> AsyncIterator[Runtime]:
    """Start everything ``python -m bot run`` starts; stop it all on exit."""
    runtime = await build_runtime(settings, clock=clock)
    socket_handler: AsyncSocketModeHandler | None = None
    runner: web.AppRunner | None = None
    try:
        if isinstance(runtime.slack, OneWorkspace):
            runtime.own_workspace = await settle_own_workspace(runtime.store, runtime.slack.only)
        runner = web.AppRunner(
            build_http_app(runtime, slack_events=not settings.socket_mode),
            handle_signals=False,
            access_log=None,
        )
        await runner.setup()
        site = web.TCPSite(runner, host, settings.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            runtime.port = int(sockets[0].getsockname()[1])
        runtime.scheduler.start(
            runtime.run_cycle,
            renew=runtime.engine.renew_leases,
            renew_every=settings.lease_seconds / 3,
        )
        if settings.socket_mode:
            assert settings.slack_app_token is not None
            socket_handler = AsyncSocketModeHandler(
                runtime.bolt, settings.slack_app_token.get_secret_value()
            )
            await socket_handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("connected to Slack in Socket Mode; health on port %s", settings.port)
        else:
            log.info("serving Slack events on http://%s:%s/slack/events", host, runtime.port)
        yield runtime
    finally:
        await runtime.scheduler.shutdown()
        if socket_handler is not None:
            with suppress(Exception):
                await socket_handler.close_async()  # type: ignore[no-untyped-call]
        if runner is not None:
            await runner.cleanup()
        await runtime.aclose()


async def settle_own_workspace(store: Store, slack: SlackGateway) -> Workspace | None:
    """With one static bot token, the bot's own workspace, as Slack's ``auth.test`` names it
    (None when Slack does not answer, or names none).

    Everything recorded without a workspace (before workspaces were recorded, or while Slack
    named none) is that workspace's: its status, settings and retries keep showing it; Slack
    not answering leaves them for the next start. A token that works in a workspace the app
    was removed from was given by a new install: the removal is forgotten (nothing erased comes
    back), and the work there goes on."""
    try:
        identity = await slack.identity()
    except Exception as exc:
        log.warning("cannot ask Slack which workspace this is; adopting later: %r", exc)
        return None
    if identity.team_id is None:
        return None
    own = Workspace(identity.team_id, identity.enterprise_id)
    if await store.forget_removal(own):
        log.info("installed again in %s since its removal: its work starts clean", own.team_id)
    adopted = await store.adopt_unowned(own)
    if adopted:
        log.info(
            "%d row(s) recorded before workspaces were kept are now %s's", adopted, identity.team_id
        )
    return own


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    keep_start_up_objects_out_of_collections()
    async with running_bot(settings):
        await stop.wait()
        log.info("shutting down")


def keep_start_up_objects_out_of_collections() -> None:
    """What start-up built (modules, the libraries' tables, the settings) lives as long as the
    process: moved out of the garbage collector's view, the full collections that a poll cycle
    over thousands of jobs sets off no longer walk it each time."""
    gc.collect()
    gc.freeze()
