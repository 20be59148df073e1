"""What the app says in Slack is worded in one place, :mod:`bot.messages`, and escaped there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bot import messages

BOT = Path(__file__).resolve().parents[2] / "bot"
MESSAGES = BOT / "messages"

_WORD = re.compile(r"[A-Za-z]{2,}")


def _outside_messages() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(BOT.parent).as_posix(), ast.parse(path.read_text(), str(path)))
        for path in sorted(BOT.rglob("*.py"))
        if MESSAGES not in path.parents
    ]


def test_templates_elsewhere_only_lay_out_words_made_in_messages() -> None:
    """A ``mrkdwn()`` or ``join()`` template outside :mod:`bot.messages` holds no words: only the
    punctuation that puts sentences made there (and names from outside) together."""
    worded = []
    for where, tree in _outside_messages():
        if where == "bot/slack_text.py":
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("mrkdwn", "join")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and _WORD.search(str(node.args[0].value))
            ):
                worded.append(f"{where}:{node.lineno}: {node.args[0].value!r}")
    assert worded == []


def test_reaction_names_are_named_once() -> None:
    names = {messages.REACTION_WORKING, messages.REACTION_DONE, messages.REACTION_FAILED}
    assert len(names) == 3
    elsewhere = [
        f"{where}:{node.lineno}: {node.value}"
        for where, tree in _outside_messages()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in names
    ]
    assert elsewhere == []
