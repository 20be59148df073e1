"""The words a person types to the app, and durations, counts and lists in words."""

from __future__ import annotations

from collections.abc import Sequence

from bot.slack_text import Mrkdwn, join, mrkdwn

#: The slash command.
COMMAND = "/transcribe"
#: The word that makes language hints strict: ``/transcribe language en strict``.
STRICT = "strict"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def either(names: Sequence[str]) -> Mrkdwn:
    """The names quoted and listed: `a`, `b` or `c`."""
    each = [mrkdwn("`{}`", name) for name in names]
    return join(" or ", [part for part in (join(", ", each[:-1]), each[-1]) if part])


def quoted(names: Sequence[str]) -> Mrkdwn:
    """The names quoted, comma-separated: `a`, `b`; empty for none."""
    return join(", ", [mrkdwn("`{}`", name) for name in names])


def with_and(labels: Sequence[str]) -> str:
    """``a, b and c``."""
    return " and ".join(filter(None, [", ".join(labels[:-1]), labels[-1]]))
