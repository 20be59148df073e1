"""A loopback Slack: the Web API, private file hosting, the ``files_upload_v2`` upload target,
``response_url`` hooks and Socket Mode, on 127.0.0.1.

The app under test talks to it with the real ``slack_sdk`` clients (``AsyncWebClient(base_url=
fake.api_url)`` and the aiohttp ``SocketModeClient``), so the fake answers what Slack answers, in
the shapes the SDK expects, including the awkward parts the bot must survive:

* every Web API answer is HTTP 200 with ``ok: false`` on errors (only injected faults such as a
  429 use other statuses);
* a file download without a valid bot token, or without the ``files:read`` scope, is a 200 HTML
  sign-in page, not a 401;
* Slack Connect files arrive as stubs that need ``files.info``;
* ``conversations.replies`` returns ``metadata`` only with ``include_all_metadata``;
* a ``trigger_id`` opens one modal (``views.open``), within three seconds of the interaction;
* ``conversations.members`` pages, and needs the ``*:read`` scope of the channel's type;
* a bot may delete only its own files (``files.delete``);
* the app can be installed in several workspaces (:meth:`FakeSlack.add_workspace`), or a whole
  Enterprise Grid organisation, through OAuth: the authorize page, then ``oauth.v2.access``
  exchanging the code, and with token rotation (:attr:`FakeSlack.token_rotation`) refreshing
  expiring tokens (``grant_type=refresh_token``). Each workspace's bot has its own token, which
  knows nothing of another workspace: its channels answer ``channel_not_found`` and its files
  ``file_not_found`` (as Slack answers a token from the wrong workspace; see
  slackapi/bolt-js#1128), and their downloads the sign-in page. A token Slack never issued is
  ``invalid_auth``, an expired one ``token_expired``, a revoked one ``token_revoked``.

Buttons and modals are driven like a person would: :meth:`FakeSlack.block_action` presses a button
of a posted message, and :meth:`FakeSlack.view_submission` submits a modal the app opened, with the
people chosen in its pickers (payloads as documented at docs.slack.dev, "block_actions payload" and
"View interaction payloads").

Large files are never held in memory: a file registered with only a ``size`` is streamed from a
deterministic pattern, 64 KiB at a time (see :func:`pattern_chunks`), so benchmarks can relay
gigabyte files through the bot while the fake stays small.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import hmac
import io
import itertools
import json
import mimetypes
import re
import time
import uuid
import wave
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from aiohttp import BodyPartReader, WSCloseCode, WSMsgType, web

from tests.fakes.server import Fault, LoopbackServer, RecordedRequest

#: Size of the pieces streamed downloads are generated and written in.
CHUNK_SIZE = 64 * 1024

DEFAULT_SCOPES: tuple[str, ...] = (
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "files:read",
    "files:write",
    "chat:write",
    "reactions:write",
    "commands",
    "app_mentions:read",
    "channels:read",
    "groups:read",
    "im:read",
    "mpim:read",
    "users:read",
)

#: What files.slack.com serves to a request without a usable token: a 200 HTML page.
SIGN_IN_PAGE = (
    "<!DOCTYPE html><html><head><title>Slack</title></head><body>"
    "Sign in to Slack to continue. You need to be signed in to view this file."
    "</body></html>"
)

NOT_FOUND_PAGE = (
    "<!DOCTYPE html><html><head><title>Slack</title></head><body>"
    "There's been a glitch: this file could not be found."
    "</body></html>"
)

#: The content type of slash command and interactivity requests in HTTP mode.
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

#: A ``trigger_id`` can be exchanged for a modal this long after the interaction, and once.
TRIGGER_SECONDS = 3.0
MAX_VIEW_BLOCKS = 100
MAX_VIEW_TITLE_CHARS = 24
MAX_PRIVATE_METADATA_CHARS = 3000
MAX_BUTTON_TEXT_CHARS = 75
MAX_BUTTON_VALUE_CHARS = 2000
MAX_ACTION_ELEMENTS = 25
#: ``conversations.members`` answers at most this many members a page (its default is 100).
MAX_MEMBERS_PAGE = 1000

#: Who is in a channel that :meth:`FakeSlack.set_members` did not describe.
DEFAULT_MEMBERS = ("U0ALICE", "U0BOB", "U0CAROL")
#: People of the workspace (``users.info``), by id: their username, display and full name.
DEFAULT_PEOPLE = {
    "U0ALICE": ("alice", "Alice", "Alice Adams"),
    "U0BOB": ("bob", "Bob", "Bob Brown"),
    "U0CAROL": ("carol", "", "Carol Clark"),
    "U0DAVE": ("dave", "Dave", "Dave Dunn"),
}


def slack_encoded(typed: str) -> str:
    """Text as Slack sends what a person typed: ``&``, ``<`` and ``>`` as entities."""
    return typed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


#: Slack rejects ``chat.postMessage`` text longer than this with ``msg_too_long``.
MAX_TEXT_CHARS = 40_000
MAX_BLOCKS = 50
MAX_SECTION_TEXT_CHARS = 3_000
MAX_HEADER_TEXT_CHARS = 150

_PATTERN_BLOCK = bytes(range(256)) * (CHUNK_SIZE // 256)

_PRETTY_TYPES = {
    "wav": "WAV",
    "mp3": "MP3",
    "m4a": "MPEG 4 Audio",
    "mp4": "MPEG 4 Video",
    "webm": "WebM",
    "ogg": "Ogg Vorbis",
    "flac": "FLAC",
    "text": "Plain Text",
    "markdown": "Markdown (raw)",
    "binary": "Binary",
}

_FILETYPES_BY_EXTENSION = {
    "txt": "text",
    "md": "markdown",
    "srt": "text",
    "vtt": "text",
    "json": "javascript",
}

ApiHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


# -- deterministic content ------------------------------------------------------------------------


def _pattern_chunk(index: int) -> bytes:
    """The ``index``-th 64 KiB piece of the pattern: numbered, so a dropped, repeated or reordered
    chunk changes the bytes instead of going unnoticed."""
    return index.to_bytes(8, "big") + _PATTERN_BLOCK[8:]


def pattern_chunks(size: int, *, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Yield bytes ``start``..``end`` (exclusive) of the ``size``-byte pattern file.

    Generated piece by piece, never all at once, so gigabyte files cost 64 KiB of memory.
    """
    stop = size if end is None else min(end, size)
    position = start
    while position < stop:
        index, offset = divmod(position, CHUNK_SIZE)
        piece = _pattern_chunk(index)[offset : min(CHUNK_SIZE, offset + stop - position)]
        yield piece
        position += len(piece)


def pattern_bytes(size: int) -> bytes:
    """The whole pattern file in memory: for small files in tests that compare contents."""
    return b"".join(pattern_chunks(size))


def pattern_sha256(size: int) -> str:
    """Digest of the pattern file, computed in pieces: to check a large relayed file end to end."""
    digest = hashlib.sha256()
    for piece in pattern_chunks(size):
        digest.update(piece)
    return digest.hexdigest()


def silent_wav(seconds: float = 0.25, *, rate: int = 16_000) -> bytes:
    """A short, valid mono 16-bit WAV of silence: the default content of :meth:`FakeSlack.add_file`,
    so tools that probe the audio find a real header."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


#: How long an authorization code can be exchanged, and a rotating token lasts (Slack's 12 hours).
CODE_SECONDS = 600
TOKEN_LIFETIME_SECONDS = 43_200


@dataclass
class FakeWorkspace:
    """A workspace the app can be installed in: its ids, its bot, and its channels."""

    team_id: str
    name: str
    domain: str
    bot_user_id: str
    bot_id: str
    #: The Enterprise Grid organisation it belongs to, if any.
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    #: Channels of this workspace. The first workspace also has every channel no other one has.
    channels: set[str] = field(default_factory=set)


# -- internals ----------------------------------------------------------------------------------


@dataclass
class _Grant:
    """What a token issued by this Slack may do: act as the bot (``bot``) or get the next bot
    token (``refresh``), in one workspace or (``team_id`` None) a whole organisation."""

    kind: str
    enterprise_id: str | None
    team_id: str | None
    #: When it stops working (``time.time()`` seconds); None: never.
    expires_at: float | None = None
    revoked: bool = False
    #: For a refresh token: the installation it refreshes, as the code exchange answered it.
    install: dict[str, Any] | None = None

    def covers(self, workspace: FakeWorkspace) -> bool:
        if self.team_id is not None:
            return self.team_id == workspace.team_id
        return self.enterprise_id is not None and self.enterprise_id == workspace.enterprise_id


@dataclass
class _Code:
    """An authorization code, given to the browser after someone approved an install."""

    install: dict[str, Any]
    redirect_uri: str | None
    expires_at: float
    used: bool = False


#: The token of the Web API call being answered: what it may do, for the method handlers.
_CALLER: contextvars.ContextVar[_Grant | None] = contextvars.ContextVar("caller", default=None)


class _SlackError(Exception):
    """An ``ok: false`` answer; raised by method handlers so each check stays one line."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.body: dict[str, Any] = {"ok": False, "error": error, **extra}


@dataclass
class _StoredFile:
    """A hosted file: its full Slack object and its bytes (or the size of its pattern)."""

    info: dict[str, Any]
    content: bytes | None
    size: int

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        if self.content is None:
            yield from pattern_chunks(self.size, start=start, end=end)
            return
        view = memoryview(self.content)
        for offset in range(start, end, CHUNK_SIZE):
            yield bytes(view[offset : min(end, offset + CHUNK_SIZE)])


def _ts_key(ts: str) -> tuple[int, int]:
    """Order Slack timestamps numerically: string order breaks when the widths differ."""
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros.ljust(6, "0")[:6] or 0)
    except ValueError:
        return 0, 0


def _text_arg(args: Mapping[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _flag_arg(args: Mapping[str, Any], name: str) -> bool:
    """Slack booleans arrive as ``true``/``1`` in forms and query strings, or as JSON booleans."""
    value = args.get(name)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _json_arg(args: Mapping[str, Any], name: str, error: str) -> Any:
    """Arguments such as ``blocks`` are JSON strings in forms but plain JSON in JSON bodies."""
    value = args.get(name)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError:
            raise _SlackError(error) from None
    return value


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """One ``bytes=a-b`` range as ``(start, end_exclusive)``; ``None`` when unsatisfiable."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:
        length = int(last)
        if length == 0:
            return None
        return max(0, size - length), size
    start = int(first)
    end = size if not last else min(size, int(last) + 1)
    if start >= size or end <= start:
        return None
    return start, end


def _basic_auth(request: web.Request) -> tuple[str, str] | None:
    """The client id and secret of an ``Authorization: Basic`` header, if there is one."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except ValueError:
        return None
    client_id, _, secret = decoded.partition(":")
    return client_id, secret


def _redirect_allowed(redirect_uri: str, allowed: str) -> bool:
    """Slack takes a redirect URL that is one of the app's, or below one of them."""
    given, listed = urlsplit(redirect_uri), urlsplit(allowed)
    return (given.scheme, given.netloc) == (listed.scheme, listed.netloc) and (
        given.path == listed.path or given.path.startswith(listed.path.rstrip("/") + "/")
    )


def _with_query(url: str, extra: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *extra.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _channel_type(channel: str) -> str:
    if channel.startswith("D"):
        return "im"
    if channel.startswith("G"):
        return "group"
    return "channel"


def _read_scope(channel: str) -> str:
    """The scope ``conversations.members`` needs for a channel of this kind."""
    return {"im": "im:read", "group": "groups:read"}.get(_channel_type(channel), "channels:read")


def _history_scope(channel: str) -> str:
    return {"im": "im:history", "group": "groups:history"}.get(
        _channel_type(channel), "channels:history"
    )


def _validate_blocks(blocks: Any) -> list[dict[str, Any]] | None:
    """Enforce the limits Slack enforces, so the bot's splitting of long transcripts is tested."""
    if blocks is None:
        return None
    if not isinstance(blocks, list) or not all(
        isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks
    ):
        raise _SlackError("invalid_blocks_format")
    problems: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for index, block in enumerate(blocks):
        if block["type"] == "actions":
            problems += _validate_actions(index, block)
        text = block.get("text")
        content = text.get("text") if isinstance(text, dict) else None
        if not isinstance(content, str):
            continue
        if block["type"] == "section" and len(content) > MAX_SECTION_TEXT_CHARS:
            problems.append(
                f"must be less than {MAX_SECTION_TEXT_CHARS + 1} characters "
                f"[json-pointer:/blocks/{index}/text/text]"
            )
        if block["type"] == "header" and len(content) > MAX_HEADER_TEXT_CHARS:
            problems.append(
                f"must be less than {MAX_HEADER_TEXT_CHARS + 1} characters "
                f"[json-pointer:/blocks/{index}/text/text]"
            )
    if problems:
        raise _SlackError(
            "invalid_blocks",
            errors=problems,
            response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
        )
    return blocks


def _validate_actions(index: int, block: dict[str, Any]) -> list[str]:
    """What Slack refuses in an actions block: too many elements, or a button whose text, value
    or action id is missing or too long."""
    problems: list[str] = []
    elements = block.get("elements")
    where = f"[json-pointer:/blocks/{index}/elements]"
    if not isinstance(elements, list) or not elements or len(elements) > MAX_ACTION_ELEMENTS:
        return [f"must provide 1 to {MAX_ACTION_ELEMENTS} elements {where}"]
    for element in elements:
        if not isinstance(element, dict) or element.get("type") != "button":
            continue
        text = element.get("text") or {}
        if text.get("type") != "plain_text" or not 0 < len(str(text.get("text", ""))) <= 75:
            problems.append(f"button text must be plain_text of 1 to 75 characters {where}")
        if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE_CHARS:
            problems.append(f"button value must be at most 2000 characters {where}")
        if not element.get("action_id"):
            problems.append(f"missing required field: action_id {where}")
    return problems


def _validate_metadata(metadata: Any) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if (
        not isinstance(metadata, dict)
        or not isinstance(metadata.get("event_type"), str)
        or not isinstance(metadata.get("event_payload", {}), dict)
    ):
        raise _SlackError("invalid_metadata_format")
    return {
        "event_type": metadata["event_type"],
        "event_payload": metadata.get("event_payload", {}),
    }


def _view_problems(view: Any) -> list[str]:
    """What Slack refuses in a modal: the limits of its title, blocks and metadata, and input
    blocks without a label or an element."""
    if not isinstance(view, dict) or view.get("type") != "modal":
        return ["view must be a modal"]
    problems: list[str] = []
    title = view.get("title") or {}
    if title.get("type") != "plain_text" or not 0 < len(title.get("text", "")) <= 24:
        problems.append("title must be plain_text of 1 to 24 characters")
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or len(blocks) > MAX_VIEW_BLOCKS:
        problems.append(f"blocks must be a list of at most {MAX_VIEW_BLOCKS}")
        return problems
    if len(str(view.get("private_metadata", ""))) > MAX_PRIVATE_METADATA_CHARS:
        problems.append("private_metadata must be at most 3000 characters")
    block_ids = [block.get("block_id") for block in blocks if block.get("block_id")]
    if len(block_ids) != len(set(block_ids)):
        problems.append("block_id must be unique within a view")
    inputs = [block for block in blocks if block.get("type") == "input"]
    if inputs and not (view.get("submit") or {}).get("text"):
        problems.append("a view with input blocks needs a submit button")
    for block in inputs:
        label = block.get("label") or {}
        element = block.get("element") or {}
        if label.get("type") != "plain_text" or not label.get("text"):
            problems.append("input blocks need a plain_text label")
        if not element.get("type") or not element.get("action_id"):
            problems.append("input blocks need an element with an action_id")
        initial = element.get("initial_user")
        if initial is not None and not re.fullmatch(r"[UW][A-Z0-9]+", str(initial)):
            problems.append("initial_user must be a user id")
    return problems


# -- the fake -----------------------------------------------------------------------------------


class FakeSlack(LoopbackServer):
    """Slack's Web API, file hosts, response URLs and Socket Mode on one loopback port.

    State is public so tests can assert on it directly: :attr:`messages`, :attr:`message_edits`,
    :attr:`ephemerals`, :attr:`reactions`, :attr:`uploads`, :attr:`downloads`, :attr:`responses`,
    :attr:`socket_acks` and :attr:`envelopes`. Every change wakes :meth:`wait_for`.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-fake-bot-token",
        app_token: str = "xapp-fake-app-token",
        signing_secret: str = "fake-signing-secret",
        team_id: str = "T0FAKE",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        app_id: str = "A0APP",
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.team_id = team_id
        #: The workspace the app is installed in from the start (with :attr:`bot_token`), and
        #: every other one by team id (:meth:`add_workspace`).
        self.workspace = FakeWorkspace(
            team_id=team_id,
            name="Fake Team",
            domain="fake-team",
            bot_user_id=bot_user_id,
            bot_id=bot_id,
        )
        self.workspaces: dict[str, FakeWorkspace] = {team_id: self.workspace}
        #: The app's OAuth credentials (its Basic Information page) and redirect URLs (none:
        #: any is accepted).
        self.client_id = "1111111111.2222222222"
        self.client_secret = "fake-client-secret-0123456789abcdef"
        self.redirect_urls: list[str] = []
        #: Token rotation (the manifest's ``token_rotation_enabled``): installs then get
        #: expiring tokens, lasting :attr:`token_lifetime_seconds`, and a refresh token.
        self.token_rotation = False
        self.token_lifetime_seconds = TOKEN_LIFETIME_SECONDS
        #: Who approves the next install on the authorize page, and where: a team id, the user,
        #: and whether for the whole organisation.
        self.approver: dict[str, Any] = {"team_id": team_id, "user": "U0ALICE", "org": False}
        #: Every successful ``oauth.v2.access``: its grant type, the team, the tokens issued.
        self.oauth_exchanges: list[dict[str, Any]] = []
        self._grants: dict[str, _Grant] = {bot_token: _Grant("bot", None, team_id)}
        self._codes: dict[str, _Code] = {}
        #: The workspace of each hosted file.
        self._file_teams: dict[str, str] = {}
        #: The workspace's subdomain, as slash command and shortcut payloads carry it.
        self.team_domain = self.workspace.domain
        #: Where ``chat.getPermalink`` links point. In an Enterprise Grid org (as here) or on
        #: GovSlack that is not ``{team_domain}.slack.com``: only Slack knows the host.
        self.permalink_base = "https://fake-org.enterprise.slack.com"
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        #: Scopes granted to the bot token. Remove one to see Slack's ``missing_scope`` answers
        #: (and, for ``files:read``, the HTML sign-in page on downloads).
        self.scopes: list[str] = list(DEFAULT_SCOPES)
        #: The legacy verification token Slack still puts in Events API envelopes.
        self.verification_token = "fake-verification-token"

        #: Messages the app posted with ``chat.postMessage``, kept current by ``chat.update``.
        self.messages: list[dict[str, Any]] = []
        #: One entry per ``chat.update``: channel, ts, the message before, and the new values.
        self.message_edits: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []
        #: Reaction names per ``(channel, ts)``, in the order they were added.
        self.reactions: dict[tuple[str, str], list[str]] = {}
        #: Files completed with ``files.completeUploadExternal``, with their bytes.
        self.uploads: list[dict[str, Any]] = []
        #: Every GET of a private file URL that was answered with the file or the sign-in page:
        #: ``{"file_id", "authorized"}`` (redirects are in :attr:`requests` only).
        self.downloads: list[dict[str, Any]] = []
        #: Files whose private URLs answer a 302 to the given URL instead of the file (see
        #: :meth:`redirect_download`).
        self.download_redirects: dict[str, str] = {}
        #: Bytes of file content written to downloads, per file id.
        self.download_bytes: dict[str, int] = {}
        #: JSON posted to response URLs, each with its ``response_id``.
        self.responses: list[dict[str, Any]] = []
        #: Socket Mode acknowledgements by envelope id.
        self.socket_acks: dict[str, dict[str, Any]] = {}
        #: Socket Mode envelopes sent to the app.
        self.envelopes: list[dict[str, Any]] = []
        #: Modals the app opened with ``views.open``, as Slack answered them (with ``id``), each
        #: with the ``user`` it was opened for.
        self.views: list[dict[str, Any]] = []
        #: Ids of the files deleted with ``files.delete``.
        self.deleted_files: list[str] = []
        #: Members of each channel described by :meth:`set_members`.
        self.members: dict[str, list[str]] = {}
        #: People of the workspace, as ``users.info`` answers them.
        self.people: dict[str, dict[str, Any]] = {}
        for user_id, (name, display, real) in DEFAULT_PEOPLE.items():
            self.add_person(user_id, name=name, display_name=display, real_name=real)
        #: When each trigger id was issued, and for whom; those exchanged for a modal.
        self._triggers: dict[str, tuple[float, str]] = {}
        self._exchanged: set[str] = set()

        self._store: dict[tuple[str, str], dict[str, Any]] = {}
        self._files: dict[str, _StoredFile] = {}
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._response_ids: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._stream_tasks: set[asyncio.Task[Any]] = set()
        self._last_ts_us = 0
        self._counter = itertools.count(1)
        self._methods: dict[str, tuple[ApiHandler, Callable[[dict[str, Any]], str | None]]] = {
            "auth.test": (self._auth_test, lambda _: None),
            "chat.postMessage": (self._chat_post_message, lambda _: "chat:write"),
            "chat.update": (self._chat_update, lambda _: "chat:write"),
            "chat.postEphemeral": (self._chat_post_ephemeral, lambda _: "chat:write"),
            "chat.getPermalink": (self._chat_get_permalink, lambda _: None),
            "reactions.add": (self._reactions_add, lambda _: "reactions:write"),
            "reactions.remove": (self._reactions_remove, lambda _: "reactions:write"),
            "files.info": (self._files_info, lambda _: "files:read"),
            "conversations.replies": (
                self._conversations_replies,
                lambda a: _history_scope(_text_arg(a, "channel") or ""),
            ),
            "files.getUploadURLExternal": (self._get_upload_url, lambda _: "files:write"),
            "files.completeUploadExternal": (self._complete_upload, lambda _: "files:write"),
            "apps.connections.open": (self._apps_connections_open, lambda _: None),
            "views.open": (self._views_open, lambda _: None),
            "conversations.members": (
                self._conversations_members,
                lambda a: _read_scope(_text_arg(a, "channel") or ""),
            ),
            "users.info": (self._users_info, lambda _: "users:read"),
            "files.delete": (self._files_delete, lambda _: "files:write"),
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_get("/files-pri/{key}/download/{name}", self._handle_download)
        app.router.add_get("/files-pri/{key}/{name}", self._handle_download)
        app.router.add_get("/files-edge/{key}/{name}", self._handle_download)
        app.router.add_post("/response/{response_id}", self._handle_response_url)
        app.router.add_get("/socket-mode", self._handle_socket)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)

    async def stop(self) -> None:
        """Close Socket Mode connections and cut streaming downloads first: the runner would
        otherwise wait for those handlers to finish on their own."""
        await self._close_sockets(code=WSCloseCode.GOING_AWAY)
        for task in list(self._stream_tasks):
            task.cancel()
        await super().stop()

    @property
    def api_url(self) -> str:
        """The Web API base URL, with its trailing slash, as the app's ``SLACK_API_URL``."""
        return f"{self.base_url}/api/"

    # -- ids and events ----------------------------------------------------------------------

    def next_ts(self) -> str:
        """A message timestamp: wall-clock based like Slack's, and strictly increasing."""
        self._last_ts_us = max(time.time_ns() // 1000, self._last_ts_us + 1)
        seconds, micros = divmod(self._last_ts_us, 1_000_000)
        return f"{seconds}.{micros:06d}"

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}0{next(self._counter):08d}"

    def message_event(
        self,
        *,
        files: list[dict[str, Any]] | None = None,
        channel: str = "C0GENERAL",
        user: str = "U0ALICE",
        text: str = "",
        ts: str | None = None,
        thread_ts: str | None = None,
        subtype: str | None = "file_share",
    ) -> dict[str, Any]:
        """A ``message`` event as Slack sends it, registered so ``conversations.replies`` and
        ``reactions.add`` find it like the real channel history would."""
        ts = ts or self.next_ts()
        event: dict[str, Any] = {"type": "message"}
        if subtype is not None:
            event["subtype"] = subtype
        event["text"] = text
        if files is not None:
            event["files"] = [dict(f) for f in files]
            event["upload"] = True
        event.update(
            {
                "user": user,
                "display_as_bot": False,
                "team": self.team_id,
                "ts": ts,
                "channel": channel,
                "channel_type": _channel_type(channel),
                "event_ts": ts,
                "client_msg_id": str(uuid.uuid4()),
            }
        )
        if text:
            event["blocks"] = [
                {
                    "type": "rich_text",
                    "block_id": uuid.uuid4().hex[:5],
                    "elements": [
                        {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                    ],
                }
            ]
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
            parent = self._store.get((channel, thread_ts))
            if parent is not None and "user" in parent:
                event["parent_user_id"] = parent["user"]
        stored = json.loads(json.dumps(event))
        stored.pop("channel_type", None)
        stored.pop("event_ts", None)
        self._store[(channel, ts)] = stored
        return event

    def file_shared_event(
        self, file: Mapping[str, Any], *, channel: str = "C0GENERAL", user: str = "U0ALICE"
    ) -> dict[str, Any]:
        """The ``file_shared`` event Slack sends beside the ``message`` for the same upload: only
        ids, so the bot must not treat it as a second job."""
        ts = self.next_ts()
        return {
            "type": "file_shared",
            "channel_id": channel,
            "file_id": file["id"],
            "user_id": user,
            "file": {"id": file["id"]},
            "event_ts": ts,
        }

    def event_callback(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        workspace: FakeWorkspace | None = None,
        org_wide: bool = False,
    ) -> dict[str, Any]:
        """The Events API envelope around ``event``, for HTTP mode bodies and Socket Mode: from
        ``workspace`` (the first one by default), to the app installed there or, ``org_wide``,
        in its organisation."""
        workspace = workspace or self.workspace
        context = {
            "et": event.get("type", ""),
            "tid": workspace.team_id,
            "aid": self.app_id,
            "cid": event.get("channel", event.get("channel_id", "")),
        }
        encoded = base64.urlsafe_b64encode(json.dumps(context).encode()).decode().rstrip("=")
        envelope: dict[str, Any] = {
            "token": self.verification_token,
            "team_id": workspace.team_id,
            "context_team_id": workspace.team_id,
            "context_enterprise_id": workspace.enterprise_id,
            "api_app_id": self.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or self._new_id("Ev"),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": workspace.enterprise_id,
                    # An organisation-wide install is authorized for no one workspace.
                    "team_id": None if org_wide else workspace.team_id,
                    "user_id": workspace.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": org_wide,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{encoded}",
        }
        if workspace.enterprise_id is not None:
            envelope["enterprise_id"] = workspace.enterprise_id
        return envelope

    def signed_headers(
        self,
        body: str,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        content_type: str = "application/json",
    ) -> dict[str, str]:
        """Headers Slack signs an HTTP-mode request with; pass an old ``timestamp`` or another
        ``secret`` to test rejection."""
        ts = int(time.time()) if timestamp is None else timestamp
        key = (self.signing_secret if secret is None else secret).encode()
        digest = hmac.new(key, f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        return {
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": f"v0={digest}",
            "Content-Type": content_type,
        }

    def response_url(self) -> str:
        """A fresh ``response_url`` as in slash command and shortcut payloads."""
        response_id = uuid.uuid4().hex
        self._response_ids.add(response_id)
        return f"{self.base_url}/response/{response_id}"

    # -- slash commands, shortcuts, mentions ------------------------------------------------

    def slash_command(
        self,
        text: str = "",
        *,
        command: str = "/transcribe",
        channel: str = "C0GENERAL",
        channel_name: str = "general",
        user: str = "U0ALICE",
        user_name: str = "alice",
    ) -> dict[str, str]:
        """The fields Slack sends for a slash command: the form of an HTTP-mode request, and the
        ``payload`` of a Socket Mode ``slash_commands`` envelope. Every value is a string, as in
        the form; ``response_url`` is a fresh one of this fake. ``text`` is what the person typed;
        it is sent encoded as Slack encodes it (the manifest asks for no other escaping)."""
        return {
            "token": self.verification_token,
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel,
            "channel_name": channel_name,
            "user_id": user,
            "user_name": user_name,
            "command": command,
            "text": slack_encoded(text),
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.response_url(),
            "trigger_id": self._trigger_id(user),
        }

    def ssl_check_body(self) -> str:
        """What Slack POSTs, unsigned, to a slash command's Request URL to check its certificate:
        ``ssl_check=1`` and the verification token, form-encoded."""
        return urlencode({"ssl_check": "1", "token": self.verification_token})

    def slash_command_body(self, text: str = "", **fields: Any) -> str:
        """An HTTP-mode slash command body (``application/x-www-form-urlencoded``); sign it with
        ``signed_headers(body, content_type=FORM_CONTENT_TYPE)``."""
        return urlencode(self.slash_command(text, **fields))

    def message_shortcut(
        self,
        channel: str,
        ts: str,
        *,
        callback_id: str = "transcribe_message",
        channel_name: str = "general",
        user: str = "U0ALICE",
        user_name: str = "alice",
    ) -> dict[str, Any]:
        """The ``message_action`` payload of a message shortcut run on a known message (one
        registered by :meth:`message_event` or posted by the app)."""
        stored = self._store.get((channel, ts))
        if stored is None:
            raise KeyError(f"no message {ts} in {channel}: register it with message_event first")
        message = {k: v for k, v in json.loads(json.dumps(stored)).items() if v is not None}
        message.pop("channel", None)
        return {
            "type": "message_action",
            "token": self.verification_token,
            "action_ts": self.next_ts(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {
                "id": user,
                "username": user_name,
                "team_id": self.team_id,
                "name": user_name,
            },
            "channel": {"id": channel, "name": channel_name},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self._trigger_id(user),
            "response_url": self.response_url(),
            "message_ts": ts,
            "message": message,
        }

    @staticmethod
    def interactive_body(payload: Mapping[str, Any]) -> str:
        """An HTTP-mode interactivity body: the payload as JSON in the ``payload`` form field."""
        return urlencode({"payload": json.dumps(payload)})

    def app_mention_event(
        self,
        text: str,
        *,
        channel: str = "C0GENERAL",
        user: str = "U0ALICE",
        ts: str | None = None,
        thread_ts: str | None = None,
    ) -> dict[str, Any]:
        """An ``app_mention`` event; ``text`` holds the mention as Slack encodes it
        (``<@U0BOT> …``, see :meth:`mention`). The message is registered in the channel's history
        like any other, so ``conversations.replies`` shows it."""
        message = self.message_event(
            channel=channel, user=user, text=text, ts=ts, thread_ts=thread_ts, subtype=None
        )
        event: dict[str, Any] = {
            "type": "app_mention",
            "user": user,
            "text": text,
            "ts": message["ts"],
            "team": self.team_id,
            "client_msg_id": message["client_msg_id"],
            "channel": channel,
            "event_ts": message["ts"],
        }
        if "blocks" in message:
            event["blocks"] = message["blocks"]
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
            if "parent_user_id" in message:
                event["parent_user_id"] = message["parent_user_id"]
        return event

    def mention(self, words: str = "") -> str:
        """Message text that mentions the app's bot user, followed by ``words``."""
        return f"<@{self.bot_user_id}> {words}".rstrip()

    def _trigger_id(self, user: str = "U0ALICE") -> str:
        trigger = f"{next(self._counter)}.{self.team_id}.{uuid.uuid4().hex}"
        self._triggers[trigger] = (time.monotonic(), user)
        return trigger

    def expire_triggers(self) -> None:
        """Let every trigger id issued so far pass its three seconds."""
        for trigger, (_, user) in self._triggers.items():
            self._triggers[trigger] = (time.monotonic() - TRIGGER_SECONDS - 1, user)

    # -- buttons and modals -----------------------------------------------------------------

    def block_action(
        self,
        channel: str,
        ts: str,
        action_id: str,
        *,
        user: str = "U0ALICE",
        user_name: str = "alice",
        channel_name: str = "general",
    ) -> dict[str, Any]:
        """The ``block_actions`` payload of ``user`` pressing the button ``action_id`` of the
        message at ``ts`` (one the app posted), as Slack sends it to the interactivity URL."""
        message = self._store.get((channel, ts))
        if message is None:
            raise KeyError(f"no message {ts} in {channel}")
        found = [
            (block, element)
            for block in message.get("blocks") or []
            if block.get("type") == "actions"
            for element in block.get("elements") or []
            if element.get("action_id") == action_id
        ]
        if not found:
            raise KeyError(f"the message {ts} has no button {action_id}")
        block, element = found[0]
        container: dict[str, Any] = {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        if message.get("thread_ts"):
            container["thread_ts"] = message["thread_ts"]
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user_name, "name": user_name, "team_id": self.team_id},
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "container": container,
            "trigger_id": self._trigger_id(user),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel, "name": channel_name},
            "message": self._render(message),
            "state": {"values": {}},
            "response_url": self.response_url(),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": block.get("block_id") or uuid.uuid4().hex[:5],
                    "text": element.get("text"),
                    "value": element.get("value"),
                    "type": element.get("type", "button"),
                    "action_ts": self.next_ts(),
                }
            ],
        }

    def view_submission(
        self,
        view_id: str,
        chosen: Mapping[str, str | None] | None = None,
        *,
        user: str | None = None,
        private_metadata: str | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The ``view_submission`` payload of a modal the app opened: each ``users_select``
        picker keeps its initial person unless ``chosen`` names another (None: cleared), by
        block id. ``user`` is the one it was opened for unless given; ``private_metadata`` and
        ``values`` replace what Slack would send, to forge a submission."""
        opened = next((view for view in self.views if view["id"] == view_id), None)
        if opened is None:
            raise KeyError(f"no view {view_id} was opened")
        state: dict[str, Any] = {}
        for block in opened.get("blocks") or []:
            element = block.get("element") or {}
            if block.get("type") != "input" or element.get("type") != "users_select":
                continue
            block_id = block["block_id"]
            person = element.get("initial_user")
            if chosen is not None and block_id in chosen:
                person = chosen[block_id]
            state[block_id] = {
                element["action_id"]: {"type": "users_select", "selected_user": person}
            }
        view = json.loads(json.dumps(opened))
        view.pop("user", None)
        view["state"] = {"values": dict(values) if values is not None else state}
        if private_metadata is not None:
            view["private_metadata"] = private_metadata
        submitter = user or opened["user"]
        return {
            "type": "view_submission",
            "team": {"id": self.team_id, "domain": self.team_domain},
            "user": {
                "id": submitter,
                "username": submitter.lower(),
                "name": submitter.lower(),
                "team_id": self.team_id,
            },
            "api_app_id": self.app_id,
            "token": self.verification_token,
            "trigger_id": self._trigger_id(submitter),
            "view": view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }

    # -- members and people ------------------------------------------------------------------

    def set_members(self, channel: str, users: list[str]) -> None:
        """Who is in ``channel`` (the bot user is added)."""
        self.members[channel] = [self.bot_user_id, *users]

    def members_of(self, channel: str) -> list[str] | None:
        """Who is in ``channel``; None for a channel Slack would not know."""
        if channel in self.members:
            return self.members[channel]
        if any(ch == channel for ch, _ in self._store):
            return [self.bot_user_id, *DEFAULT_MEMBERS]
        return None

    def add_person(
        self, user_id: str, *, name: str, display_name: str = "", real_name: str = ""
    ) -> None:
        """A person of the workspace, as ``users.info`` describes them."""
        self.people[user_id] = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "is_bot": False,
            "profile": {
                "real_name": real_name,
                "display_name": display_name,
                "real_name_normalized": real_name,
                "display_name_normalized": display_name,
                "team": self.team_id,
            },
        }

    # -- files -------------------------------------------------------------------------------

    def add_file(
        self,
        *,
        name: str = "memo.wav",
        mimetype: str = "audio/wav",
        filetype: str = "wav",
        content: bytes | None = None,
        size: int | None = None,
        file_id: str | None = None,
        user: str = "U0ALICE",
        stub: bool = False,
        extra: Mapping[str, Any] | None = None,
        workspace: FakeWorkspace | None = None,
    ) -> dict[str, Any]:
        """Host a private file of ``workspace`` (the first one by default) and return what a
        message event carries in ``files[]``.

        With only ``size``, the content is the streamed pattern (see :func:`pattern_chunks`);
        with neither, a short silent WAV. ``stub=True`` returns the Slack Connect stub while
        ``files.info`` keeps the full object. ``extra`` adds fields such as ``subtype`` or
        ``duration_ms`` of voice clips.
        """
        if content is None and size is None:
            content = silent_wav()
        if content is not None and size is not None and size != len(content):
            raise ValueError(f"size {size} does not match the {len(content)} bytes of content")
        total = len(content) if content is not None else int(size or 0)
        file_id = file_id or self._new_id("F")
        info = self._file_object(
            file_id=file_id,
            name=name,
            title=name,
            mimetype=mimetype,
            filetype=filetype,
            size=total,
            user=user,
        )
        if extra:
            info.update(extra)
        self._files[file_id] = _StoredFile(info=info, content=content, size=total)
        if workspace is not None:
            self._file_teams[file_id] = workspace.team_id
            info["user_team"] = workspace.team_id
        if stub:
            return {
                "id": file_id,
                "file_access": "check_file_info",
                "created": info["created"],
                "timestamp": info["timestamp"],
                "user": user,
            }
        return dict(info)

    def redirect_download(self, file_id: str, location: str | None = None) -> str:
        """Make the private URLs of ``file_id`` answer ``302 Found`` to ``location``, and return
        it. By default that is another of Slack's file hosts (here a path of this fake, which
        serves the file to the bot token as files.slack.com does); pass a URL elsewhere to have
        Slack send the download off its hosts, as a workspace's sign-in settings can."""
        if location is None:
            name = quote(self._files[file_id].info["name"], safe="")
            location = f"{self.base_url}/files-edge/{self.team_id}-{file_id}/{name}"
        self.download_redirects[file_id] = location
        return location

    def file_info(self, file_id: str) -> dict[str, Any]:
        """The full object ``files.info`` answers for ``file_id``."""
        return self._files[file_id].info

    def _file_object(
        self,
        *,
        file_id: str,
        name: str,
        title: str,
        mimetype: str,
        filetype: str,
        size: int,
        user: str,
    ) -> dict[str, Any]:
        if self.port == 0:
            raise RuntimeError("start the fake before adding files: their URLs need its port")
        now = int(time.time())
        quoted = quote(name, safe="")
        private = f"{self.base_url}/files-pri/{self.team_id}-{file_id}"
        return {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title,
            "mimetype": mimetype,
            "filetype": filetype,
            "pretty_type": _PRETTY_TYPES.get(filetype, filetype.upper()),
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": f"{private}/{quoted}",
            "url_private_download": f"{private}/download/{quoted}",
            "permalink": f"{self.base_url}/files/{user}/{file_id}/{quoted}",
            "is_starred": False,
            "has_rich_preview": False,
        }

    # -- Socket Mode -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return any(not ws.closed for ws in self._sockets)

    @property
    def connections(self) -> int:
        """Socket Mode connections open now (an app may open up to 10, and Slack spreads the
        envelopes over them)."""
        return sum(not ws.closed for ws in self._sockets)

    async def send_envelope(
        self,
        payload: dict[str, Any],
        *,
        type: str = "events_api",
        retry_attempt: int = 0,
        retry_reason: str = "",
        envelope_id: str | None = None,
        timeout: float = 10,
        connection: int | None = None,
    ) -> str:
        """Deliver ``payload`` over the newest Socket Mode connection, waiting for one to open;
        or over open connection number ``connection`` (in the order they opened, modulo how many
        are open), as Slack spreads envelopes over an app's connections."""
        await self.wait_for(lambda: self.connected, timeout)
        open_sockets = [ws for ws in self._sockets if not ws.closed]
        if connection is None:
            socket = open_sockets[-1]
        else:
            socket = open_sockets[connection % len(open_sockets)]
        envelope = {
            "envelope_id": envelope_id or str(uuid.uuid4()),
            "type": type,
            "payload": payload,
            "accepts_response_payload": type != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        await socket.send_json(envelope)
        self.envelopes.append(envelope)
        await self.notify()
        return str(envelope["envelope_id"])

    async def wait_for_ack(
        self,
        envelope_id: str,
        timeout: float = 10,
    ) -> dict[str, Any]:
        """The acknowledgement the app sent for ``envelope_id``, once it arrives."""
        ack: dict[str, Any] = await self.wait_for(
            lambda: self.socket_acks.get(envelope_id), timeout
        )
        return ack

    async def disconnect_all(self, reason: str = "refresh_requested") -> None:
        """Ask every client to reconnect, as Slack does every few hours, then close."""
        for socket in list(self._sockets):
            if not socket.closed:
                with suppress(ConnectionError, RuntimeError):
                    await socket.send_json(
                        {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
                    )
        await self._close_sockets(code=WSCloseCode.OK)

    async def _close_sockets(self, *, code: int) -> None:
        for socket in list(self._sockets):
            with suppress(ConnectionError, RuntimeError, asyncio.TimeoutError):
                await socket.close(code=code)
        await self.notify()

    # -- observation -------------------------------------------------------------------------

    def api_calls(self, method: str) -> list[RecordedRequest]:
        return self.requests_to(rf"^/api/{re.escape(method)}$")

    def api_args(self, method: str) -> list[dict[str, Any]]:
        """The arguments of each call to ``method``, query and body merged: the SDK sends most
        methods' arguments in the query string, a few (``chat.*``) as a JSON body."""
        merged: list[dict[str, Any]] = []
        for recorded in self.api_calls(method):
            args: dict[str, Any] = dict(recorded.query)
            if isinstance(recorded.body, dict):
                args.update(recorded.body)
            merged.append(args)
        return merged

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        """Any known message (posted, uploaded, or registered by :meth:`message_event`)."""
        return self._store.get((channel, ts))

    def replies_in(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Replies in a thread, oldest first, whoever posted them (file shares included)."""
        replies = [
            m
            for (ch, ts), m in self._store.items()
            if ch == channel and ts != thread_ts and m.get("thread_ts") == thread_ts
        ]
        return sorted(replies, key=lambda m: _ts_key(m["ts"]))

    def inject_rate_limit(self, method: str, *, retry_after: int = 1) -> Fault:
        """Answer the next call to ``method`` with Slack's 429."""
        return self.inject(
            rf"^/api/{re.escape(method)}$",
            status=429,
            body={"ok": False, "error": "ratelimited"},
            headers={"Retry-After": str(retry_after)},
        )

    # -- workspaces, tokens and OAuth --------------------------------------------------------

    def add_workspace(
        self,
        team_id: str,
        *,
        name: str | None = None,
        enterprise_id: str | None = None,
        enterprise_name: str | None = None,
        channels: Collection[str] = (),
    ) -> FakeWorkspace:
        """Another workspace (of organisation ``enterprise_id``, if given), with ``channels``
        and a bot of its own. The app is not installed there: install it through OAuth, or
        :meth:`issue_bot_token`."""
        if team_id in self.workspaces:
            raise ValueError(f"workspace {team_id} exists already")
        workspace = FakeWorkspace(
            team_id=team_id,
            name=name or f"Team {team_id}",
            domain=team_id.lower(),
            bot_user_id=f"U0BOT{team_id}",
            bot_id=f"B0BOT{team_id}",
            enterprise_id=enterprise_id,
            enterprise_name=enterprise_name or (enterprise_id and f"Org {enterprise_id}"),
            channels=set(channels),
        )
        self.workspaces[team_id] = workspace
        return workspace

    def workspace_of_channel(self, channel: str) -> FakeWorkspace:
        for workspace in self.workspaces.values():
            if channel in workspace.channels:
                return workspace
        return self.workspace

    def workspace_of_file(self, file_id: str) -> FakeWorkspace:
        return self.workspaces[self._file_teams.get(file_id, self.team_id)]

    def issue_bot_token(
        self, workspace: FakeWorkspace, *, expires_in: float | None = None, org: bool = False
    ) -> str:
        """A bot token for ``workspace`` (or, ``org``, its whole organisation), as an install
        would give, expiring after ``expires_in`` seconds if given."""
        rotating = expires_in is not None
        token = f"xoxe.xoxb-1-{uuid.uuid4().hex}" if rotating else f"xoxb-{uuid.uuid4().hex}"
        self._grants[token] = _Grant(
            "bot",
            workspace.enterprise_id,
            None if org else workspace.team_id,
            expires_at=time.time() + expires_in if expires_in is not None else None,
        )
        return token

    def expire_token(self, token: str) -> None:
        """``token`` expires now: the Web API answers it ``token_expired``."""
        self._grants[token].expires_at = time.time()

    def token_expires_at(self, token: str) -> float | None:
        return self._grants[token].expires_at

    def revoke_tokens(self, workspace: FakeWorkspace, *, org: bool = False) -> list[str]:
        """Revoke every token of ``workspace`` (or of its organisation's install), as an
        uninstall does; returns them."""
        team_id = None if org else workspace.team_id
        revoked = []
        for token, grant in self._grants.items():
            if grant.team_id == team_id and grant.enterprise_id == workspace.enterprise_id:
                grant.revoked = True
                revoked.append(token)
        return revoked

    def uninstall(
        self, workspace: FakeWorkspace, *, org: bool = False
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``workspace`` (or, ``org``, its organisation) removes the app, as Slack does it: every
        token of the install is revoked, and the app is sent a ``tokens_revoked`` (naming the
        bot's user) and an ``app_uninstalled`` envelope, returned for the test to deliver, in
        whichever order and as often as it likes."""
        self.revoke_tokens(workspace, org=org)
        revoked = {
            "type": "tokens_revoked",
            "tokens": {"oauth": [], "bot": [workspace.bot_user_id]},
            "event_ts": self.next_ts(),
        }
        uninstalled = {"type": "app_uninstalled", "event_ts": self.next_ts()}
        return (
            self.event_callback(revoked, workspace=workspace, org_wide=org),
            self.event_callback(uninstalled, workspace=workspace, org_wide=org),
        )

    def tokens_of(self, workspace: FakeWorkspace) -> list[str]:
        """The bot tokens that may act in ``workspace``, revoked and expired ones included."""
        return [
            token
            for token, grant in self._grants.items()
            if grant.kind == "bot" and grant.covers(workspace)
        ]

    def authorize(
        self,
        *,
        client_id: str,
        scope: str,
        redirect_uri: str | None = None,
        workspace: FakeWorkspace | None = None,
        user: str = "U0ALICE",
        org: bool = False,
    ) -> str:
        """Someone approves the app on Slack's authorize page, in ``workspace`` (for its whole
        organisation, with ``org``): the code the browser brings back to the redirect URL.

        Raises ValueError for what the authorize page itself refuses: an unknown client id, a
        redirect URL the app does not list, an organisation-wide install of a workspace
        outside any organisation."""
        if client_id != self.client_id:
            raise ValueError("invalid_client_id")
        if (
            redirect_uri is not None
            and self.redirect_urls
            and not any(_redirect_allowed(redirect_uri, allowed) for allowed in self.redirect_urls)
        ):
            raise ValueError("bad_redirect_uri")
        workspace = workspace or self.workspace
        if org and workspace.enterprise_id is None:
            raise ValueError("not_an_enterprise")
        code = f"{next(self._counter)}.{uuid.uuid4().hex}"
        self._codes[code] = _Code(
            install={
                "workspace": workspace,
                "user": user,
                "org": org,
                "scope": ",".join(s for s in re.split(r"[ ,]+", scope) if s),
            },
            redirect_uri=redirect_uri,
            expires_at=time.time() + CODE_SECONDS,
        )
        return code

    async def _handle_authorize(self, request: web.Request) -> web.StreamResponse:
        """Slack's authorize page, approved at once by :attr:`approver`: a redirect to the
        app's redirect URL with the code and the ``state`` the app gave (Slack's
        ``/oauth/v2/authorize``; a ``team`` query parameter picks the workspace)."""
        query = request.query
        redirect_uri = query.get("redirect_uri") or (
            self.redirect_urls[0] if self.redirect_urls else None
        )
        team_id = query.get("team") or self.approver["team_id"]
        workspace = self.workspaces.get(team_id)
        if redirect_uri is None or workspace is None:
            return web.Response(status=400, text="invalid request", content_type="text/plain")
        try:
            code = self.authorize(
                client_id=query.get("client_id", ""),
                scope=query.get("scope", ""),
                redirect_uri=query.get("redirect_uri"),
                workspace=workspace,
                user=self.approver["user"],
                org=bool(self.approver["org"]),
            )
        except ValueError as exc:
            return web.Response(status=400, text=str(exc), content_type="text/plain")
        back = {"code": code, "state": query.get("state", "")}
        return web.Response(status=302, headers={"Location": _with_query(redirect_uri, back)})

    def _oauth_v2_access(self, request: web.Request, args: dict[str, Any]) -> dict[str, Any]:
        client_id, client_secret = _basic_auth(request) or (
            _text_arg(args, "client_id"),
            _text_arg(args, "client_secret"),
        )
        if client_id != self.client_id:
            return {"ok": False, "error": "invalid_client_id"}
        if client_secret != self.client_secret:
            return {"ok": False, "error": "bad_client_secret"}
        grant_type = _text_arg(args, "grant_type") or "authorization_code"
        if grant_type == "refresh_token":
            return self._refresh(_text_arg(args, "refresh_token") or "")
        if grant_type != "authorization_code":
            return {"ok": False, "error": "invalid_grant_type"}
        code = self._codes.get(_text_arg(args, "code") or "")
        if code is None or code.used or code.expires_at <= time.time():
            return {"ok": False, "error": "invalid_code"}
        if code.redirect_uri is not None and _text_arg(args, "redirect_uri") != code.redirect_uri:
            return {"ok": False, "error": "bad_redirect_uri"}
        code.used = True
        return self._grant_install(code.install, "authorization_code")

    def _refresh(self, refresh_token: str) -> dict[str, Any]:
        grant = self._grants.get(refresh_token)
        if grant is None or grant.kind != "refresh" or grant.revoked or grant.install is None:
            return {"ok": False, "error": "invalid_refresh_token"}
        # Each refresh token is good for one refresh: the answer carries the next one.
        grant.revoked = True
        return self._grant_install(grant.install, "refresh_token")

    def _grant_install(self, install: dict[str, Any], grant_type: str) -> dict[str, Any]:
        workspace: FakeWorkspace = install["workspace"]
        org: bool = install["org"]
        team_id = None if org else workspace.team_id
        answer: dict[str, Any] = {
            "ok": True,
            "app_id": self.app_id,
            "authed_user": {"id": install["user"]},
            "scope": install["scope"],
            "token_type": "bot",
            "bot_user_id": workspace.bot_user_id,
            "team": None if org else {"id": workspace.team_id, "name": workspace.name},
            "enterprise": (
                {"id": workspace.enterprise_id, "name": workspace.enterprise_name}
                if workspace.enterprise_id is not None
                else None
            ),
            "is_enterprise_install": org,
        }
        if self.token_rotation:
            token = f"xoxe.xoxb-1-{uuid.uuid4().hex}"
            refresh = f"xoxe-1-{uuid.uuid4().hex}"
            expires_at = time.time() + self.token_lifetime_seconds
            self._grants[token] = _Grant("bot", workspace.enterprise_id, team_id, expires_at)
            self._grants[refresh] = _Grant(
                "refresh", workspace.enterprise_id, team_id, install=install
            )
            answer |= {
                "access_token": token,
                "refresh_token": refresh,
                "expires_in": self.token_lifetime_seconds,
            }
        else:
            token = f"xoxb-{uuid.uuid4().hex}"
            self._grants[token] = _Grant("bot", workspace.enterprise_id, team_id)
            answer["access_token"] = token
        self.oauth_exchanges.append(
            {
                "grant_type": grant_type,
                "team_id": team_id,
                "enterprise_id": workspace.enterprise_id,
                "access_token": token,
                "refresh_token": answer.get("refresh_token"),
            }
        )
        return answer

    def _refusal(self, grant: _Grant | None, method: str, args: dict[str, Any]) -> str | None:
        """Slack's error for a bot token that may not make this call; None when it may."""
        if grant is None or grant.kind != "bot":
            return "invalid_auth"
        if grant.revoked:
            return "token_revoked"
        if grant.expires_at is not None and grant.expires_at <= time.time():
            return "token_expired"
        channels = _text_arg(args, "channels")
        channel = (
            _text_arg(args, "channel")
            or _text_arg(args, "channel_id")
            or (channels.split(",")[0] if channels else None)
        )
        if channel is not None and not grant.covers(self.workspace_of_channel(channel)):
            return "channel_not_found"
        file_id = _text_arg(args, "file")
        known = method.startswith("files.") and file_id is not None and file_id in self._files
        if known and not grant.covers(self.workspace_of_file(file_id or "")):
            return "file_not_found"
        return None

    def _caller_workspace(self) -> FakeWorkspace:
        """The workspace whose bot makes the call being answered (for an organisation-wide
        token, the first workspace of its organisation)."""
        grant = _CALLER.get()
        if grant is None:
            return self.workspace
        if grant.team_id is not None:
            return self.workspaces[grant.team_id]
        return next(w for w in self.workspaces.values() if grant.covers(w))

    def _may_download(self, token: str | None, file_id: str) -> bool:
        grant = self._grants.get(token or "")
        return (
            grant is not None
            and grant.kind == "bot"
            and not grant.revoked
            and (grant.expires_at is None or grant.expires_at > time.time())
            and grant.covers(self.workspace_of_file(file_id))
            and "files:read" in self.scopes
        )

    # -- Web API -----------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        try:
            args = await self._read_args(request)
        except _SlackError as exc:
            return web.json_response(exc.body)
        if method == "oauth.v2.access":
            return web.json_response(self._oauth_v2_access(request, args))
        entry = self._methods.get(method)
        if entry is None:
            return web.json_response({"ok": False, "error": "unknown_method", "req_method": method})
        handler, scope_of = entry

        token = self._bearer(request) or _text_arg(args, "token")
        args.pop("token", None)
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        grant = self._grants.get(token)
        if method == "apps.connections.open" or token == self.app_token:
            if token != self.app_token or method != "apps.connections.open":
                error = "not_allowed_token_type" if grant or token == self.app_token else None
                return web.json_response({"ok": False, "error": error or "invalid_auth"})
        else:
            refused = self._refusal(grant, method, args)
            if refused is not None:
                return web.json_response({"ok": False, "error": refused})
        _CALLER.set(grant)

        headers: dict[str, str] = {}
        if grant is not None:
            headers["x-oauth-scopes"] = ",".join(self.scopes)
        needed = scope_of(args)
        if needed is not None:
            headers["x-accepted-oauth-scopes"] = needed
            if needed not in self.scopes:
                body: dict[str, Any] = {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": needed,
                    "provided": ",".join(self.scopes),
                }
                return web.json_response(body, headers=headers)
        try:
            body = await handler(args)
        except _SlackError as exc:
            body = exc.body
        return web.json_response(body, headers=headers)

    @staticmethod
    def _bearer(request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    @staticmethod
    async def _read_args(request: web.Request) -> dict[str, Any]:
        """Query string merged with a form or JSON body, the ways Slack accepts arguments."""
        args: dict[str, Any] = dict(request.query)
        if not request.body_exists:
            return args
        if request.content_type == "application/json":
            raw = await request.read()
            if raw.strip():
                try:
                    data = json.loads(raw)
                except ValueError:
                    raise _SlackError("invalid_json") from None
                if not isinstance(data, dict):
                    raise _SlackError("invalid_json")
                args.update(data)
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
        return args

    async def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        grant = _CALLER.get()
        workspace = self._caller_workspace()
        answer: dict[str, Any] = {
            "ok": True,
            "url": f"{self.base_url}/",
            "team": workspace.name,
            "user": "threadscribe",
            "team_id": workspace.team_id,
            "user_id": workspace.bot_user_id,
            "bot_id": workspace.bot_id,
            "is_enterprise_install": grant is not None and grant.team_id is None,
        }
        if workspace.enterprise_id is not None:
            answer["enterprise_id"] = workspace.enterprise_id
        return answer

    async def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _text_arg(args, "channel")
        if channel is None:
            raise _SlackError("channel_not_found")
        text = _text_arg(args, "text") or _text_arg(args, "markdown_text")
        blocks = _validate_blocks(_json_arg(args, "blocks", "invalid_blocks_format"))
        attachments = _json_arg(args, "attachments", "invalid_attachments")
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        if text is not None and len(text) > MAX_TEXT_CHARS:
            raise _SlackError("msg_too_long")
        metadata = _validate_metadata(_json_arg(args, "metadata", "invalid_metadata_format"))
        thread_ts = _text_arg(args, "thread_ts")
        ts = self.next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "ts": ts,
            "channel": channel,
            "text": text or "",
            "blocks": blocks,
            "attachments": attachments,
            "thread_ts": thread_ts,
            "metadata": metadata,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
        }
        if thread_ts is not None and _flag_arg(args, "reply_broadcast"):
            message["subtype"] = "thread_broadcast"
        self.messages.append(message)
        self._store[(channel, ts)] = message
        await self.notify()
        return {"ok": True, "channel": channel, "ts": ts, "message": self._render(message)}

    async def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _text_arg(args, "channel")
        ts = _text_arg(args, "message_ts")
        if channel is None:
            raise _SlackError("channel_not_found")
        message = self._store.get((channel, ts or ""))
        if message is None or ts is None:
            raise _SlackError("message_not_found")
        link = f"{self.permalink_base}/archives/{channel}/p{ts.replace('.', '')}"
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": link}

    async def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _text_arg(args, "channel")
        ts = _text_arg(args, "ts")
        if channel is None:
            raise _SlackError("channel_not_found")
        message = self._store.get((channel, ts or ""))
        if message is None:
            raise _SlackError("message_not_found")
        if message.get("bot_id") != self.bot_id:
            raise _SlackError("cant_update_message")
        text = _text_arg(args, "text") or _text_arg(args, "markdown_text")
        blocks = _validate_blocks(_json_arg(args, "blocks", "invalid_blocks_format"))
        if not text and blocks is None and "attachments" not in args:
            raise _SlackError("no_text")
        if text is not None and len(text) > MAX_TEXT_CHARS:
            raise _SlackError("msg_too_long")
        metadata = _validate_metadata(_json_arg(args, "metadata", "invalid_metadata_format"))
        previous = json.loads(json.dumps(message))
        if text is not None:
            message["text"] = text
        if blocks is not None:
            message["blocks"] = blocks
        if metadata is not None:
            message["metadata"] = metadata
        message["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
        self.message_edits.append(
            {
                "channel": channel,
                "ts": message["ts"],
                "previous": previous,
                "text": text,
                "blocks": blocks,
            }
        )
        await self.notify()
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": self._render(message),
        }

    async def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _text_arg(args, "channel")
        user = _text_arg(args, "user")
        if channel is None:
            raise _SlackError("channel_not_found")
        if user is None:
            raise _SlackError("user_not_in_channel")
        text = _text_arg(args, "text") or _text_arg(args, "markdown_text")
        blocks = _validate_blocks(_json_arg(args, "blocks", "invalid_blocks_format"))
        if not text and not blocks:
            raise _SlackError("no_text")
        message_ts = self.next_ts()
        self.ephemerals.append(
            {
                "channel": channel,
                "user": user,
                "text": text or "",
                "blocks": blocks,
                "thread_ts": _text_arg(args, "thread_ts"),
                "message_ts": message_ts,
            }
        )
        await self.notify()
        return {"ok": True, "message_ts": message_ts}

    def _reaction_target(self, args: dict[str, Any]) -> tuple[tuple[str, str], str]:
        channel = _text_arg(args, "channel")
        ts = _text_arg(args, "timestamp")
        if channel is None:
            raise _SlackError("channel_not_found")
        if ts is None or (channel, ts) not in self._store:
            raise _SlackError("message_not_found")
        name = (_text_arg(args, "name") or "").strip(":")
        if not name:
            raise _SlackError("invalid_name")
        return (channel, ts), name

    async def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        key, name = self._reaction_target(args)
        names = self.reactions.setdefault(key, [])
        if name in names:
            raise _SlackError("already_reacted")
        names.append(name)
        await self.notify()
        return {"ok": True}

    async def _reactions_remove(self, args: dict[str, Any]) -> dict[str, Any]:
        key, name = self._reaction_target(args)
        names = self.reactions.get(key, [])
        if name not in names:
            raise _SlackError("no_reaction")
        names.remove(name)
        await self.notify()
        return {"ok": True}

    async def _files_info(self, args: dict[str, Any]) -> dict[str, Any]:
        stored = self._files.get(_text_arg(args, "file") or "")
        if stored is None:
            raise _SlackError("file_not_found")
        return {
            "ok": True,
            "file": json.loads(json.dumps(stored.info)),
            "comments": [],
            "response_metadata": {"next_cursor": ""},
        }

    async def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _text_arg(args, "channel")
        ts = _text_arg(args, "ts")
        if channel is None:
            raise _SlackError("channel_not_found")
        if ts is None:
            raise _SlackError("thread_not_found")
        # ``ts`` may name a reply: Slack then answers the whole thread it belongs to.
        named = self._store.get((channel, ts))
        root = ts
        if named is not None and named.get("thread_ts") and named["thread_ts"] != ts:
            root = named["thread_ts"]
        parent = self._store.get((channel, root))
        replies = self.replies_in(channel, root)
        if parent is None and not replies:
            raise _SlackError("thread_not_found")

        try:
            limit = int(args.get("limit") or 1000)
        except ValueError:
            raise _SlackError("invalid_limit") from None
        limit = max(1, min(limit, 1000))
        thread: list[dict[str, Any]] = ([parent] if parent is not None else []) + replies
        cursor = _text_arg(args, "cursor")
        start = 0
        if cursor is not None:
            try:
                next_ts = base64.b64decode(cursor).decode().removeprefix("next_ts:")
            except ValueError:
                raise _SlackError("invalid_cursor") from None
            start = next(
                (i for i, m in enumerate(thread) if _ts_key(m["ts"]) >= _ts_key(next_ts)),
                len(thread),
            )
        page = thread[start : start + limit]
        with_metadata = _flag_arg(args, "include_all_metadata")
        answer: dict[str, Any] = {
            "ok": True,
            "messages": [
                self._render(m, metadata=with_metadata, replies=replies if m is parent else None)
                for m in page
            ],
            "has_more": start + limit < len(thread),
        }
        if answer["has_more"]:
            following = thread[start + limit]["ts"]
            answer["response_metadata"] = {
                "next_cursor": base64.b64encode(f"next_ts:{following}".encode()).decode()
            }
        return answer

    def _render(
        self,
        message: dict[str, Any],
        *,
        metadata: bool = True,
        replies: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A message as the Web API shows it: no empty fields, no ``channel``, reactions and
        thread counters filled in, ``metadata`` only when asked for."""
        rendered = {k: v for k, v in json.loads(json.dumps(message)).items() if v is not None}
        rendered.pop("channel", None)
        if not metadata:
            rendered.pop("metadata", None)
        names = self.reactions.get((message.get("channel", ""), message["ts"]))
        if names:
            rendered["reactions"] = [
                {"name": n, "users": [self.bot_user_id], "count": 1} for n in names
            ]
        if replies:
            users = list(dict.fromkeys(r.get("user", "") for r in replies))
            rendered.update(
                {
                    "thread_ts": message["ts"],
                    "reply_count": len(replies),
                    "reply_users_count": len(users),
                    "latest_reply": replies[-1]["ts"],
                    "reply_users": users,
                    "is_locked": False,
                    "subscribed": False,
                }
            )
        return rendered

    async def _get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = _text_arg(args, "filename")
        length = _text_arg(args, "length")
        if filename is None or length is None or not length.isdigit():
            raise _SlackError("invalid_arguments")
        file_id = self._new_id("F")
        self._pending_uploads[file_id] = {
            "filename": filename,
            "length": int(length),
            "alt_txt": _text_arg(args, "alt_txt"),
            "snippet_type": _text_arg(args, "snippet_type"),
            "content": None,
        }
        await self.notify()
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    async def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = _json_arg(args, "files", "invalid_arguments")
        if not isinstance(entries, list) or not entries:
            raise _SlackError("invalid_arguments")
        pending: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise _SlackError("invalid_arguments")
            upload = self._pending_uploads.get(entry["id"])
            if upload is None or upload["content"] is None:
                raise _SlackError("file_not_found")
            pending.append((entry, upload))

        channels = _text_arg(args, "channels")
        channel = _text_arg(args, "channel_id") or (channels.split(",")[0] if channels else None)
        thread_ts = _text_arg(args, "thread_ts")
        comment = _text_arg(args, "initial_comment")
        share_ts = self.next_ts() if channel is not None else None
        completed: list[dict[str, Any]] = []
        for entry, upload in pending:
            file_id = entry["id"]
            filename = upload["filename"]
            content: bytes = upload["content"]
            extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
            info = self._file_object(
                file_id=file_id,
                name=filename,
                title=entry.get("title") or filename,
                mimetype=mimetypes.guess_type(filename)[0] or "application/octet-stream",
                filetype=_FILETYPES_BY_EXTENSION.get(extension, extension or "binary"),
                size=len(content),
                user=self._caller_workspace().bot_user_id,
            )
            if channel is not None and share_ts is not None:
                share: dict[str, Any] = {
                    "ts": share_ts,
                    "channel_name": channel,
                    "team_id": self.team_id,
                }
                if thread_ts is not None:
                    share["thread_ts"] = thread_ts
                visibility = "private" if channel.startswith(("G", "D")) else "public"
                info["shares"] = {visibility: {channel: [share]}}
                info["channels"] = [channel]
            self._files[file_id] = _StoredFile(info=info, content=content, size=len(content))
            self._file_teams[file_id] = self._caller_workspace().team_id
            del self._pending_uploads[file_id]
            self.uploads.append(
                {
                    "id": file_id,
                    "title": info["title"],
                    "filename": filename,
                    "content": content,
                    "channel_id": channel,
                    "thread_ts": thread_ts,
                    "initial_comment": comment,
                }
            )
            completed.append(info)
        if channel is not None and share_ts is not None:
            # Slack shows the shared files as a message from the app in the channel or thread.
            self._store[(channel, share_ts)] = {
                "type": "message",
                "ts": share_ts,
                "channel": channel,
                "text": comment or "",
                "files": [json.loads(json.dumps(f)) for f in completed],
                "upload": True,
                "user": self.bot_user_id,
                "bot_id": self.bot_id,
                "display_as_bot": False,
                "thread_ts": thread_ts,
            }
        await self.notify()
        return {"ok": True, "files": [json.loads(json.dumps(f)) for f in completed]}

    async def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = _text_arg(args, "trigger_id") or _text_arg(args, "interactivity_pointer")
        issued = self._triggers.get(trigger or "")
        if trigger is None or issued is None:
            raise _SlackError(
                "invalid_arguments", response_metadata={"messages": ["invalid `trigger_id`"]}
            )
        if trigger in self._exchanged:
            raise _SlackError("exchanged_trigger_id")
        if time.monotonic() - issued[0] > TRIGGER_SECONDS:
            raise _SlackError("expired_trigger_id")
        view = _json_arg(args, "view", "invalid_arguments")
        problems = _view_problems(view)
        if problems:
            raise _SlackError(
                "invalid_arguments",
                response_metadata={"messages": [f"[ERROR] {p}" for p in problems]},
            )
        self._exchanged.add(trigger)
        view_id = self._new_id("V")
        opened = {
            "id": view_id,
            "team_id": self.team_id,
            **json.loads(json.dumps(view)),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": self.app_id,
            "external_id": view.get("external_id", ""),
            "bot_id": self.bot_id,
        }
        opened.setdefault("private_metadata", "")
        opened.setdefault("callback_id", "")
        self.views.append({**opened, "user": issued[1]})
        await self.notify()
        return {"ok": True, "view": opened}

    async def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _text_arg(args, "channel")
        members = self.members_of(channel or "")
        if members is None:
            raise _SlackError("channel_not_found")
        try:
            limit = int(args.get("limit") or 100)
        except ValueError:
            raise _SlackError("invalid_limit") from None
        limit = max(1, min(limit, MAX_MEMBERS_PAGE))
        cursor = _text_arg(args, "cursor")
        start = 0
        if cursor is not None:
            try:
                start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
            except ValueError:
                raise _SlackError("invalid_cursor") from None
        page = members[start : start + limit]
        following = start + limit if start + limit < len(members) else None
        next_cursor = base64.b64encode(f"offset:{following}".encode()).decode() if following else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": next_cursor}}

    async def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        person = self.people.get(_text_arg(args, "user") or "")
        if person is None:
            raise _SlackError("user_not_found")
        return {"ok": True, "user": json.loads(json.dumps(person))}

    async def _files_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        file_id = _text_arg(args, "file") or ""
        if file_id in self.deleted_files:
            raise _SlackError("file_deleted")
        stored = self._files.get(file_id)
        if stored is None:
            raise _SlackError("file_not_found")
        if stored.info.get("user") != self._caller_workspace().bot_user_id:
            raise _SlackError("cant_delete_file")
        del self._files[file_id]
        self.deleted_files.append(file_id)
        # The file leaves the message that shared it, and a message left empty goes too.
        for key, message in list(self._store.items()):
            files = message.get("files")
            if not files or not any(f.get("id") == file_id for f in files):
                continue
            message["files"] = [f for f in files if f.get("id") != file_id]
            if not message["files"] and not message.get("text"):
                del self._store[key]
        await self.notify()
        return {"ok": True}

    def files_in_thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The files shared in a thread and not deleted, oldest first, each with its bytes."""
        found = []
        for message in self.replies_in(channel, thread_ts):
            for file in message.get("files") or []:
                stored = self._files.get(file.get("id", ""))
                if stored is not None:
                    found.append({**file, "content": stored.content})
        return found

    async def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket-mode"}

    # -- other routes ------------------------------------------------------------------------

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        """The ``upload_url`` target. slack_sdk's async ``files_upload_v2`` POSTs the raw bytes
        (``data=bytes``, no token); a multipart body with a file part is accepted as well."""
        upload = self._pending_uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        content: bytes | None = None
        if request.content_type == "multipart/form-data":
            reader = await request.multipart()
            async for part in reader:
                if isinstance(part, BodyPartReader) and (part.filename or part.name == "file"):
                    content = bytes(await part.read(decode=False))
                    break
            if content is None:
                return web.Response(status=400, text="no file", content_type="text/plain")
        else:
            content = await request.read()
        upload["content"] = content
        await self.notify()
        return web.Response(text=f"OK - {len(content)}", content_type="text/plain")

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["key"].partition("-")[2]
        stored = self._files.get(file_id)
        if stored is None:
            return web.Response(status=404, text=NOT_FOUND_PAGE, content_type="text/html")
        redirect = self.download_redirects.get(file_id)
        if redirect is not None and request.path.startswith("/files-pri/"):
            return web.Response(status=302, headers={"Location": redirect})
        authorized = self._may_download(self._bearer(request), file_id)
        self.downloads.append({"file_id": file_id, "authorized": authorized})
        await self.notify()
        if not authorized:
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html")

        start, end, status = 0, stored.size, 200
        headers = {"Accept-Ranges": "bytes"}
        requested = request.headers.get("Range")
        if requested is not None:
            parsed = _parse_range(requested, stored.size)
            if parsed is None:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{stored.size}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{stored.size}"
        response = web.StreamResponse(status=status, headers=headers)
        response.content_type = stored.info["mimetype"]
        response.content_length = end - start
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        task = asyncio.current_task()
        if task is not None:
            self._stream_tasks.add(task)
        try:
            for chunk in stored.chunks(start, end):
                await response.write(chunk)
                self.download_bytes[file_id] = self.download_bytes.get(file_id, 0) + len(chunk)
        finally:
            if task is not None:
                self._stream_tasks.discard(task)
        await response.write_eof()
        return response

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        response_id = request.match_info["response_id"]
        if response_id not in self._response_ids:
            return web.Response(status=404, text="expired_url", content_type="text/plain")
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        if not isinstance(payload, dict):
            return web.Response(status=400, text="invalid_payload", content_type="text/plain")
        self.responses.append({"response_id": response_id, **payload})
        await self.notify()
        return web.json_response({"ok": True})

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        socket = web.WebSocketResponse(autoping=True, timeout=2.0)
        await socket.prepare(request)
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": 1 + sum(not ws.closed for ws in self._sockets),
                "debug_info": {
                    "host": "fake",
                    "started": started,
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        self._sockets.append(socket)
        await self.notify()
        try:
            async for frame in socket:
                if frame.type is WSMsgType.TEXT:
                    await self._on_socket_text(frame.data)
        finally:
            with suppress(ValueError):
                self._sockets.remove(socket)
            await self.notify()
        return socket

    async def _on_socket_text(self, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            return
        if isinstance(message, dict) and isinstance(message.get("envelope_id"), str):
            self.socket_acks[message["envelope_id"]] = message
            await self.notify()
