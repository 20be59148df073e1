"""Which Slack files and links are audio or video worth transcribing."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

#: Extensions of files and links treated as media when Slack's mimetype is vague.
MEDIA_EXTENSIONS = frozenset(
    {
        "aac", "aiff", "aif", "amr", "flac", "m4a", "m4v", "mkv", "mov", "mp3", "mp4", "mpeg",
        "mpg", "oga", "ogg", "opus", "wav", "weba", "webm", "wma", "3gp",
    }
)  # fmt: skip

#: Extensions that make a pasted link count as audio.
LINK_EXTENSIONS = frozenset(
    {"mp3", "wav", "m4a", "ogg", "opus", "flac", "webm", "mp4", "aac", "mov"}
)
VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "webm", "mkv", "m4v", "mpeg", "mpg", "3gp"})
CLIP_SUBTYPES = frozenset({"slack_audio", "slack_video"})


def _extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower().lstrip(".")


def is_media_file(file: dict[str, Any]) -> bool:
    """True for audio and video files and Slack clips, from Slack's file object."""
    mimetype = str(file.get("mimetype") or "")
    if mimetype.startswith(("audio/", "video/")):
        return True
    if file.get("subtype") in CLIP_SUBTYPES:
        return True
    filetype = str(file.get("filetype") or "").lower()
    return filetype in MEDIA_EXTENSIONS or _extension(str(file.get("name") or "")) in (
        MEDIA_EXTENSIONS
    )


def is_video(filename: str, mimetype: str | None) -> bool:
    if mimetype and mimetype.startswith("video/"):
        return True
    return _extension(filename) in VIDEO_EXTENSIONS and not (
        mimetype and mimetype.startswith("audio/")
    )


def parse_url(url: str) -> SplitResult | None:
    """``urlsplit`` that answers None for text it cannot parse (``https://[oops``) and for
    links without an http(s) scheme and a host, instead of raising."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return parts


def link_filename(url: str) -> str:
    """The last path segment of a link, for naming it in replies."""
    parts = parse_url(url)
    if parts is None:
        return "link"
    return PurePosixPath(unquote(parts.path)).name or parts.netloc or "link"


def looks_like_audio_link(url: str) -> bool:
    parts = parse_url(url)
    return parts is not None and _extension(parts.path) in LINK_EXTENSIONS
