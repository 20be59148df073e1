"""Parsing what people type: subcommands, links, language codes, mentions; and the small
formatting rules of the answers."""

from __future__ import annotations

import pytest

from bot.commands import (
    HELP,
    ISO_639_1,
    MAX_COMMAND_LINKS,
    CommandError,
    asks_to_transcribe,
    format_duration,
    looks_like_link,
    mention_words,
    parse_language_setting,
    parse_languages,
    parse_links,
    split_command,
)
from bot.commands.parsing import (
    asks_to_name_speakers,
    parse_speaker_names,
    parse_terms,
    parse_translation,
)
from bot.intake import audio_links_in_text, link_from_token, links_in_text
from bot.slack_text import escape


def test_split_command_keeps_words_as_typed() -> None:
    assert split_command("  Provider  Soket ") == ("Provider", ["Soket"])
    assert split_command("") == ("", [])
    assert split_command("https://x.example/A.mp3 b") == ("https://x.example/A.mp3", ["b"])


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("https://example.com/a.mp3", "https://example.com/a.mp3"),
        ("<https://example.com/a.mp3>", "https://example.com/a.mp3"),
        ("<https://example.com/a.mp3|a.mp3>", "https://example.com/a.mp3"),
        ("<http://example.com/q?a=1&amp;b=2|x>", "http://example.com/q?a=1&b=2"),
        ("ftp://example.com/a.mp3", None),
        ("https://", None),
        ("example.com/a.mp3", None),
        ("<mailto:someone@example.com>", None),
    ],
)
def test_link_from_token(token: str, expected: str | None) -> None:
    assert link_from_token(token) == expected


def test_parse_links_keeps_order_drops_repeats_and_limits_the_count() -> None:
    a, b = "https://example.com/a.mp3", "https://example.com/b"
    assert parse_links([a, f"<{b}>", a]) == [a, b]
    too_many = [f"https://example.com/{n}.mp3" for n in range(MAX_COMMAND_LINKS + 1)]
    with pytest.raises(CommandError, match="at most 5"):
        parse_links(too_many)
    with pytest.raises(CommandError, match="`status` is not an http or https link"):
        parse_links([a, "status"])


def test_parse_links_takes_decoded_command_text_as_it_is() -> None:
    # The command's text was decoded once already: an entity left in a link is part of it.
    typed = "https://example.com/a.mp3?q=&amp;"
    assert parse_links([typed, f"<{typed}|a>"]) == [typed]


def test_looks_like_link() -> None:
    assert looks_like_link("https://a.example/x")
    assert looks_like_link("<HTTP://a.example/x>")
    assert not looks_like_link("help")


def test_links_in_message_text_as_slack_encodes_them() -> None:
    text = (
        "Two: <https://a.example/one.mp3|one> and <https://a.example/two.WAV>, "
        "a page <https://a.example/page>, a user <@U123>, a channel <#C123|general>, "
        "again <https://a.example/one.mp3>, bare https://a.example/bare.mp3"
    )
    assert links_in_text(text) == [
        "https://a.example/one.mp3",
        "https://a.example/two.WAV",
        "https://a.example/page",
    ]
    assert audio_links_in_text(text) == ["https://a.example/one.mp3", "https://a.example/two.WAV"]


def test_language_codes_are_validated_and_normalised() -> None:
    assert parse_languages(["EN,hi"]) == ["en", "hi"]
    assert parse_languages(["en,", "de", "en"]) == ["en", "de"]
    assert parse_languages(["auto"]) == []
    with pytest.raises(CommandError, match="`eng` is not an ISO 639-1 language code"):
        parse_languages(["en,eng"])
    with pytest.raises(CommandError, match="two-letter"):
        parse_languages([","])
    assert {"en", "hi", "zh", "pt", "yo"} <= ISO_639_1
    assert len(ISO_639_1) == 183


def test_strict_language_hints() -> None:
    assert parse_language_setting(["en,hi"]) == (["en", "hi"], False)
    assert parse_language_setting(["en,hi", "STRICT"]) == (["en", "hi"], True)
    assert parse_language_setting(["strict", "en"]) == (["en"], True)
    assert parse_language_setting(["en,strict"]) == (["en"], True)
    assert parse_language_setting(["auto"]) == ([], False)
    with pytest.raises(CommandError, match="give them too"):
        parse_language_setting(["strict"])
    with pytest.raises(CommandError, match="cannot be `strict`"):
        parse_language_setting(["auto", "strict"])


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("<@U0BOT> transcribe", True),
        ("<@U0BOT> Transcribe!", True),
        ("<@U0BOT|threadscribe> please transcribe this", True),
        ("transcribe <@U0BOT>", True),
        ("<@U0BOT> transcribe the other thread", False),
        ("<@U0BOT> hello", False),
        ("<@U0BOT>", False),
    ],
)
def test_asks_to_transcribe(text: str, asks: bool) -> None:
    assert asks_to_transcribe(text) is asks


def test_mention_words_drop_mentions_and_punctuation() -> None:
    assert mention_words("<@U0BOT>  What, now? <@U0ALICE>") == ["what", "now"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-3, "0 s"),
        (42.9, "42 s"),
        (60, "1 min"),
        (3599, "59 min"),
        (3600, "1 h"),
        (7500, "2 h 5 min"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_help_has_one_example_per_subcommand() -> None:
    lines = [line for line in HELP.splitlines() if line.startswith("• `/transcribe")]
    examples = [line.split("`")[1] for line in lines]
    assert [example.split()[1] for example in examples] == [
        "help",
        "status",
        "https://example.com/call.mp3",
        "provider",
        "auto",
        "language",
        "vocabulary",
        "context",
        "translate",
        "confidence",
        "retry",
        "cancel",
    ]


def test_terms_are_split_at_commas_tidied_and_taken_once() -> None:
    assert parse_terms(" Kubernetes,  Priya   Raman ,, kubernetes, <@U1> ") == [
        "Kubernetes",
        "Priya Raman",
        "<@U1>",
    ]
    assert parse_terms(" , ") == []


@pytest.mark.parametrize(
    ("typed", "languages"),
    [(["de"], ("de",)), (["EN:es"], ("en", "es")), (["off"], ()), (["OFF"], ())],
)
def test_a_translation_is_one_language_or_two(typed: list[str], languages: tuple[str, ...]) -> None:
    assert parse_translation(typed, {"de", "en", "es"}, "Provider") == languages


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        (["de", "fr"], "takes one language"),
        (["en:es:fr"], "takes one language"),
        (["en:"], "takes one language"),
        (["en:EN"], "two different languages"),
        (["xx:de"], "`xx` is not a language code Provider translates. It takes these "
                    "(ISO 639-1): `de`, `en`, `es`."),
        (["<!here>"], "`&lt;!here&gt;` is not a language code"),
    ],
)  # fmt: skip
def test_a_wrong_translation_is_answered_clearly(typed: list[str], answer: str) -> None:
    with pytest.raises(CommandError) as refused:
        parse_translation(typed, {"de", "en", "es"}, "Provider")
    assert answer in refused.value.text


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("<@U0BOT> speakers 1=<@U0ALICE> 2=<@U0BOB>", {"1": "U0ALICE", "2": "U0BOB"}),
        ("<@U0BOT> Speakers 1 = <@U0ALICE>, 2:<@W0BOB|bob>", {"1": "U0ALICE", "2": "W0BOB"}),
        ("<@U0BOT> speakers 01=<@U0ALICE> 1=<@U0BOB>", {"1": "U0BOB"}),
        ("<@U0BOT> speakers", {}),
    ],
)
def test_a_mention_names_speakers_by_number_and_slack_mention(
    text: str, names: dict[str, str]
) -> None:
    assert asks_to_name_speakers(text)
    assert parse_speaker_names(text) == names


@pytest.mark.parametrize(
    ("text", "echoed"),
    [
        ("<@U0BOT> speakers 1=alice", "1=alice"),
        ("<@U0BOT> speakers 1=<@U0ALICE> and 2=<!channel>", "and 2=<!channel>"),
        ("<@U0BOT> speakers 1=&lt;@U0ALICE&gt;", "1=<@U0ALICE>"),
    ],
)
def test_anything_else_after_speakers_is_shown_back_escaped(text: str, echoed: str) -> None:
    with pytest.raises(CommandError) as refused:
        parse_speaker_names(text)
    assert escape(echoed) in refused.value.text


def test_only_a_mention_starting_with_speakers_names_them() -> None:
    assert not asks_to_name_speakers("<@U0BOT> transcribe")
    assert not asks_to_name_speakers("<@U0BOT> who were the speakers?")
    assert asks_to_name_speakers("<@U0BOT> speaker 1=<@U0ALICE>")
