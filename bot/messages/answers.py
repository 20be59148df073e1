"""The answers to ``/transcribe`` and its subcommands, the message shortcut and mentions: shown
only to the person who asked, or in the thread they asked in."""

from __future__ import annotations

from collections.abc import Sequence

from bot.messages.settings_answers import *  # noqa: F403  (re-exported: the settings answers)
from bot.messages.words import COMMAND, STRICT, either, format_duration, plural, quoted, with_and
from bot.slack_text import Mrkdwn, join, link, mention, mrkdwn
from storage.states import BatchState, JobState


def help_text(
    providers: Sequence[str], *, max_links: int, finished_shown: int, customizing: Sequence[str]
) -> Mrkdwn:
    """What ``/transcribe help`` answers, naming every provider in ``providers``, and by label
    the ``customizing`` ones, which take a vocabulary, a context, translation and marks."""
    return mrkdwn(
        """*{command}*: transcribe audio where the conversation is. Answers here are only visible \
to you.
• `{command} help`: this list.
• `{command} status`: what is being transcribed in this channel, and the last \
{finished} finished.
• `{command} https://example.com/call.mp3`: transcribe 1 to {links} links; \
I post a message and answer in its thread.
• `{command} provider {example}`: show (without a name) or choose this channel's \
speech-to-text provider: {providers}.
• `{command} auto off`: show or switch (`on`/`off`) automatic transcription of uploads and \
audio links in this channel.
• `{command} language en,hi`: language hints for this channel (ISO 639-1 codes); add \
`strict` to keep to those languages, or say `auto` to detect the language.
• `{command} vocabulary add Kubernetes, Priya Raman`: words and names to expect in this \
channel (also `remove`, `list` and `clear`).
• `{command} context Weekly stand-up of the platform team`: a sentence about this \
channel's conversations (`context clear` removes it).
• `{command} translate de`: add a translation into one language, or `en:es` between two \
(each turn into the other); `off` stops it.
• `{command} confidence on`: mark the words the provider was unsure of in italics.
• `{command} retry b-1a2b3c4d5e6f`: transcribe the failed files of the last failed batch \
(or of the batch named) again.
• `{command} cancel b-1a2b3c4d5e6f`: stop the running batch (or the batch named); nothing is \
posted for it.
Vocabulary, context, translation and confidence work with {customizing}.
Also: the *Transcribe* message shortcut (a message's ⋮ menu, works in threads) and \
`@threadscribe transcribe` in a thread, for the thread's first message. To put names to a \
transcript's speakers, press *Name speakers* under it, or write \
`@threadscribe speakers 1=@alice 2=@bob` in its thread.""",
        command=COMMAND,
        finished=finished_shown,
        links=max_links,
        example=providers[-1],
        providers=either(providers),
        customizing=with_and(customizing) if customizing else "no provider of this app",
    )


def unknown_subcommand(word: str, help_answer: Mrkdwn) -> Mrkdwn:
    return mrkdwn("I don't know the subcommand `{}`.\n\n{}", word, help_answer)


MENTION_HELP = mrkdwn(
    "To transcribe a recording, mention me *in its thread* with just "
    "`@threadscribe transcribe`: I transcribe the audio, video and audio links of the thread's "
    "first message. The *Transcribe* message shortcut does the same for any message, and "
    "`{} help` lists everything else.",
    COMMAND,
)
NOTHING_IN_MESSAGE = mrkdwn(
    "This message has no audio, video or audio link I can transcribe. Links count when their "
    "path ends in an audio or video extension such as .mp3, .wav or .m4a; for other links, use "
    "`{} &lt;link&gt;`.",
    COMMAND,
)
NOTHING_IN_PARENT = mrkdwn(
    "The first message of this thread has no audio, video or audio link I can transcribe. To "
    "transcribe a message inside the thread, use the *Transcribe* message shortcut on it."
)

# -- /transcribe: what was typed -----------------------------------------------------------------


def not_a_link(token: str, max_links: int) -> Mrkdwn:
    return mrkdwn(
        "`{}` is not an http or https link. Give 1 to {} links, such as "
        "`{} https://example.com/call.mp3`.",
        token,
        max_links,
        COMMAND,
    )


def too_many_links(count: int, max_links: int) -> Mrkdwn:
    return mrkdwn(
        "That is {} links; I take at most {} at a time. Send the rest in another command.",
        count,
        max_links,
    )


def not_language_codes(unknown: Sequence[str]) -> Mrkdwn:
    """The answer to language codes that are not ISO 639-1, or to none at all."""
    problem = (
        mrkdwn("{} {} ", quoted(unknown), "is not an" if len(unknown) == 1 else "are not")
        if unknown
        else ""
    )
    return mrkdwn(
        "{}ISO 639-1 language code{}: give two-letter codes such as "
        "`{command} language en,hi`, or `{command} language auto`.",
        problem,
        "" if len(unknown) == 1 else "s",
        command=COMMAND,
    )


STRICT_WITHOUT_LANGUAGES = mrkdwn(
    "`{strict}` keeps to the languages you name: give them too, such as "
    "`{command} language en {strict}`.",
    strict=STRICT,
    command=COMMAND,
)
AUTO_IS_NOT_STRICT = mrkdwn("`auto` detects any language; it cannot be `{}`.", STRICT)


def one_batch_only(subcommand: str) -> Mrkdwn:
    return mrkdwn("Name at most one batch, such as `{} {} b-1a2b3c4d5e6f`.", COMMAND, subcommand)


def not_a_batch_id(typed: str) -> Mrkdwn:
    return mrkdwn(
        "`{}` is not a batch id; ids look like `b-1a2b3c4d5e6f` (`{} status` shows them).",
        typed,
        COMMAND,
    )


def no_such_batch(batch_id: str) -> Mrkdwn:
    return mrkdwn("There is no batch `{}` in this channel.", batch_id)


# -- /transcribe <links> -------------------------------------------------------------------------


def transcribing_links(user: str, links: Sequence[tuple[str, str]]) -> Mrkdwn:
    """The message the answer threads under: who asked, and each ``(url, name)`` linked."""
    lines = [mrkdwn("Transcribing {} for {}", plural(len(links), "link"), mention(user))]
    lines += [mrkdwn("• {}", link(url, name)) for url, name in links]
    return join("\n", lines)


def cannot_post(code: str) -> Mrkdwn:
    if code in ("not_in_channel", "channel_not_found"):
        return mrkdwn(
            "I can't post in this conversation, so I can't start a thread here. Invite me first "
            "with `/invite @threadscribe`, or run the command in a channel I am in."
        )
    return mrkdwn("Slack refused my message ({}); try again in a moment.", code or "unknown error")


SLACK_BUSY = mrkdwn("Slack is busy right now; please run the command again in a moment.")


def could_not_start(user: str) -> Mrkdwn:
    return mrkdwn("Could not start transcribing for {}; please run it again.", mention(user))


def started_links(batch_id: str) -> Mrkdwn:
    return mrkdwn("Started `{}`: the transcript will appear in the thread of my message.", batch_id)


# -- /transcribe status --------------------------------------------------------------------------

JOB_STATE_LABELS = {
    JobState.QUEUED: "waiting",
    JobState.DOWNLOADING: "downloading from Slack",
    JobState.UPLOADING: "uploading",
    JobState.UPLOADED: "at the provider",
    JobState.SUBMITTED: "submitted",
    JobState.PROCESSING: "transcribing",
    JobState.COMPLETED: "done",
    JobState.FAILED: "failed",
    JobState.SKIPPED: "skipped",
}
STATUS_RUNNING_HEADING = mrkdwn("*Being transcribed in this channel*")
NOTHING_RUNNING = mrkdwn("Nothing right now.")
NOTHING_FINISHED = mrkdwn("Nothing yet.")
POSTING_THE_REPLY = mrkdwn("posting the reply")
NO_FILES = mrkdwn("no files")


def finished_heading(count: int) -> Mrkdwn:
    return mrkdwn("*Last {} finished*", count)


def and_more_running(count: int) -> Mrkdwn:
    return mrkdwn("…and {} more.", count)


def hints_for_new_work(hints: Mrkdwn) -> Mrkdwn:
    return mrkdwn("Language hints for new work: {}", hints)


def hints_shown(codes: Sequence[str], strict: bool) -> Mrkdwn:
    """A channel's language hints as the answers show them: `en`, `hi` (strict)."""
    return mrkdwn("{} ({})", quoted(codes), STRICT) if strict else quoted(codes)


def file_names(names: Sequence[str], limit: int = 5) -> Mrkdwn:
    """Up to ``limit`` file names in bold, then how many more."""
    shown = [mrkdwn("*{}*", name) for name in names[:limit]]
    if len(names) > limit:
        shown.append(mrkdwn("{} more", len(names) - limit))
    return join(", ", shown) or NO_FILES


def files_with_states(files: Sequence[tuple[str, JobState]]) -> Mrkdwn:
    return join(", ", [mrkdwn("*{}* ({})", name, JOB_STATE_LABELS[state]) for name, state in files])


def shared_by(user_id: str) -> Mrkdwn:
    return mrkdwn("shared by {}", mention(user_id))


def started_ago(seconds: float) -> Mrkdwn:
    return mrkdwn("started {} ago", format_duration(seconds))


def provider_expects(provider_label: str, seconds_left: float) -> Mrkdwn:
    if seconds_left > 0:
        return mrkdwn("{} expects it in about {}", provider_label, format_duration(seconds_left))
    return mrkdwn("{} expected it by now", provider_label)


def finished_outcome(state: BatchState, reported: int, failed: int) -> str:
    """How a finished batch ended, from its state and its reported and failed files."""
    if state is BatchState.CANCELLED:
        return "cancelled"
    if state is BatchState.UNDELIVERABLE:
        return "reply could not be posted"
    if failed == reported and reported:
        return "failed"
    if failed:
        return f"{failed} of {reported} failed"
    return "transcribed"


def finished_line(named: Mrkdwn, files: Mrkdwn, outcome: str, seconds_ago: float) -> Mrkdwn:
    return mrkdwn("• {} {} · {} · {} ago", named, files, outcome, format_duration(seconds_ago))


def batch_state(state: BatchState) -> str:
    """Why a batch can no longer be cancelled."""
    return {
        BatchState.DELIVERED: "its reply is posted",
        BatchState.UNDELIVERABLE: "its reply could not be posted",
        BatchState.CANCELLED: "it was cancelled",
    }.get(state, state.value)


# -- /transcribe retry and cancel ----------------------------------------------------------------


def still_running(batch_id: str) -> Mrkdwn:
    return mrkdwn("`{}` is still running; wait for its reply.", batch_id)


def was_cancelled(batch_id: str) -> Mrkdwn:
    return mrkdwn(
        "`{}` was cancelled. To transcribe that message after all, use the "
        "*Transcribe* message shortcut on it.",
        batch_id,
    )


NOTHING_TO_RETRY = mrkdwn("Nothing to retry: no batch in this channel has failed files.")


def no_failed_files(batch_id: str) -> Mrkdwn:
    return mrkdwn("`{}` has no failed files: nothing to retry.", batch_id)


def already_working_on_it(batch_id: str) -> Mrkdwn:
    return mrkdwn("`{}` is already working on that message; wait for its reply.", batch_id)


def resubmitted(
    failed_id: str, batch_id: str, provider_label: str, filenames: Sequence[str]
) -> Mrkdwn:
    return mrkdwn(
        "Resubmitted {} of `{}` as `{}` with {}: {}. The reply will appear in the same thread.",
        plural(len(filenames), "file"),
        failed_id,
        batch_id,
        provider_label,
        join(", ", filenames),
    )


NOTHING_RUNNING_TO_CANCEL = mrkdwn("Nothing is running in this channel.")


def too_late_to_cancel(batch_id: str) -> Mrkdwn:
    return mrkdwn("`{}` is being posted right now: too late to cancel.", batch_id)


def already_finished(batch_id: str, state: BatchState) -> Mrkdwn:
    return mrkdwn("`{}` has already finished ({}).", batch_id, batch_state(state))


def cancelled(batch_id: str, files: Mrkdwn, others_running: int) -> Mrkdwn:
    """``files`` is :func:`file_names`; ``others_running`` counts the batches left running."""
    others = (
        mrkdwn(
            " {} still running; `{} status` lists them.",
            plural(others_running, "other batch"),
            COMMAND,
        )
        if others_running
        else ""
    )
    return mrkdwn("Cancelled `{}` ({}): nothing will be posted for it.{}", batch_id, files, others)


# -- the message shortcut and mentions -----------------------------------------------------------


def already_on_this_message(batch_id: str) -> Mrkdwn:
    return mrkdwn(
        "Already on it: `{}` is transcribing this message; the transcript will appear in its "
        "thread.",
        batch_id,
    )


def already_on_that_message(batch_id: str) -> Mrkdwn:
    return mrkdwn("Already on it: `{}` is transcribing that message.", batch_id)


def cannot_read_thread(code: str) -> Mrkdwn:
    return mrkdwn("I could not read this thread's first message ({}).", code)


#: When an answer that takes Slack calls to put together fails.
ANSWER_FAILED = mrkdwn(
    "Something went wrong while putting that answer together; try again in a moment."
)
