"""The running bot: everything built once at start-up, the Slack listeners, and the two transports.

:func:`running_bot` is what ``python -m bot run`` uses; tests use it the same way, in-process.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot import metrics
from bot.acks import AckFirst
from bot.config import ConfigError, Settings
from bot.database import open_store
from bot.intake import Intake
from bot.listeners import register_listeners
from bot.pipeline import Pipeline
from bot.providers import build_providers
from bot.providers.base import Provider
from bot.providers.registry import specs
from bot.providers.spec import WebhookRoute, WebhookTarget
from bot.scheduler import PollScheduler
from bot.slack_api import SlackGateway, build_web_client
from bot.slack_files import SlackFileDownloader, slack_file_hosts
from storage.models import ProviderAccountProblem
from storage.store import Store

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Slack's payloads are small; anything bigger is not from Slack.
MAX_REQUEST_BYTES = 1024 * 1024


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


@dataclass
class Runtime:
    settings: Settings
    store: Store
    http: httpx.AsyncClient
    slack: SlackGateway
    providers: dict[str, Provider]
    intake: Intake
    pipeline: Pipeline
    scheduler: PollScheduler
    bolt: AsyncApp
    clock: Callable[[], datetime]
    acks: AckFirst
    #: The port the HTTP server listens on (useful when ``PORT=0`` picks a free one).
    port: int = 0

    async def aclose(self) -> None:
        """Close what :func:`build_runtime` opened: transfers, HTTP clients, the database."""
        await self.pipeline.stop()
        await self.http.aclose()
        if self.slack.client.session is not None:
            await self.slack.client.session.close()
        await self.store.close()


async def build_runtime(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utcnow,
    http: httpx.AsyncClient | None = None,
) -> Runtime:
    bot_token = settings.slack_bot_token
    if bot_token is None:
        raise ConfigError(["SLACK_BOT_TOKEN is required (the bot token, xoxb-…)"])
    store = await open_store(settings)
    http = http or build_http_client()
    web_client = build_web_client(
        bot_token.get_secret_value(), str(settings.slack_api_url), session=aiohttp.ClientSession()
    )
    slack = SlackGateway(web_client)
    providers = build_providers(settings, http)
    pipeline = Pipeline(
        store=store,
        providers=providers,
        slack=slack,
        downloader=SlackFileDownloader(
            http,
            bot_token=bot_token,
            allowed_hosts=slack_file_hosts(str(settings.slack_api_url)),
        ),
        spool_dir=settings.spool_path,
        max_file_bytes=settings.max_file_bytes,
        max_job_age=timedelta(hours=settings.job_max_age_hours),
        poll_interval=settings.poll_interval_seconds,
        clock=clock,
        max_concurrent_transfers=settings.max_concurrent_transfers,
        retention=timedelta(days=settings.retention_days),
        progress_after=timedelta(seconds=settings.progress_after_seconds),
    )
    acks = AckFirst()

    async def cycle() -> None:
        await acks.after_acks()
        await pipeline.run_cycle()

    scheduler = PollScheduler(cycle, interval_seconds=settings.poll_interval_seconds)
    pipeline.on_progress = scheduler.kick
    intake = Intake(store, settings, clock, providers)
    runtime = Runtime(
        settings=settings,
        store=store,
        http=http,
        slack=slack,
        providers=providers,
        intake=intake,
        pipeline=pipeline,
        scheduler=scheduler,
        acks=acks,
        bolt=AsyncApp(
            client=web_client,
            signing_secret=(
                settings.slack_signing_secret.get_secret_value()
                if settings.slack_signing_secret
                else None
            ),
            request_verification_enabled=not settings.socket_mode,
            process_before_response=False,
            logger=BOLT_LOGGER,
        ),
        clock=clock,
    )
    register_listeners(runtime)
    return runtime


# -- transports ---------------------------------------------------------------------------------


def build_http_app(runtime: Runtime, *, slack_events: bool) -> web.Application:
    """``GET /healthz`` and ``GET /metrics`` always; ``POST /slack/events`` in HTTP mode."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_timed])

    verifier = (
        SignatureVerifier(runtime.settings.slack_signing_secret.get_secret_value())
        if runtime.settings.slack_signing_secret is not None
        else None
    )

    async def slack_events_handler(request: web.Request) -> web.StreamResponse:
        # Checked here as well as in Bolt: a forged or malformed request must get a 4xx and
        # never reach a listener, and Bolt answers some malformed input with a 500.
        body = await request.text()
        if is_ssl_check(request.content_type, body):
            # Slack's unsigned check of a slash command URL: Bolt answers it before verifying
            # signatures, and so must we. Nothing is done for it.
            return web.Response(status=200)
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature", "")
        if (
            verifier is None
            or not timestamp.isdigit()
            or not verifier.is_valid(body=body, timestamp=timestamp, signature=signature)
        ):
            return web.json_response({"error": "invalid request signature"}, status=401)
        try:
            bolt_request = AsyncBoltRequest(
                body=body, query=request.query_string, headers=dict(request.headers)
            )
        except ValueError:
            return web.json_response({"error": "malformed request body"}, status=400)
        with runtime.acks.answering():
            bolt_response = await runtime.bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    # Until the first poll cycle completes, staleness is measured from now.
    started_at = runtime.clock()

    async def healthz(_: web.Request) -> web.StreamResponse:
        healthy, report = await health_report(runtime, started_at=started_at)
        return web.json_response(report, status=200 if healthy else 503)

    async def metrics_page(_: web.Request) -> web.StreamResponse:
        snapshot: metrics.StateSnapshot | None = None
        try:
            snapshot = metrics.StateSnapshot(
                await runtime.store.count_jobs_by_state_and_provider(),
                await runtime.store.count_batches_by_state(),
                providers=runtime.providers,
                units_in_flight=runtime.pipeline.steps_running,
                account_problems=[
                    (problem.provider, problem.reason)
                    for problem in await runtime.store.account_problems()
                ],
                account_problem_reasons={
                    name: provider.account_problem_reasons
                    for name, provider in runtime.providers.items()
                },
            )
        except Exception:
            # The process figures are still worth serving; /healthz reports the database.
            log.warning("metrics: could not read the database", exc_info=True)
        return web.Response(
            body=metrics.render(snapshot), headers={"Content-Type": metrics.CONTENT_TYPE}
        )

    if slack_events:
        app.router.add_post("/slack/events", slack_events_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    if slack_events:
        for spec in specs():
            webhook = runtime.settings.webhook_target(spec)
            if spec.webhook is not None and webhook is not None:
                app.router.add_post(
                    spec.webhook.path, provider_webhook(runtime, spec.name, spec.webhook, webhook)
                )
    return app


def provider_webhook(
    runtime: Runtime, provider: str, route: WebhookRoute, webhook: WebhookTarget
) -> Handler:
    """The handler of a provider's webhook ``route``: a checked notice wakes the poll."""

    async def notice(request: web.Request) -> web.StreamResponse:
        # The provider only says "this transcription ended": the poll that follows fetches the
        # outcome, so the notice itself is never trusted with more than a wake-up.
        given = request.headers.get(webhook.header_name, "")
        if not hmac.compare_digest(given.encode(), webhook.header_value.encode()):
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            remote_id = route.finished_id(await request.json())
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": route.expected_body}, status=400)
        if await runtime.pipeline.provider_finished(provider, remote_id):
            runtime.scheduler.kick()
        return web.json_response({"ok": True})

    return notice


#: The fields of Slack's SSL check of a command URL (``token`` is the legacy verification token).
SSL_CHECK_FIELDS = frozenset({"ssl_check", "token"})


def is_ssl_check(content_type: str, body: str) -> bool:
    """Whether ``body`` is Slack's SSL check (``ssl_check=1``, perhaps a ``token``) and nothing
    else: only such a request is answered unsigned, so no command can ride along unverified."""
    if content_type != "application/x-www-form-urlencoded":
        return False
    try:
        fields = parse_qsl(body, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return False
    names = [name for name, _ in fields]
    return (
        ("ssl_check", "1") in fields
        and len(names) == len(set(names))
        and set(names) <= SSL_CHECK_FIELDS
    )


@web.middleware
async def _timed(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time every answer: for ``/slack/events`` it is the ack that Slack retries after 3 s."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route.resource
        path = route.canonical if route is not None else "other"
        metrics.observe_http_request(path, status, time.perf_counter() - started)


#: A poll cycle older than this (and at least a minute) means the clock or the cycle is stuck.
STALE_POLL_INTERVALS = 10
MIN_STALE_POLL_SECONDS = 60.0
#: A database that does not answer a ``SELECT 1`` in this long is as good as down.
HEALTH_DB_TIMEOUT_SECONDS = 2.0


async def health_report(runtime: Runtime, *, started_at: datetime) -> tuple[bool, dict[str, Any]]:
    """What ``/healthz`` answers: every check, and whether they all pass.

    A process can be up and serving HTTP while doing no work (the scheduler stopped, a poll cycle
    hung on a lock, the database file gone, PostgreSQL out of reach); an orchestrator only
    restarts it if this says so. The database check is a ``SELECT 1`` through the store's own
    connection (or pool), so it fails when the bot's work would.
    """
    problems: list[str] = []
    jobs_in_flight: int | None = None
    accounts: list[ProviderAccountProblem] = []
    try:
        database = await asyncio.wait_for(runtime.store.ping(), timeout=HEALTH_DB_TIMEOUT_SECONDS)
        if database:
            jobs_in_flight = await asyncio.wait_for(
                runtime.store.count_unfinished_jobs(), timeout=HEALTH_DB_TIMEOUT_SECONDS
            )
            accounts = await asyncio.wait_for(
                runtime.store.account_problems(), timeout=HEALTH_DB_TIMEOUT_SECONDS
            )
    except Exception as exc:
        database = False
        problems.append(f"database: {type(exc).__name__}")
    else:
        if not database:
            problems.append("database: no answer to SELECT 1")
    scheduler = runtime.scheduler.running
    if not scheduler:
        problems.append("scheduler is not running")
    interval = runtime.settings.poll_interval_seconds
    stale_after = max(MIN_STALE_POLL_SECONDS, STALE_POLL_INTERVALS * interval)
    last = runtime.pipeline.last_cycle_at
    now = runtime.clock()
    age = None if last is None else (now - last).total_seconds()
    waited = (now - started_at).total_seconds() if last is None else age
    if waited is not None and waited > stale_after:
        problems.append(
            f"no poll cycle completed for {waited:.0f} s (expected every {interval:g} s)"
        )
    healthy = not problems
    # The process is fine and restarting it cannot help: still healthy, but degraded, and said.
    problems += [account_problem_text(account) for account in accounts]
    return healthy, {
        "status": "unhealthy" if not healthy else "degraded" if accounts else "ok",
        "backend": runtime.store.backend,
        "database": database,
        "scheduler": scheduler,
        "last_poll_age_seconds": None if age is None else round(age, 3),
        "poll_stale_after_seconds": stale_after,
        "jobs_in_flight": jobs_in_flight,
        "steps_running": runtime.pipeline.steps_running,
        "provider_accounts": [
            {
                "provider": account.provider,
                "reason": account.reason,
                "since": account.since.isoformat(timespec="seconds"),
            }
            for account in accounts
        ],
        "problems": problems,
    }


def account_problem_text(problem: ProviderAccountProblem) -> str:
    """One line for the operator: which account, since when, what it said, and what to do."""
    return (
        f"the {problem.provider} account refuses new work since "
        f"{problem.since.isoformat(timespec='seconds')} ({problem.reason}: {problem.detail}); "
        f"an admin needs to add funds or raise its limit. Files wait meanwhile and go on by "
        f"themselves once it works"
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
    runner = web.AppRunner(
        build_http_app(runtime, slack_events=not settings.socket_mode),
        handle_signals=False,
        access_log=None,
    )
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, settings.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if sockets:
            runtime.port = int(sockets[0].getsockname()[1])
        runtime.scheduler.start()
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
        await runner.cleanup()
        await runtime.aclose()


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
