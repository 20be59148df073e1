"""The words of naming a transcript's speakers: the *Name speakers* button and its form, and the
answers to ``@threadscribe speakers 1=@alice 2=@bob``."""

from __future__ import annotations

from collections.abc import Sequence

from bot.messages.words import with_and
from bot.slack_text import Mrkdwn, PlainText, mrkdwn, plain

# -- the button and the form ---------------------------------------------------------------------

BUTTON = plain("Name speakers")
FORM_TITLE = plain("Name speakers")
SAVE = plain("Save")
CANCEL = plain("Cancel")
CHOOSE_A_PERSON = plain("Choose a person")
FORM_INTRO = mrkdwn(
    "Choose who each speaker is. The transcript then names them: as mentions in the message "
    "(editing it notifies nobody) and by name in its file."
)
#: Longest sample of a speaker's words under their picker.
SAMPLE_CHARS = 150


def speaker(label: str) -> PlainText:
    return plain(f"Speaker {label}")


def first_words(text: str) -> PlainText:
    """What a speaker says first, to tell who is who."""
    return plain(f"First words: “{text}”", SAMPLE_CHARS)


def file_in_form(name: str) -> Mrkdwn:
    return mrkdwn("*{}*", name)


def more_speakers(count: int) -> Mrkdwn:
    return mrkdwn("_…and {} more speakers, too many for one form._", count)


# -- refusals in the form (plain text under a field) ---------------------------------------------

FORM_DOES_NOT_MATCH = (
    "This form does not match the transcript it was opened for. Close it, then press "
    "Name speakers under the transcript again."
)
FORM_TRANSCRIPT_GONE = (
    "This transcript can no longer be changed: its reply is gone, or its text was erased after "
    "the retention period."
)
FORM_ONLY_MEMBERS = "Only members of the transcript's channel can name its speakers."


def form_cannot_check_membership(code: str) -> str:
    return (
        f"Could not check that you are a member of this channel (Slack said {code}). "
        "Try again in a moment; if it keeps failing, tell an admin."
    )


# -- answers in the thread or to the person ------------------------------------------------------

USAGE = mrkdwn(
    "To name the speakers of this thread's latest transcript, write "
    "`@threadscribe speakers 1=@alice 2=@bob`, or press *Name speakers* under it."
)
ONLY_MEMBERS = mrkdwn("Only members of this channel can name the speakers of its transcripts.")
NO_TRANSCRIPT_HERE = mrkdwn(
    "There is no transcript in this thread whose speakers I could name. Mention me in the "
    "thread of the transcript."
)
TRANSCRIPT_GONE = mrkdwn(
    "This transcript can no longer be changed: its reply is gone, or its text was erased after "
    "the retention period."
)
NO_SPEAKERS = mrkdwn("This transcript does not tell speakers apart: there is nobody to name.")
SEVERAL_TRANSCRIPTS = mrkdwn(
    "This reply holds several transcripts, each numbering its speakers from 1. Press *Name "
    "speakers* under it to name them file by file."
)


def not_understood(typed: str) -> Mrkdwn:
    return mrkdwn("I could not read `{}`.\n{}", typed, USAGE)


def unknown_speakers(unknown: Sequence[str], known: Sequence[str]) -> Mrkdwn:
    return mrkdwn(
        "This transcript has no speaker {}; its speakers are {}.",
        with_and(list(unknown)),
        with_and(list(known)),
    )


def cannot_check_membership(code: str) -> Mrkdwn:
    return mrkdwn(
        "I could not check that you are a member of this channel (Slack said `{}`). Try again "
        "in a moment; if it keeps failing, tell an admin.",
        code,
    )


def cannot_open_form(code: str) -> Mrkdwn:
    return mrkdwn("I could not open the form (Slack said `{}`). Press *Name speakers* again.", code)
