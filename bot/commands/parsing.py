"""Reading what people type: the words of ``/transcribe``, its links, language codes and batch ids,
and whether a mention asks to transcribe."""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Sequence

from bot.commands.context import CommandError
from bot.intake import link_as_typed
from bot.languages import ISO_639_1
from bot.messages import answers
from bot.messages import speakers as speaker_words
from bot.messages.words import STRICT
from bot.slack_text import unescape

#: Links one ``/transcribe`` may carry: enough for a meeting's recordings, few enough to read back.
MAX_COMMAND_LINKS = 5

_BATCH_ID = re.compile(r"b-[0-9a-f]{8,12}")
_USER_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
#: Words a mention may add around "transcribe" and still mean it.
_POLITE = frozenset({"please", "this", "it", "pls"})
#: Most of what a person typed that an answer shows back.
MAX_ECHOED_CHARS = 200
#: The word of ``@threadscribe speakers 1=@alice 2=@bob``, and one speaker's name in it: the
#: number the transcript gives them, and the person as Slack writes a mention (``<@U123>``, or
#: ``<@U123|alice>`` from older clients).
_SPEAKERS_WORD = re.compile(r"\bspeakers?\b", re.IGNORECASE)
_SPEAKER_NAMED = re.compile(r"(\d{1,3})\s*[=:]\s*<@([UW][A-Z0-9]{2,20})(?:\|[^>]*)?>")
#: What may stand between the names: spaces and list punctuation.
_BETWEEN_NAMES = re.compile(r"[\s,;]*")


def split_command(text: str) -> tuple[str, list[str]]:
    """The first word as typed (empty for none; links are case-sensitive) and the rest."""
    words = (text or "").split()
    if not words:
        return "", []
    return words[0], words[1:]


def looks_like_link(token: str) -> bool:
    return token.lower().lstrip("<").startswith(("http://", "https://"))


def parse_links(tokens: Sequence[str]) -> list[str]:
    """The links of ``/transcribe <url> [url …]``: 1 to :data:`MAX_COMMAND_LINKS` http(s) links."""
    links: list[str] = []
    for token in tokens:
        url = link_as_typed(token)
        if url is None:
            raise CommandError(answers.not_a_link(token, MAX_COMMAND_LINKS))
        if url not in links:
            links.append(url)
    if len(links) > MAX_COMMAND_LINKS:
        raise CommandError(answers.too_many_links(len(links), MAX_COMMAND_LINKS))
    return links


def parse_languages(args: Sequence[str]) -> list[str]:
    """Language hints from ``en,hi`` or ``en hi`` (any case); ``auto`` clears them."""
    codes = [code.strip().lower() for arg in args for code in arg.split(",") if code.strip()]
    if codes == ["auto"]:
        return []
    unknown = [code for code in codes if code not in ISO_639_1]
    if not codes or unknown:
        raise CommandError(answers.not_language_codes(unknown))
    return list(dict.fromkeys(codes))


def parse_language_setting(args: Sequence[str]) -> tuple[list[str], bool]:
    """Language hints and whether they are strict, from ``en,hi strict`` (``strict`` anywhere
    among the words); ``auto`` clears both."""
    words = [word for arg in args for word in arg.split(",") if word.strip()]
    strict = any(word.strip().lower() == STRICT for word in words)
    codes = [word for word in words if word.strip().lower() != STRICT]
    if strict and not codes:
        raise CommandError(answers.STRICT_WITHOUT_LANGUAGES)
    hints = parse_languages(codes)
    if strict and not hints:
        raise CommandError(answers.AUTO_IS_NOT_STRICT)
    return hints, strict


def parse_terms(text: str) -> list[str]:
    """The terms of ``Kubernetes, Priya Raman``: split at commas, spaces tidied, each once (in
    any case)."""
    terms: dict[str, str] = {}
    for raw in text.split(","):
        term = " ".join(raw.split())
        if term:
            terms.setdefault(term.casefold(), term)
    return list(terms.values())


def parse_translation(
    args: Sequence[str], languages: Collection[str], provider_label: str
) -> tuple[str, ...]:
    """The languages of ``de`` (one way) or ``en:es`` (two ways), any case, each among
    ``languages``, which the provider called ``provider_label`` translates; ``off`` for none."""
    if len(args) != 1:
        raise CommandError(answers.TRANSLATE_USAGE)
    typed = args[0].strip().lower()
    if typed == "off":
        return ()
    codes = tuple(code.strip() for code in typed.split(":"))
    if len(codes) > 2 or not all(codes):
        raise CommandError(answers.TRANSLATE_USAGE)
    if len(codes) == 2 and codes[0] == codes[1]:
        raise CommandError(answers.TWO_DIFFERENT_LANGUAGES)
    unknown = [code for code in codes if code not in languages]
    if unknown:
        raise CommandError(
            answers.not_translation_languages(unknown, provider_label, sorted(languages))
        )
    return codes


def parse_batch_id(typed: str) -> str:
    """A batch id as stored, from one typed in any case."""
    wanted = typed.strip().lower()
    if not _BATCH_ID.fullmatch(wanted):
        raise CommandError(answers.not_a_batch_id(typed))
    return wanted


def mention_words(text: str) -> list[str]:
    """The words of a mention's text without the user mentions and punctuation, lower case."""
    stripped = _USER_MENTION.sub(" ", text or "")
    return [
        word for word in (raw.strip(string.punctuation).lower() for raw in stripped.split()) if word
    ]


def asks_to_transcribe(text: str) -> bool:
    words = mention_words(text)
    return "transcribe" in words and all(w == "transcribe" or w in _POLITE for w in words)


def asks_to_name_speakers(text: str) -> bool:
    """Whether a mention's first word is ``speakers``."""
    words = mention_words(text)
    return bool(words) and words[0] in ("speakers", "speaker")


def parse_speaker_names(text: str) -> dict[str, str]:
    """The speakers a mention names, ``{"1": "U123", "2": "U456"}``, from Slack's text of
    ``@threadscribe speakers 1=@alice 2=@bob``; a speaker named twice keeps the last name.
    Raises :class:`CommandError` for anything else after ``speakers``."""
    keyword = _SPEAKERS_WORD.search(text or "")
    rest = text[keyword.end() :] if keyword else ""
    names: dict[str, str] = {}
    position = 0
    while position < len(rest):
        gap = _BETWEEN_NAMES.match(rest, position)
        position = gap.end() if gap else position
        if position >= len(rest):
            break
        named = _SPEAKER_NAMED.match(rest, position)
        if named is None:
            typed = unescape(rest[position:]).strip()
            raise CommandError(speaker_words.not_understood(typed[:MAX_ECHOED_CHARS]))
        names[named.group(1).lstrip("0") or "0"] = named.group(2)
        position = named.end()
    return names
