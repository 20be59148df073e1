"""The bot's side effects in Slack, behind one narrow seam over slack-sdk's ``AsyncWebClient``.

Every Web API call the bot makes goes through :class:`SlackGateway`, which counts it and its
failures in the metrics. Its text fields take only :class:`~bot.slack_text.Mrkdwn` (or
:class:`~bot.slack_text.PlainText` for file names and titles): text from outside cannot reach
Slack without passing :mod:`bot.slack_text`. (Bolt and its Socket Mode client make their own
calls, ``auth.test`` and ``apps.connections.open``, with the client they are given.)

5xx answers and dropped connections are retried by slack-sdk's retry handlers, installed in
:func:`build_web_client`; so are rate limits for the one workspace of a single-workspace bot. With
many workspaces a 429 is not waited out inside the call, which would hold one of the work's shared
slots while other workspaces wait: it reaches the caller, which reschedules that workspace's step
after ``Retry-After`` (:func:`retry_after`). What still fails reaches the caller as
``SlackApiError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.slack_text import Block, Mrkdwn, PlainText, View

log = logging.getLogger(__name__)

#: ``metadata.event_type`` on every transcript reply; with the batch id it lets a restarted bot
#: see that a reply was already posted.
REPLY_EVENT_TYPE = "threadscribe_transcript"

#: Slack errors that no retry can fix: the reply cannot be posted there any more.
UNDELIVERABLE_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "thread_not_found",
        "restricted_action",
        "team_access_not_granted",
    }
)
# Token and scope errors (invalid_auth, token_revoked, missing_scope) are left out on purpose: an
# admin can fix them, and the reply goes out on a later attempt, within the age limit.

#: Message links kept in memory. A message's link does not change, and ``/transcribe status``
#: shows ten per channel: this holds those of a few hundred channels.
PERMALINKS_KEPT = 4096
#: Longest wait for one message link; without it, the answer goes out without that link.
PERMALINK_WAIT_SECONDS = 3.0


def build_web_client(
    token: str | None,
    base_url: str,
    session: aiohttp.ClientSession | None = None,
    *,
    wait_out_rate_limits: bool = True,
) -> AsyncWebClient:
    """The Web API client; pass ``session`` to reuse connections (the running bot does: a new
    connection per call costs a TLS handshake each time). ``wait_out_rate_limits=False`` hands
    a 429 to the caller at once instead of sleeping through ``Retry-After``."""
    handlers = [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]
    if wait_out_rate_limits:
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    return AsyncWebClient(token=token, base_url=base_url, session=session, retry_handlers=handlers)


def retry_after(exc: SlackApiError) -> float | None:
    """Seconds Slack asks us to wait when ``exc`` is its 429; None for any other error."""
    response = exc.response
    if getattr(response, "status_code", None) != 429:
        return None
    for key, value in (getattr(response, "headers", None) or {}).items():
        if key.lower() == "retry-after":
            try:
                return max(1.0, float(value))
            except (TypeError, ValueError):
                break
    return 1.0


def slack_error_code(exc: SlackApiError) -> str:
    data = exc.response.data if exc.response is not None else None
    return str(data.get("error", "")) if isinstance(data, dict) else ""


@dataclass
class ThreadState:
    """What a thread already holds from us: the reply (or progress message) of a batch, and the
    names of files uploaded there."""

    reply_ts: str | None
    status_ts: str | None
    file_names: set[str]


@dataclass(frozen=True)
class ThreadFile:
    """A file the bot attached in a thread."""

    file_id: str
    name: str
    #: The ts of the message that shared it.
    ts: str


@dataclass(frozen=True)
class RefreshedToken:
    """A rotating bot token's successor, from ``oauth.v2.access``; secrets, kept out of
    ``repr``."""

    bot_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    #: Seconds it lasts from when Slack answered; None: it does not expire.
    expires_in: int | None


@dataclass(frozen=True)
class BotIdentity:
    """Whom the bot token signs in as, and the scopes Slack says it grants."""

    user: str | None
    team: str | None
    #: From the ``x-oauth-scopes`` header Slack adds to every answer; None when it sent none.
    scopes: set[str] | None
    #: The workspace's team id, and its organisation's id when it is in an Enterprise Grid.
    team_id: str | None = None
    enterprise_id: str | None = None


class SlackGateway:
    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        #: ``chat.getPermalink`` answers by (channel, message ts), least recently used first.
        self._permalinks: OrderedDict[tuple[str, str], str] = OrderedDict()
        #: The bot's own user id, once ``auth.test`` said it.
        self._user_id: str | None = None

    async def aclose(self) -> None:
        """Close the connections of the session the client was given, if any."""
        if self.client.session is not None:
            await self.client.session.close()

    async def identity(self) -> BotIdentity:
        """``auth.test``: raises ``SlackApiError`` when Slack rejects the token."""
        with _observed("auth.test"):
            response = await self.client.auth_test()
        user, team = response.get("user"), response.get("team")
        team_id, enterprise_id = response.get("team_id"), response.get("enterprise_id")
        return BotIdentity(
            user=None if user is None else str(user),
            team=None if team is None else str(team),
            scopes=granted_scopes(response.headers),
            team_id=str(team_id) if team_id else None,
            enterprise_id=str(enterprise_id) if enterprise_id else None,
        )

    async def check_app_token(self, app_token: str) -> None:
        """Ask for a Socket Mode connection URL with the app-level token, which opens nothing;
        raises ``SlackApiError`` when Slack rejects the token."""
        client = AsyncWebClient(base_url=self.client.base_url)
        with _observed("apps.connections.open"):
            await client.apps_connections_open(app_token=app_token)

    async def refresh_bot_token(
        self, *, client_id: str, client_secret: str, refresh_token: str
    ) -> RefreshedToken:
        """Exchange a rotating bot token's refresh token for the next bot token (and the next
        refresh token: each is good once). Made on a client without a token, the app's own.
        Raises ``SlackApiError`` when Slack refuses (the refresh token was used or revoked)."""
        with _observed("oauth.v2.access"):
            response = await self.client.oauth_v2_access(
                client_id=client_id,
                client_secret=client_secret,
                grant_type="refresh_token",
                refresh_token=refresh_token,
            )
        expires_in = response.get("expires_in")
        refresh = response.get("refresh_token")
        return RefreshedToken(
            bot_token=str(response["access_token"]),
            refresh_token=None if refresh is None else str(refresh),
            expires_in=int(expires_in) if isinstance(expires_in, int) else None,
        )

    async def permalink(self, channel: str, ts: str) -> str | None:
        """Slack's link to a message (``chat.getPermalink``), or None when Slack gives none in
        time: the caller then shows no link.

        Only Slack knows the right host: a workspace's own subdomain, an Enterprise Grid org's,
        or GovSlack's. Links are kept once known (in memory, a bounded number): they never
        change for a message, and one lost at a restart costs one call to get back, where a
        stored one would outlive a change of the workspace's address.
        """
        key = (channel, ts)
        link = self._permalinks.get(key)
        if link is not None:
            self._permalinks.move_to_end(key)
            return link
        try:
            with _observed("chat.getPermalink"):
                response = await asyncio.wait_for(
                    self.client.chat_getPermalink(channel=channel, message_ts=ts),
                    PERMALINK_WAIT_SECONDS,
                )
        except SlackApiError as exc:
            log.info("no link to %s in %s: %s", ts, channel, slack_error_code(exc))
            return None
        except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("no link to %s in %s: %r", ts, channel, exc)
            return None
        found = response.get("permalink")
        if not isinstance(found, str) or not found.startswith(("https://", "http://")):
            return None
        self._permalinks[key] = found
        if len(self._permalinks) > PERMALINKS_KEPT:
            self._permalinks.popitem(last=False)
        return found

    async def file_info(self, file_id: str) -> dict[str, Any]:
        with _observed("files.info"):
            response = await self.client.files_info(file=file_id)
        file = response.get("file")
        return file if isinstance(file, dict) else {}

    async def add_reaction(self, channel: str, ts: str, name: str) -> None:
        await self._reaction("reactions.add", channel, ts, name, ignore="already_reacted")

    async def remove_reaction(self, channel: str, ts: str, name: str) -> None:
        await self._reaction("reactions.remove", channel, ts, name, ignore="no_reaction")

    async def post_reply(
        self,
        *,
        channel: str,
        thread_ts: str,
        text: Mrkdwn,
        blocks: Sequence[Block],
        batch_id: str,
        final: bool = True,
    ) -> str:
        """Post in the thread; ``final=False`` marks a progress message that will become the
        reply."""
        with _observed("chat.postMessage"):
            response = await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                blocks=list(blocks),
                unfurl_links=False,
                unfurl_media=False,
                metadata=_batch_metadata(batch_id, final),
            )
        return str(response["ts"])

    async def update_message(
        self,
        *,
        channel: str,
        ts: str,
        text: Mrkdwn,
        blocks: Sequence[Block],
        batch_id: str,
        final: bool,
    ) -> None:
        with _observed("chat.update"):
            await self.client.chat_update(
                channel=channel,
                ts=ts,
                text=text,
                blocks=list(blocks),
                metadata=_batch_metadata(batch_id, final),
            )

    async def post_message(
        self, *, channel: str, text: Mrkdwn, thread_ts: str | None = None
    ) -> str:
        """Post a short note, in a thread when ``thread_ts`` is given; links are not unfurled."""
        with _observed("chat.postMessage"):
            response = await self.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
            )
        return str(response["ts"])

    async def update_text(self, *, channel: str, ts: str, text: Mrkdwn) -> None:
        with _observed("chat.update"):
            await self.client.chat_update(channel=channel, ts=ts, text=text)

    async def upload_text(
        self,
        *,
        channel: str,
        thread_ts: str,
        filename: PlainText,
        title: PlainText,
        content: str,
    ) -> list[str]:
        """Attach a text file in the thread; ``content`` is shown as a file, never parsed.
        Returns the ids Slack gave the file."""
        with _observed("files.uploadV2"):
            response = await self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                filename=filename,
                title=title,
                content=content,
            )
        files = response.get("files") or []
        return [str(file["id"]) for file in files if isinstance(file, dict) and file.get("id")]

    async def delete_file(self, file_id: str) -> None:
        """Delete a file the bot attached; one already gone counts as deleted."""
        try:
            with _observed("files.delete", ignore="file_not_found"):
                await self.client.files_delete(file=file_id)
        except SlackApiError as exc:
            if slack_error_code(exc) not in ("file_not_found", "file_deleted"):
                raise

    async def open_view(self, *, trigger_id: str, view: View) -> None:
        """Open a modal for whoever acted (``views.open``); the trigger lasts three seconds."""
        with _observed("views.open"):
            await self.client.views_open(trigger_id=trigger_id, view=dict(view))

    async def is_member(self, *, channel: str, user: str) -> bool:
        """Whether ``user`` is a member of ``channel`` (``conversations.members``, page by page
        until found)."""
        cursor: str | None = None
        while True:
            with _observed("conversations.members"):
                response = await self.client.conversations_members(
                    channel=channel, limit=1000, cursor=cursor
                )
            if user in (response.get("members") or []):
                return True
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return False

    async def user_name(self, user: str) -> str | None:
        """The name a person goes by in Slack (their display name, else their full name), or
        None when Slack does not say (an unknown person, no ``users:read`` scope)."""
        try:
            with _observed("users.info"):
                response = await self.client.users_info(user=user)
        except SlackApiError as exc:
            log.warning("no name for %s: %s", user, slack_error_code(exc))
            return None
        found = response.get("user") or {}
        profile = found.get("profile") or {}
        for name in (
            profile.get("display_name"),
            profile.get("real_name"),
            found.get("real_name"),
            found.get("name"),
        ):
            if isinstance(name, str) and name.strip():
                return name.strip()
        return None

    async def bot_user_id(self) -> str:
        """The bot's own user id (``auth.test``, asked once)."""
        if self._user_id is None:
            with _observed("auth.test"):
                response = await self.client.auth_test()
            self._user_id = str(response["user_id"])
        return self._user_id

    async def thread_files(
        self, *, channel: str, thread_ts: str, since: datetime, until: datetime | None = None
    ) -> list[ThreadFile]:
        """The files the bot attached in the thread from ``since`` (to ``until``), oldest first."""
        ours = await self.bot_user_id()
        low = since.timestamp() - CLOCK_SKEW_SECONDS
        high = until.timestamp() + CLOCK_SKEW_SECONDS if until is not None else None
        found: list[ThreadFile] = []
        cursor: str | None = None
        while True:
            with _observed("conversations.replies"):
                response = await self.client.conversations_replies(
                    channel=channel, ts=thread_ts, limit=200, cursor=cursor
                )
            for message in response.get("messages") or []:
                posted = _slack_time(message.get("ts"))
                if posted < low or (high is not None and posted > high):
                    continue
                for file in message.get("files") or []:
                    if file.get("user") == ours and file.get("id") and file.get("name"):
                        found.append(
                            ThreadFile(str(file["id"]), str(file["name"]), str(message.get("ts")))
                        )
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return found

    async def thread_parent(self, *, channel: str, thread_ts: str) -> dict[str, Any]:
        """The first message of a thread as Slack has it (``{}`` when Slack shows none): its
        files are the only ones that get the bot token on download."""
        with _observed("conversations.replies"):
            response = await self.client.conversations_replies(
                channel=channel, ts=thread_ts, limit=1
            )
        for message in response.get("messages") or []:
            if isinstance(message, dict) and message.get("ts") == thread_ts:
                return message
        return {}

    async def thread_state(
        self, *, channel: str, thread_ts: str, batch_id: str, since: datetime
    ) -> ThreadState:
        """Look through a thread for the reply of ``batch_id`` and for files uploaded since
        ``since`` (an earlier batch's file of the same name is not this batch's)."""
        reply_ts: str | None = None
        status_ts: str | None = None
        names: set[str] = set()
        cursor: str | None = None
        while True:
            with _observed("conversations.replies"):
                response = await self.client.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            for message in response.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == REPLY_EVENT_TYPE
                    and payload.get("batch_id") == batch_id
                ):
                    if payload.get("final", True):
                        reply_ts = str(message.get("ts"))
                    else:
                        status_ts = str(message.get("ts"))
                # A few seconds of slack for clock skew between Slack and this machine.
                if _slack_time(message.get("ts")) < since.timestamp() - CLOCK_SKEW_SECONDS:
                    continue
                for file in message.get("files") or []:
                    if file.get("name"):
                        names.add(str(file["name"]))
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return ThreadState(reply_ts=reply_ts, status_ts=status_ts, file_names=names)

    async def _reaction(
        self, method: str, channel: str, ts: str, name: str, *, ignore: str
    ) -> None:
        call = getattr(self.client, method.replace(".", "_"))
        try:
            with _observed(method, ignore=ignore):
                await call(channel=channel, timestamp=ts, name=name)
        except SlackApiError as exc:
            # A reaction is decoration: never let it stop the work.
            if slack_error_code(exc) != ignore:
                log.warning("%s %s failed: %s", method, name, slack_error_code(exc))


CLOCK_SKEW_SECONDS = 5.0


def granted_scopes(headers: Mapping[str, Any]) -> set[str] | None:
    """The bot token's scopes, from the ``x-oauth-scopes`` header Slack adds to every answer."""
    for key, value in headers.items():
        if key.lower() == "x-oauth-scopes":
            return {scope.strip() for scope in str(value).split(",") if scope.strip()}
    return None


def _slack_time(ts: object) -> float:
    try:
        return float(str(ts))
    except ValueError:
        return 0.0


def _batch_metadata(batch_id: str, final: bool) -> dict[str, Any]:
    return {
        "event_type": REPLY_EVENT_TYPE,
        "event_payload": {"batch_id": batch_id, "final": final},
    }


@contextmanager
def _observed(method: str, *, ignore: str | None = None) -> Iterator[None]:
    """Count a Web API call, and its failure by method and Slack's error code.

    ``ignore`` is an error the caller expects and treats as success (``already_reacted``): it is
    not an error worth an alert. For ``files_upload_v2``, which makes several calls, the failing
    one is named from the response's URL.
    """
    metrics.record_slack_call(method)
    try:
        yield
    except SlackApiError as exc:
        code = slack_error_code(exc)
        if code != ignore:
            metrics.record_slack_error(_failed_method(exc, method), code)
        raise
    except (SlackClientError, aiohttp.ClientError, TimeoutError) as exc:
        # Still failing after slack-sdk's connection retries.
        metrics.record_slack_error(method, type(exc).__name__)
        raise


def _failed_method(exc: SlackApiError, default: str) -> str:
    api_url = getattr(exc.response, "api_url", None)
    if isinstance(api_url, str) and "/" in api_url:
        name = api_url.rstrip("/").rsplit("/", 1)[1]
        if name and "." in name:
            return name
    return default
