"""The HTTP server's routes: Slack's events (in HTTP mode), the providers' webhooks, ``/healthz``
and ``/metrics``."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier

from bot import metrics
from bot.health import health_report
from bot.providers.registry import specs
from bot.providers.spec import WebhookRoute, WebhookTarget
from bot.runtime import Runtime

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Slack's payloads are small; anything bigger is not from Slack.
MAX_REQUEST_BYTES = 1024 * 1024


def build_http_app(runtime: Runtime, *, slack_events: bool) -> web.Application:
    """``GET /healthz`` and ``GET /metrics`` always; ``POST /slack/events`` and the providers'
    webhooks in HTTP mode."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[_timed])
    if slack_events:
        app.router.add_post("/slack/events", slack_events_handler(runtime))
    oauth_flow = runtime.bolt.oauth_flow
    if oauth_flow is not None:
        # In Socket Mode too: the install is a browser's visit, which no socket carries.
        handler = oauth_handler(runtime)
        app.router.add_get(oauth_flow.install_path, handler)
        app.router.add_get(oauth_flow.redirect_uri_path, handler)
    app.router.add_get("/healthz", healthz_handler(runtime))
    app.router.add_get("/metrics", metrics_handler(runtime))
    if slack_events:
        for spec in specs():
            webhook = runtime.settings.webhook_target(spec)
            if spec.webhook is not None and webhook is not None:
                app.router.add_post(
                    spec.webhook.path, provider_webhook(runtime, spec.name, spec.webhook, webhook)
                )
    return app


def slack_events_handler(runtime: Runtime) -> Handler:
    """``POST /slack/events``: a signed request goes to Bolt, anything else is turned away."""
    secret = runtime.settings.slack_signing_secret
    verifier = SignatureVerifier(secret.get_secret_value()) if secret is not None else None

    async def handle(request: web.Request) -> web.StreamResponse:
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

    return handle


def oauth_handler(runtime: Runtime) -> Handler:
    """The "Add to Slack" page and Slack's redirect after it, answered by Bolt's OAuth flow
    (as Bolt's own aiohttp server routes them): the redirect's state must be one the install
    page issued, unused, in the same browser."""

    async def handle(request: web.Request) -> web.StreamResponse:
        oauth_flow = runtime.bolt.oauth_flow
        assert oauth_flow is not None
        bolt_request = AsyncBoltRequest(
            body="", query=request.query_string, headers=dict(request.headers)
        )
        if request.path == oauth_flow.install_path:
            bolt_response = await oauth_flow.handle_installation(bolt_request)
        else:
            bolt_response = await oauth_flow.handle_callback(bolt_request)
        return await to_aiohttp_response(bolt_response)

    return handle


def healthz_handler(runtime: Runtime) -> Handler:
    # Until the first poll cycle completes, staleness is measured from now.
    started_at = runtime.clock()

    async def healthz(_: web.Request) -> web.StreamResponse:
        healthy, report = await health_report(runtime, started_at=started_at)
        return web.json_response(report, status=200 if healthy else 503)

    return healthz


def metrics_handler(runtime: Runtime) -> Handler:
    async def metrics_page(_: web.Request) -> web.StreamResponse:
        snapshot: metrics.StateSnapshot | None = None
        try:
            snapshot = metrics.StateSnapshot(
                await runtime.store.count_jobs_by_state_and_provider(),
                await runtime.store.count_batches_by_state(),
                providers=runtime.providers,
                units_in_flight=runtime.engine.steps_running,
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

    return metrics_page


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
        if await runtime.engine.provider_finished(provider, remote_id):
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
