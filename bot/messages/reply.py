"""The words of a transcript reply: its summary, each file's heading, and what stands in for a
transcript (no speech, a failure, an attachment)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.messages.words import plural
from bot.slack_text import Mrkdwn, escape, mrkdwn

NO_SPEECH = "No speech found in this file."
#: A failed file's reason when its error gave none.
NOT_TRANSCRIBED = "It could not be transcribed."


def file_failed(name: str, reason: str) -> Mrkdwn:
    return mrkdwn(":warning: *{}*: {}", name, reason)


def file_without_speech(name: str) -> Mrkdwn:
    return mrkdwn(":speech_balloon: *{}*\n_{}_", name, NO_SPEECH)


def file_heading(name: str) -> Mrkdwn:
    return mrkdwn(":speech_balloon: *{}*", name)


def file_in_attachment(name: str, characters: int, attachment: str, preview: str) -> Mrkdwn:
    return mrkdwn(
        ":speech_balloon: *{}* ({:,} characters; full transcript in `{}` below)\n&gt;{}",
        name,
        characters,
        attachment,
        preview,
    )


def translation_line(language: str, translation: str) -> Mrkdwn:
    """A turn's translation, quoted under it: ``> German: Hallo zusammen.``"""
    return mrkdwn("&gt; {}: {}", language, translation)


#: A word's leading and trailing punctuation, and what is between.
_WORD_EDGES = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)


def doubtful_word(word: str) -> Mrkdwn:
    """A word the provider was unsure of, in italics; its punctuation stays upright, so that
    Slack sees where the italics end."""
    match = _WORD_EDGES.match(word)
    if match is None or not match.group(2):
        return escape(word)
    return mrkdwn("{}_{}_{}", *match.groups())


def transcript_title(filename: str) -> str:
    return f"Transcript of {filename}"


def subtitles_title(filename: str) -> str:
    return f"Subtitles for {filename}"


def more_sections(count: int) -> Mrkdwn:
    return mrkdwn("_…and {} more sections; see the files._", count)


def reply_summary(reported: Sequence[str], failed: int) -> Mrkdwn:
    """The first line of a reply, from the names of its reported files and how many failed."""
    done = len(reported) - failed
    if failed and not done:
        return mrkdwn("Could not transcribe {}", plural(failed, "file"))
    if failed:
        return mrkdwn("Transcribed {} of {}", done, plural(len(reported), "file"))
    if len(reported) == 1:
        return mrkdwn("Transcript of {}", reported[0])
    return mrkdwn("Transcript of {}", plural(done, "file"))


def languages_spoken(names: Sequence[str], shown: int) -> Mrkdwn:
    """``Language: English``, ``Languages: English, Hindi``; past ``shown`` names, a count."""
    listed = ", ".join(names[:shown])
    if len(names) > shown:
        listed += f" and {len(names) - shown} more"
    label = "Language" if len(names) == 1 else "Languages"
    # An unknown code is shown as the provider gave it: outside text, escaped by mrkdwn().
    return mrkdwn("{}: {}", label, listed)
