"""Fetching Slack files: ``files.info`` for Slack Connect stubs, and the streamed download to the
spool.

The bot token goes only to Slack's own file hosts, and only for URLs that came from a signed Slack
payload or from ``files.info``: a link a user pasted is never fetched by the bot. Redirects are
followed here, one at a time, and only while they stay on Slack's file hosts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import SecretStr

from bot.errors import PermanentError, TemporaryError
from bot.media import parse_url
from bot.messages import failures
from bot.providers.base import send

log = logging.getLogger(__name__)

_CHUNK = 1024 * 1024

#: Redirects one download may take: Slack hands a file on to another of its hosts once or twice.
MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def slack_file_hosts(api_url: str) -> frozenset[str]:
    """Hosts allowed to receive the bot token: Slack's, plus the configured Web API host."""
    hosts = {"files.slack.com", "slack.com", "slack-gov.com", "files.slack-gov.com"}
    api_host = urlsplit(api_url).hostname
    if api_host:
        hosts.add(api_host)
    return frozenset(hosts)


def token_allowed(url: str, hosts: frozenset[str]) -> bool:
    parts = parse_url(url)
    if parts is None:
        return False
    host = parts.hostname or ""
    if parts.scheme != "https" and host not in hosts:
        return False
    return host in hosts or host.endswith((".slack.com", ".slack-gov.com"))


class SlackFileDownloader:
    """Downloads with the bot token of the file's workspace, given with each download: with
    many workspaces each has its own, and a rotating one changes while the bot runs."""

    def __init__(self, client: httpx.AsyncClient, *, allowed_hosts: frozenset[str]) -> None:
        self._client = client
        self._hosts = allowed_hosts

    async def download(
        self,
        url: str,
        destination: Path,
        *,
        token: SecretStr,
        max_bytes: int,
        too_large_message: str | None = None,
    ) -> int:
        """Stream ``url`` into ``destination`` with the bot ``token``; return the number of
        bytes written.

        More than ``max_bytes`` ends the download with ``too_large_message`` for the thread.

        The file appears under its final name only when complete, so a crash leaves no half
        file that looks whole.
        """
        if not token_allowed(url, self._hosts):
            raise PermanentError(
                "refusing to send the bot token to a host that is not Slack's",
                user_message=failures.NOT_A_SLACK_DOWNLOAD,
            )
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(destination.name + ".part")
        response = await self._open(url, token)
        written = 0
        try:
            _check_response(response)
            with partial.open("wb") as spool:
                first = True
                async for chunk in response.aiter_bytes(_CHUNK):
                    if first and _looks_like_html(chunk):
                        raise PermanentError(
                            "file download answered an HTML page",
                            user_message=failures.SIGN_IN_PAGE,
                        )
                    first = False
                    written += len(chunk)
                    if written > max_bytes:
                        raise PermanentError(
                            f"file is larger than {max_bytes} bytes",
                            user_message=too_large_message
                            or failures.larger_than_app_limit(max_bytes // (1024 * 1024)),
                        )
                    spool.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise TemporaryError(f"slack file download interrupted ({type(exc).__name__})") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            await response.aclose()
        os.replace(partial, destination)
        return written

    async def _open(self, url: str, token: SecretStr) -> httpx.Response:
        """The streamed answer for ``url`` once redirects are followed: each hop is checked
        before the token goes there, so it never leaves Slack's hosts nor drops to plain HTTP."""
        for _ in range(MAX_REDIRECTS + 1):
            request = self._client.build_request(
                "GET", url, headers={"Authorization": f"Bearer {token.get_secret_value()}"}
            )
            response = await send(
                self._client,
                request,
                what="slack file download",
                stream=True,
                follow_redirects=False,
            )
            if response.status_code not in _REDIRECT_STATUSES:
                return response
            await response.aclose()
            location = response.headers.get("location", "")
            if not location:
                raise TemporaryError(f"file download: {response.status_code} without a Location")
            target = urljoin(url, location)
            host = urlsplit(target).hostname or ""
            downgraded = urlsplit(url).scheme == "https" and urlsplit(target).scheme != "https"
            if downgraded or not token_allowed(target, self._hosts):
                log.warning(
                    "slack file download redirected off Slack's file hosts to %s; not followed",
                    host or "an unreadable address",
                )
                raise PermanentError(
                    f"file download redirected to {host or 'an unreadable address'} "
                    f"({'plain http' if downgraded else 'not a Slack file host'})",
                    user_message=failures.led_off_slack(host),
                )
            url = target
        raise PermanentError(
            f"file download redirected more than {MAX_REDIRECTS} times",
            user_message=failures.REDIRECT_LOOP,
        )


def _looks_like_html(chunk: bytes) -> bool:
    head = chunk[:256].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def _check_response(response: httpx.Response) -> None:
    if response.headers.get("content-type", "").startswith("text/html"):
        raise PermanentError(
            "file download answered an HTML page", user_message=failures.SIGN_IN_PAGE
        )
    if response.status_code in (401, 403):
        raise PermanentError(
            f"file download refused: {response.status_code}", user_message=failures.SIGN_IN_PAGE
        )
    if response.status_code == 404:
        raise PermanentError(
            "file download: 404",
            user_message=failures.FILE_GONE,
        )
    if response.status_code != 200:
        raise TemporaryError(f"file download: unexpected status {response.status_code}")
