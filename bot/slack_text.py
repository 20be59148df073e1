"""Text on its way into Slack: the one place where words from outside are made harmless.

File names, link texts, transcripts, provider messages and whatever a person typed after
``/transcribe`` are hostile. Slack parses a message's ``text``, its mrkdwn blocks and every
``response_url`` answer as mrkdwn, where ``<!channel>`` notifies a whole channel, ``<@U…>`` pings
someone and ``<https://…|label>`` shows one address while linking to another.

So the Slack gateway (:mod:`bot.slack_api`) and the command answers take only :class:`Mrkdwn`,
which only this module makes: :func:`escape` for text from outside, :func:`mrkdwn` to fill a
template written in this code base with escaped values, and :func:`link` and :func:`mention` for
the few control sequences the app means to send. mypy then refuses any f-string or other plain
``str`` that would bypass them. Fields Slack shows as they are (file names and titles) take
:class:`PlainText` from :func:`plain`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any, LiteralString, NewType
from urllib.parse import quote


class _Seal:
    """Held only by this module: the constructors below refuse text made anywhere else."""


_SEAL = _Seal()


class Mrkdwn(str):
    """Text fit for a mrkdwn field: anything from outside in it has been escaped, and the only
    control sequences are those :func:`link` and :func:`mention` made."""

    __slots__ = ()

    def __new__(cls, text: str, seal: _Seal) -> Mrkdwn:
        if seal is not _SEAL:
            raise TypeError("Mrkdwn is made by bot.slack_text's functions, not directly")
        return super().__new__(cls, text)


class PlainText(str):
    """Text for a field Slack shows as it is (a file's name or title): it cannot hold a control
    sequence, whether or not Slack looks for one there."""

    __slots__ = ()

    def __new__(cls, text: str, seal: _Seal) -> PlainText:
        if seal is not _SEAL:
            raise TypeError("PlainText is made by bot.slack_text.plain, not directly")
        return super().__new__(cls, text)


#: A Block Kit block whose text fields are :class:`Mrkdwn` or :class:`PlainText`; made by the
#: functions below.
Block = NewType("Block", dict[str, Any])
#: A modal's view, made by :func:`modal` from such blocks.
View = NewType("View", dict[str, Any])


# -- making Mrkdwn -------------------------------------------------------------------------------


def escape(text: str) -> Mrkdwn:
    """``text`` shown as it is: ``&``, ``<`` and ``>`` become the entities Slack asks for.
    Text that already is :class:`Mrkdwn` comes back unchanged, so nothing is escaped twice."""
    if isinstance(text, Mrkdwn):
        return text
    return Mrkdwn(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"), _SEAL)


_ENTITY = re.compile(r"&(amp|lt|gt);")
_DECODED = {"amp": "&", "lt": "<", "gt": ">"}


def unescape(text: str) -> str:
    """Text as the person typed it, from text as Slack sends it (``&``, ``<`` and ``>`` as
    entities, nothing else encoded); the reverse of :func:`escape`, done once."""
    return _ENTITY.sub(lambda match: _DECODED[match.group(1)], text)


class _EscapingFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if isinstance(value, Mrkdwn):
            return format(str(value), format_spec)
        return escape(format(value, format_spec))


_FORMATTER = _EscapingFormatter()
#: ``&`` in a template must start one of the three entities; ``<`` and ``>`` may not appear at all.
_BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def _checked(template: str) -> str:
    if "<" in template or ">" in template or _BARE_AMPERSAND.search(template):
        raise ValueError(
            "a mrkdwn template writes <, > and & as &lt;, &gt; and &amp;; control sequences come "
            f"from link() and mention(): {template[:80]!r}"
        )
    return template


def mrkdwn(template: LiteralString, /, *args: object, **kwargs: object) -> Mrkdwn:
    """Fill ``template`` (mrkdwn written in this code base, ``str.format`` syntax) with ``args``
    and ``kwargs``, each escaped unless it already is :class:`Mrkdwn`."""
    return Mrkdwn(_FORMATTER.vformat(_checked(template), args, kwargs), _SEAL)


def join(separator: LiteralString, parts: Iterable[str]) -> Mrkdwn:
    """``separator.join(parts)`` with every part escaped unless it already is :class:`Mrkdwn`."""
    return Mrkdwn(_checked(separator).join(escape(part) for part in parts), _SEAL)


_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")


def mention(user_id: str) -> Mrkdwn:
    """``<@U…>`` for a Slack user id; anything else is shown as text, never as a mention."""
    if _USER_ID.fullmatch(user_id):
        return Mrkdwn(f"<@{user_id}>", _SEAL)
    return escape(user_id)


#: Characters that would end a link's address or start its label: percent-encoded.
_URL_UNSAFE = re.compile(r"[\s<>|\"`\x00-\x1f\x7f]")


def link(url: str, label: str) -> Mrkdwn:
    """``<url|label>``: ``label`` shown, ``url`` followed. Nothing in either can end the link
    early or start another; an address that is not http(s) is shown as text, not linked."""
    if not url.lower().startswith(("http://", "https://")):
        return escape(f"{label} ({url})")
    address = _URL_UNSAFE.sub(lambda match: quote(match.group(), safe=""), url)
    shown = " ".join(label.split()) or address
    return Mrkdwn(f"<{address.replace('&', '&amp;')}|{escape(shown)}>", _SEAL)


# -- cutting Mrkdwn ------------------------------------------------------------------------------


def _safe_cut(text: str, at: int) -> int:
    """``at``, or earlier so that the cut does not split an entity or a ``<…>`` sequence."""
    if at >= len(text):
        return len(text)
    opened = text.rfind("<", 0, at)
    if opened > text.rfind(">", 0, at):
        at = opened
    ampersand = text.rfind("&", max(0, at - 4), at)
    if ampersand >= 0 and ";" not in text[ampersand:at]:
        at = ampersand
    return at


def truncate(text: Mrkdwn, limit: int) -> Mrkdwn:
    """At most ``limit`` characters of ``text``, never ending halfway through an entity."""
    if len(text) <= limit:
        return text
    return Mrkdwn(text[: _safe_cut(text, limit)], _SEAL)


def split(text: Mrkdwn, limit: int) -> list[Mrkdwn]:
    """``text`` in pieces of at most ``limit`` characters, cut at paragraph breaks, else at
    spaces, else wherever no entity is split."""
    pieces: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            pieces.append(current)
        while len(paragraph) > limit:
            cut = paragraph.rfind(" ", 0, limit)
            cut = cut if cut > 0 else _safe_cut(paragraph, limit) or limit
            pieces.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip()
        current = paragraph
    if current:
        pieces.append(current)
    return [Mrkdwn(piece, _SEAL) for piece in pieces]


# -- blocks and plain text -----------------------------------------------------------------------


def section(text: Mrkdwn) -> Block:
    return Block({"type": "section", "text": {"type": "mrkdwn", "text": text}})


def context(text: Mrkdwn) -> Block:
    return Block({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})


def _plain_text(text: PlainText) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def button(*, block_id: str, action_id: str, label: PlainText, value: str) -> Block:
    """An actions block with one button; ``value`` comes back when it is pressed."""
    element = {"type": "button", "action_id": action_id, "text": _plain_text(label), "value": value}
    return Block({"type": "actions", "block_id": block_id, "elements": [element]})


def user_picker(
    *,
    block_id: str,
    action_id: str,
    label: PlainText,
    placeholder: PlainText,
    initial_user: str | None = None,
    hint: PlainText | None = None,
) -> Block:
    """An optional input block with one person to choose (``users_select``)."""
    element: dict[str, Any] = {
        "type": "users_select",
        "action_id": action_id,
        "placeholder": _plain_text(placeholder),
    }
    if initial_user is not None:
        element["initial_user"] = initial_user
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": _plain_text(label),
        "element": element,
    }
    if hint:
        block["hint"] = _plain_text(hint)
    return Block(block)


def modal(
    *,
    callback_id: str,
    title: PlainText,
    submit: PlainText,
    close: PlainText,
    blocks: list[Block],
    private_metadata: str,
) -> View:
    """A modal view; ``private_metadata`` comes back with its submission."""
    return View(
        {
            "type": "modal",
            "callback_id": callback_id,
            "title": _plain_text(title),
            "submit": _plain_text(submit),
            "close": _plain_text(close),
            "blocks": blocks,
            "private_metadata": private_metadata,
        }
    )


#: Angle brackets become the look-alike angle quotes; control characters become spaces.
_PLAIN = str.maketrans({"<": "\u2039", ">": "\u203a"} | {chr(c): " " for c in range(32)})


def plain(text: str, limit: int | None = None) -> PlainText:
    """``text`` for a field shown as it is: no ``<`` or ``>`` is left to open a control
    sequence, and no entity is added that would show as ``&lt;``. With ``limit``, at most that
    many characters, ending in ``…`` when cut."""
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return PlainText(text.translate(_PLAIN), _SEAL)
