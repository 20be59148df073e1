"""The answers to the ``/transcribe`` subcommands that show or change a channel's settings for new
work: provider, auto, language, vocabulary, context, translate and confidence."""

from __future__ import annotations

from collections.abc import Sequence

from bot.messages.words import COMMAND, STRICT, plural, quoted, with_and
from bot.slack_text import Mrkdwn, join, mrkdwn

#: Re-exported by :mod:`bot.messages.answers`, where callers find every answer.
__all__ = [
    "AUTO_TAKES_ON_OR_OFF",
    "CONFIDENCE_TAKES_ON_OR_OFF",
    "CONTEXT",
    "DOUBTFUL_WORDS",
    "DOUBTFUL_WORDS_MARKED",
    "NO_PROVIDERS",
    "TRANSLATE_USAGE",
    "TRANSLATION",
    "TWO_DIFFERENT_LANGUAGES",
    "VOCABULARY",
    "VOCABULARY_CLEARED",
    "VOCABULARY_USAGE",
    "auto_shown",
    "confidence_shown",
    "context_for_new_work",
    "context_shown",
    "context_too_long",
    "languages_shown",
    "no_such_provider",
    "no_terms_given",
    "not_supported",
    "not_translation_languages",
    "one_provider_only",
    "provider_chosen",
    "provider_not_set_up",
    "provider_shown",
    "term_too_long",
    "translation_for_new_work",
    "translation_shown",
    "unused_by",
    "vocabulary_added",
    "vocabulary_for_new_work",
    "vocabulary_removed",
    "vocabulary_shown",
    "who_keeps_to_hints",
]


# -- /transcribe provider, auto, language --------------------------------------------------------

#: The providers a channel can choose from, when none is set up.
NO_PROVIDERS = mrkdwn("none")


def provider_shown(
    label: str, *, chosen: bool, set_up: bool, missing: str | None, available: Mrkdwn
) -> Mrkdwn:
    """The channel's provider; ``missing`` names the settings it lacks when it is not set up."""
    how = "chosen for this channel" if chosen else "the app's default"
    not_set_up = (
        ""
        if set_up
        else mrkdwn(
            " It is not set up on this app any more ({} is missing), so new work here "
            "fails until you choose another.",
            missing,
        )
    )
    return mrkdwn(
        "This channel uses *{}* ({}).{} Available: {}. Change it with `{} provider &lt;name&gt;`.",
        label,
        how,
        not_set_up,
        available,
        COMMAND,
    )


def one_provider_only(example: str) -> Mrkdwn:
    return mrkdwn("Name one provider, such as `{} provider {}`.", COMMAND, example)


def no_such_provider(typed: str, available: Mrkdwn) -> Mrkdwn:
    return mrkdwn("There is no provider called `{}`. Choose one of: {}.", typed, available)


def provider_not_set_up(label: str, missing: str | None, available: Mrkdwn) -> Mrkdwn:
    return mrkdwn(
        "{} is not set up on this app ({} is missing), so this channel cannot use it. "
        "Available: {}.",
        label,
        missing,
        available,
    )


def provider_chosen(label: str) -> Mrkdwn:
    return mrkdwn(
        "This channel now uses *{}* for new work; work already started keeps its provider.",
        label,
    )


AUTO_TAKES_ON_OR_OFF = mrkdwn("`auto` takes `on` or `off`, such as `{} auto off`.", COMMAND)


def auto_shown(on: bool, *, changed: bool) -> Mrkdwn:
    now = "now " if changed else ""
    if on:
        return mrkdwn(
            "Automatic transcription is {now}*{state}* in this channel: uploads and audio "
            "links are transcribed as they are shared. `{command} auto off` stops that.",
            now=now,
            state="on",
            command=COMMAND,
        )
    return mrkdwn(
        "Automatic transcription is {now}*{state}* in this channel: I transcribe only when "
        "asked, with the *Transcribe* message shortcut, `@threadscribe transcribe` in a "
        "thread, or `{command} &lt;link&gt;`. `{command} auto on` turns it back on.",
        now=now,
        state="off",
        command=COMMAND,
    )


def who_keeps_to_hints(keep: Sequence[str], lean: Sequence[str]) -> str:
    """Which providers (by label) keep to strict hints and which only lean towards them."""
    if not keep:
        return "the providers only lean towards these languages"
    sentence = f"{with_and(keep)} {'keeps' if len(keep) == 1 else 'keep'} to these languages"
    if lean:
        sentence += f" ({with_and(lean)} only {'leans' if len(lean) == 1 else 'lean'} towards them)"
    return sentence


def languages_shown(codes: Sequence[str], strict: bool, who_keeps: str, *, changed: bool) -> Mrkdwn:
    """The channel's language hints; ``who_keeps`` is :func:`who_keeps_to_hints`."""
    now = "now " if changed else ""
    if not codes:
        return mrkdwn(
            "Language hints are {}off in this channel: the provider detects the language. "
            "Set some with `{} language en,hi` (add `{}` to keep to them).",
            now,
            COMMAND,
            STRICT,
        )
    if strict:
        how = mrkdwn(
            ", {strict}: {who_keeps}. `{command} language {codes}` makes them hints only.",
            strict=STRICT,
            who_keeps=who_keeps,
            command=COMMAND,
            codes=",".join(codes),
        )
    else:
        how = mrkdwn(
            ": the provider leans towards these languages; add `{}` to keep to them.", STRICT
        )
    return mrkdwn(
        "Language hints in this channel are {}{}{} They apply to new work; "
        "`{} language auto` removes them.",
        now,
        quoted(codes),
        how,
        COMMAND,
    )


# -- /transcribe vocabulary, context, translate, confidence ---------------------------------------


def not_supported(feature: str, label: str, others: Sequence[tuple[str, str]]) -> Mrkdwn:
    """The channel's provider (``label``) lacks ``feature``; ``others`` are the ``(name, label)``
    of the providers set up on this app that have it."""
    if len(others) == 1:
        ((name, other),) = others
        instead = mrkdwn(
            " {} does: `{} provider {}` switches this channel to it.", other, COMMAND, name
        )
    elif others:
        instead = mrkdwn(
            " {} do: choose one with `{} provider &lt;name&gt;`.",
            with_and([other for _, other in others]),
            COMMAND,
        )
    else:
        instead = mrkdwn("")
    return mrkdwn(
        "{} (this channel's provider) does not support {}, so nothing was changed.{}",
        label,
        feature,
        instead,
    )


VOCABULARY = "a vocabulary"
CONTEXT = "a context"
TRANSLATION = "translation"
DOUBTFUL_WORDS = "marking doubtful words"

VOCABULARY_USAGE = mrkdwn(
    "`vocabulary` takes `add`, `remove`, `list` or `clear`, such as "
    "`{} vocabulary add Kubernetes, Priya Raman`.",
    COMMAND,
)


def no_terms_given(verb: str) -> Mrkdwn:
    return mrkdwn(
        "Name the terms to {verb}, separated by commas, such as "
        "`{command} vocabulary {verb} Kubernetes, Priya Raman`.",
        verb=verb,
        command=COMMAND,
    )


def term_too_long(term: str, limit: int) -> Mrkdwn:
    return mrkdwn(
        "“{}” is {:,} characters long; a term is a word or a name of at most {} characters. "
        "Nothing was changed.",
        term,
        len(term),
        limit,
    )


def context_too_long(size: int, limit: int, label: str) -> Mrkdwn:
    """The vocabulary and context together would be ``size`` characters."""
    return mrkdwn(
        "That would make this channel's vocabulary and context {:,} characters long; {} takes at "
        "most {:,}. Nothing was changed: remove some terms, or shorten the context, first.",
        size,
        label,
        limit,
    )


def vocabulary_shown(terms: Sequence[str], label: str) -> Mrkdwn:
    if not terms:
        return mrkdwn(
            "This channel has no vocabulary. Add the words and names {} should expect with "
            "`{} vocabulary add Kubernetes, Priya Raman`.",
            label,
            COMMAND,
        )
    return mrkdwn(
        "This channel's vocabulary ({}, sent to {} with each new file): {}. Change it with "
        "`{command} vocabulary add …`, `remove …` or `clear`.",
        plural(len(terms), "term"),
        label,
        quoted(terms),
        command=COMMAND,
    )


def vocabulary_added(added: Sequence[str], known: Sequence[str], total: int) -> Mrkdwn:
    """``added`` are new; ``known`` were in the vocabulary already."""
    parts = []
    if added:
        parts.append(mrkdwn("Added {} to this channel's vocabulary.", quoted(added)))
    if known:
        parts.append(mrkdwn("Already in it: {}.", quoted(known)))
    parts.append(mrkdwn("It has {}, for new work.", plural(total, "term")))
    return join(" ", parts)


def vocabulary_removed(removed: Sequence[str], unknown: Sequence[str], total: int) -> Mrkdwn:
    """``removed`` were taken out; ``unknown`` were not in the vocabulary."""
    parts = []
    if removed:
        parts.append(mrkdwn("Removed {} from this channel's vocabulary.", quoted(removed)))
    if unknown:
        parts.append(mrkdwn("Not in it: {}.", quoted(unknown)))
    parts.append(mrkdwn("It has {}, for new work.", plural(total, "term")))
    return join(" ", parts)


VOCABULARY_CLEARED = mrkdwn("This channel's vocabulary is now empty, for new work.")


def context_shown(text: str | None, label: str, *, changed: bool) -> Mrkdwn:
    if not text:
        return mrkdwn(
            "This channel has {}no context. Tell {} what its conversations are about in a "
            "sentence, such as `{} context Weekly stand-up of the platform team`.",
            "now " if changed else "",
            label,
            COMMAND,
        )
    return mrkdwn(
        "This channel's context is {}“{}”, sent to {} with each new file. "
        "`{} context clear` removes it.",
        "now " if changed else "",
        text,
        label,
        COMMAND,
    )


TRANSLATE_USAGE = mrkdwn(
    "`translate` takes one language (`{command} translate de`), two joined by a colon for a "
    "bilingual channel (`{command} translate en:es`), or `off`.",
    command=COMMAND,
)
TWO_DIFFERENT_LANGUAGES = mrkdwn(
    "Name two different languages for a bilingual channel, such as `{} translate en:es`.",
    COMMAND,
)


def not_translation_languages(unknown: Sequence[str], label: str, codes: Sequence[str]) -> Mrkdwn:
    what = "is not a language code" if len(unknown) == 1 else "are not language codes"
    return mrkdwn(
        "{} {} {} translates. It takes these (ISO 639-1): {}.",
        quoted(unknown),
        what,
        label,
        quoted(codes),
    )


def translation_shown(languages: Sequence[tuple[str, str]], *, changed: bool) -> Mrkdwn:
    """The channel's translation, from its ``(code, name)`` languages: none, one or two."""
    now = "now " if changed else ""
    if not languages:
        return mrkdwn(
            "Transcripts in this channel are {}not translated. `{command} translate de` adds a "
            "German translation after each turn; `{command} translate en:es` translates each "
            "turn between English and Spanish.",
            now,
            command=COMMAND,
        )
    if len(languages) == 1:
        ((code, name),) = languages
        how = mrkdwn("translated into *{}* (`{}`)", name, code)
    else:
        (code_a, name_a), (code_b, name_b) = languages
        how = mrkdwn(
            "translated between *{}* and *{}* (`{}:{}`): a turn in either is translated into "
            "the other",
            name_a,
            name_b,
            code_a,
            code_b,
        )
    return mrkdwn(
        "Transcripts in this channel are {}{}; each turn is followed by its translation, in new "
        "work. `{} translate off` stops it.",
        now,
        how,
        COMMAND,
    )


CONFIDENCE_TAKES_ON_OR_OFF = mrkdwn(
    "`confidence` takes `on` or `off`, such as `{} confidence on`.", COMMAND
)


def confidence_shown(on: bool, threshold: float, label: str, *, changed: bool) -> Mrkdwn:
    now = "now " if changed else ""
    if on:
        return mrkdwn(
            "Doubtful words are {}*marked* in this channel: words {} is less than {:.0%} sure of "
            "appear in _italics_ in new replies (the attached files keep plain text). "
            "`{} confidence off` stops that.",
            now,
            label,
            threshold,
            COMMAND,
        )
    return mrkdwn(
        "Doubtful words are {}*not marked* in this channel. `{} confidence on` shows the words "
        "{} is less than {:.0%} sure of in _italics_.",
        now,
        COMMAND,
        label,
        threshold,
    )


def vocabulary_for_new_work(terms: Sequence[str], limit: int = 20) -> Mrkdwn:
    shown = quoted(terms[:limit])
    more = mrkdwn(" and {} more", len(terms) - limit) if len(terms) > limit else ""
    return mrkdwn("Vocabulary for new work: {}{}", shown, more)


def context_for_new_work(text: str) -> Mrkdwn:
    return mrkdwn("Context for new work: “{}”", text)


def translation_for_new_work(names: Sequence[str]) -> Mrkdwn:
    if len(names) == 1:
        return mrkdwn("Translation for new work: into {}", names[0])
    return mrkdwn("Translation for new work: between {} and {}", *names)


DOUBTFUL_WORDS_MARKED = mrkdwn("Doubtful words are marked in new work.")


def unused_by(line: Mrkdwn, label: str) -> Mrkdwn:
    """A status line of a setting the channel's provider does not support."""
    return mrkdwn("{} (not used by {})", line, label)
