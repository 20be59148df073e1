"""The composition root: :func:`build_runtime` is the one place that builds the bot's parts, and
:func:`running_bot` starts them with the two transports (HTTP and Socket Mode).

:func:`running_bot` is what ``python -m bot run`` uses; tests use it the same way, in-process.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
from aiohttp import web
from pydantic import SecretStr
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp

from bot.acks import AckFirst
from bot.commands import Commands
from bot.config import ConfigError, Settings
from bot.database import open_store
from bot.intake import Intake
from bot.listeners import register_listeners
from bot.providers import build_providers
from bot.providers.base import Provider
from bot.runtime import Runtime
from bot.scheduler import PollScheduler
from bot.slack_api import SlackGateway, build_web_client
from bot.slack_files import SlackFileDownloader, slack_file_hosts
from bot.web import build_http_app
from bot.work import Engine, EngineConfig
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
    bot_token = settings.slack_bot_token
    if bot_token is None:
        raise ConfigError(["SLACK_BOT_TOKEN is required (the bot token, xoxb-…)"])
    store = await open_store(settings)
    own_http = http is None
    http = http or build_http_client()
    session = aiohttp.ClientSession()
    try:
        return _build_parts(settings, store, http, session, bot_token, clock)
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
    bot_token: SecretStr,
    clock: Callable[[], datetime],
) -> Runtime:
    web_client = build_web_client(
        bot_token.get_secret_value(), str(settings.slack_api_url), session=session
    )
    slack = SlackGateway(web_client)
    providers = build_providers(settings, http)
    scheduler = PollScheduler(interval_seconds=settings.poll_interval_seconds)
    engine = build_engine(
        settings, store, providers, slack, http, bot_token, clock=clock, wake=scheduler.kick
    )
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
    bolt = build_bolt(settings, slack)
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


def build_engine(
    settings: Settings,
    store: Store,
    providers: dict[str, Provider],
    slack: SlackGateway,
    http: httpx.AsyncClient,
    bot_token: SecretStr,
    *,
    clock: Callable[[], datetime],
    wake: Callable[[], None],
) -> Engine:
    """The engine, and the downloader it fetches Slack files with."""
    downloader = SlackFileDownloader(
        http, bot_token=bot_token, allowed_hosts=slack_file_hosts(str(settings.slack_api_url))
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


def build_bolt(settings: Settings, slack: SlackGateway) -> AsyncApp:
    """Bolt, on the gateway's client: its own calls (auth.test) share the gateway's session."""
    secret = settings.slack_signing_secret
    return AsyncApp(
        client=slack.client,
        signing_secret=secret.get_secret_value() if secret else None,
        request_verification_enabled=not settings.socket_mode,
        process_before_response=False,
        logger=BOLT_LOGGER,
    )


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
        await adopt_unowned_work(runtime.store, runtime.slack)
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


async def adopt_unowned_work(store: Store, slack: SlackGateway) -> int:
    """With one static bot token, everything recorded without a workspace (before workspaces
    were recorded, or while Slack named none) is the bot's own workspace's, as Slack's
    ``auth.test`` names it: its status, settings and retries keep showing it. Returns how many
    rows were adopted; Slack not answering leaves them for the next start."""
    try:
        identity = await slack.identity()
    except Exception as exc:
        log.warning("cannot ask Slack which workspace this is; adopting later: %r", exc)
        return 0
    if identity.team_id is None:
        return 0
    adopted = await store.adopt_unowned(Workspace(identity.team_id, identity.enterprise_id))
    if adopted:
        log.info(
            "%d row(s) recorded before workspaces were kept are now %s's", adopted, identity.team_id
        )
    return adopted


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
