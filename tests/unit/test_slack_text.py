"""The choke point for text on its way into Slack, and the rules that keep it the only one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_text import (
    Mrkdwn,
    PlainText,
    escape,
    join,
    link,
    mention,
    mrkdwn,
    plain,
    split,
    truncate,
    unescape,
)

BOT = Path(__file__).resolve().parents[2] / "bot"


def test_escape_turns_control_characters_into_entities_once() -> None:
    escaped = escape("<!channel> & <@U1>")
    assert escaped == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert isinstance(escaped, Mrkdwn)
    assert escape(escaped) is escaped, "already escaped text is not escaped again"


def test_unescape_decodes_what_slack_encodes_once_and_nothing_else() -> None:
    typed = "<soniox> Q&A &lt; &#39; &quot; &copy"
    assert unescape(escape(typed)) == typed
    assert unescape("&amp;lt;&amp;amp;") == "&lt;&amp;"


def test_mrkdwn_escapes_its_values_and_keeps_mrkdwn_values() -> None:
    text = mrkdwn(
        "*{}* said {quote} to {who} ({:,})", "<b>", 1234, quote="<!here>", who=mention("U0ALICE")
    )
    assert text == "*&lt;b&gt;* said &lt;!here&gt; to <@U0ALICE> (1,234)"
    assert isinstance(text, Mrkdwn)


@pytest.mark.parametrize("template", ["a <link>", "Q&A", "x > y"])
def test_a_template_cannot_carry_a_control_character(template: str) -> None:
    with pytest.raises(ValueError):
        mrkdwn(template)  # type: ignore[arg-type]


def test_mrkdwn_cannot_be_made_from_a_plain_string() -> None:
    with pytest.raises(TypeError):
        Mrkdwn("<!channel>")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        PlainText("<!channel>", object())  # type: ignore[arg-type]
    # A string operation on Mrkdwn gives a plain str back, which the gateway does not take.
    assert type(escape("a") + "<!channel>") is str


def test_join_escapes_each_part() -> None:
    assert join(", ", ["<a>", mrkdwn("*b*")]) == "&lt;a&gt;, *b*"


def test_link_cannot_be_broken_out_of() -> None:
    made = link("https://x.example/a b|<!here>?q=1&r=2", "<https://evil.example|ok>\nnext")
    assert made == (
        "<https://x.example/a%20b%7C%3C!here%3E?q=1&amp;r=2|&lt;https://evil.example|ok&gt; next>"
    )
    assert link("javascript:alert(1)", "x") == "x (javascript:alert(1))"


def test_mention_is_made_only_for_a_user_id() -> None:
    assert mention("U0ALICE") == "<@U0ALICE>"
    assert mention("W123ABC") == "<@W123ABC>"
    assert mention("!channel") == "!channel"
    assert mention("U1><!channel") == "U1&gt;&lt;!channel"


def test_truncate_and_split_never_cut_an_entity() -> None:
    text = escape("ab<cd")  # ab&lt;cd
    assert truncate(text, 4) == "ab"
    assert truncate(text, 6) == "ab&lt;"
    pieces = split(escape("<" * 10), 7)
    assert all(piece.count("&") == piece.count(";") for piece in pieces)
    assert "".join(pieces) == escape("<" * 10)


def test_plain_text_holds_no_angle_bracket() -> None:
    assert plain("<!channel>\tnotes & more.wav") == "\u2039!channel\u203a notes & more.wav"


# -- the rules that keep it the only way in ------------------------------------------------------


def _calls(name: str, *, methods: bool = True) -> list[tuple[str, ast.Call]]:
    """Calls of ``name`` in the bot's code: as a function, and with ``methods`` as a method."""
    found: list[tuple[str, ast.Call]] = []
    for path in sorted(BOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            if (isinstance(function, ast.Name) and function.id == name) or (
                methods and isinstance(function, ast.Attribute) and function.attr == name
            ):
                found.append((path.relative_to(BOT.parent).as_posix(), node))
    return found


@pytest.mark.parametrize("name", ["mrkdwn", "join"])
def test_every_template_is_written_in_the_code(name: str) -> None:
    """A template is trusted as mrkdwn, so it must be a literal: an f-string or a variable could
    carry text from outside past the escaping."""
    calls = _calls(name, methods=False)  # str.join and os.path.join are not templates
    assert calls
    for where, call in calls:
        if where == "bot/slack_text.py" or not call.args:
            continue
        first = call.args[0]
        assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
            f"{where}:{call.lineno}: {name}() needs a string literal as its template"
        )


@pytest.mark.parametrize(
    ("method", "allowed"),
    [
        ("chat_postMessage", {"bot/slack_api.py"}),
        ("chat_update", {"bot/slack_api.py"}),
        ("chat_postEphemeral", set()),
        ("files_upload_v2", {"bot/slack_api.py"}),
        ("respond", {"bot/listeners.py"}),
        ("say", set()),
    ],
)
def test_only_the_gateway_sends_text_to_slack(method: str, allowed: set[str]) -> None:
    assert {where for where, _ in _calls(method)} <= allowed


#: Every Web API method of slack-sdk's client, as Python calls it (``conversations_replies``).
WEB_API_METHODS = frozenset(
    name
    for name in dir(AsyncWebClient)
    if not name.startswith("_") and callable(getattr(AsyncWebClient, name))
)


def test_only_the_gateway_calls_the_slack_web_api() -> None:
    """The gateway counts every call and its failures in the metrics: a call made anywhere else
    would be missing from them."""
    outside = []
    for path in sorted(BOT.rglob("*.py")):
        where = path.relative_to(BOT.parent).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WEB_API_METHODS
                and where != "bot/slack_api.py"
            ):
                outside.append(f"{where}:{node.lineno} {node.func.attr}")
    assert outside == []


def test_only_the_gateway_makes_a_web_api_client() -> None:
    makers = set()
    for path in sorted(BOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("slack_sdk.web"):
                makers.add(path.relative_to(BOT.parent).as_posix())
    assert makers == {"bot/slack_api.py"}
