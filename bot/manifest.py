"""The app manifest (``manifest.yml``): where it is, and the bot scopes it declares, which
``check`` compares with a token's and an install asks for."""

from __future__ import annotations

import re
from pathlib import Path

#: Where ``check`` looks for the manifest when none is given: the working directory (a checkout or
#: the Docker image's /app), then the source tree this package was installed from.
DEFAULT_MANIFESTS = (Path("manifest.yml"), Path(__file__).resolve().parent.parent / "manifest.yml")


_MANIFEST_KEY = re.compile(
    r"(?P<key>[^\s#'\"-][^:#]*?|'[^']*'|\"[^\"]*\")\s*:(?:\s+(?P<value>.*))?"
)
_SCOPES_PATH = ["oauth_config", "scopes", "bot"]


def manifest_bot_scopes(text: str) -> list[str] | None:
    """The ``oauth_config.scopes.bot`` list of a YAML app manifest, or None when there is none.

    A reader for this one list rather than a YAML dependency: block mappings, block lists
    (indented or not), a flow list ``[a, b]``, quotes and comments, which is what manifests use.
    """
    keys: list[tuple[int, str]] = []
    scopes: list[str] | None = None
    list_indent: int | None = None
    for raw in text.splitlines():
        line = _without_comment(raw).rstrip()
        if not line.strip() or line.startswith(("---", "...")):
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if list_indent is not None:
            if body.startswith("-") and indent >= list_indent:
                assert scopes is not None
                scopes.append(_scalar(body[1:]))
                continue
            list_indent = None
        if body.startswith("-"):
            continue
        match = _MANIFEST_KEY.fullmatch(body)
        if match is None:
            continue
        while keys and keys[-1][0] >= indent:
            keys.pop()
        keys.append((indent, _scalar(match["key"])))
        if [key for _, key in keys] == _SCOPES_PATH:
            value = (match["value"] or "").strip()
            if value.startswith("["):
                scopes = [_scalar(item) for item in value.strip("[]").split(",") if item.strip()]
            else:
                scopes, list_indent = [], indent
    return scopes


def _without_comment(line: str) -> str:
    """The line up to a ``#`` that starts a comment (at the start or after a space, unquoted)."""
    quote: str | None = None
    for index, char in enumerate(line):
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] in " \t"):
            return line[:index]
    return line


def _scalar(text: str) -> str:
    value = text.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def bot_scopes() -> list[str] | None:
    """The bot scopes of the first manifest found (:data:`DEFAULT_MANIFESTS`), or None."""
    for path in DEFAULT_MANIFESTS:
        if path.is_file():
            found = manifest_bot_scopes(path.read_text(encoding="utf-8"))
            if found:
                return found
    return None
