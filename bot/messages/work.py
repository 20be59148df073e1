"""What the work says in Slack: the progress messages and final notes in a batch's thread, and
the reasons a file failed on its way through the work."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.slack_text import Mrkdwn, mrkdwn
from storage.models import Job

CANCELLED_TEXT = mrkdwn(
    ":no_entry_sign: Transcription cancelled; nothing more will be posted for it."
)
NOT_ATTACHED_TEXT = mrkdwn(
    ":warning: The full transcript could not be attached: the app may not upload files here "
    "(the `files:write` scope is missing). An admin should add it and reinstall the app; until "
    "then only the beginning is shown above."
)
NOTHING_TEXT = mrkdwn(
    ":information_source: Nothing here to transcribe: no audio or video was found."
)

#: ``files.info`` errors no retry can fix, with what to tell the person who shared the file.
FILE_INFO_ERRORS = {
    "file_not_found": "Slack no longer has this file; it may have been deleted.",
    "file_deleted": "Slack no longer has this file; it may have been deleted.",
    "missing_scope": (
        "The app may not read files here (the `files:read` scope is missing): an admin should "
        "add it and reinstall the app."
    ),
    "not_in_channel": "The app cannot see this file; invite it to the channel and try again.",
    "access_denied": "The app is not allowed to read this file.",
}

NO_DOWNLOAD_URL = (
    "Slack does not offer this file for download (it may be hidden by the workspace's plan or "
    "deleted)."
)

#: What a step was doing when the age limit ran out: trying again, or waiting for an account.
TRYING, WAITING = "trying", "waiting"

#: How a progress message saying that files wait for their provider's account begins.
HELD_MARK = ":double_vertical_bar:"


def gave_up(hours: float, doing: str, reason: str) -> str:
    return f"Gave up after {hours:g} hours of {doing}. {reason}"


def not_finished_after(hours: float) -> str:
    return (
        f"The transcription service had not finished after {hours:g} hours; try again later, "
        "or with another provider."
    )


def lost_again(reason: str, resubmissions: int) -> str:
    times = {1: "once", 2: "twice"}.get(resubmissions, f"{resubmissions} times")
    return (
        f"{reason} It was sent again {times} and lost each time; share the file again later to "
        "retry."
    )


def unconfigured(provider: str) -> str:
    return (
        f"The {provider} provider is not set up on this app; an admin needs to add its "
        "credentials, or choose another provider for this channel."
    )


def progress_text(jobs: Sequence[Job], label_of: Callable[[str], str]) -> Mrkdwn:
    """``Transcribing 2 files… 1 of 2 done``; for one file, its name. While files wait for their
    provider's account, a note saying so and that nothing is wrong with them; ``label_of`` names
    the provider as people know it."""
    held = [job for job in jobs if job.held_by and not job.state.is_terminal]
    if held:
        return held_text(held, len(jobs), label_of(str(held[0].held_by)))
    done = sum(job.state.is_terminal for job in jobs)
    if len(jobs) == 1:
        return mrkdwn(":hourglass_flowing_sand: Transcribing *{}*…", jobs[0].filename)
    return mrkdwn(
        ":hourglass_flowing_sand: Transcribing {} files… {} of {} done", len(jobs), done, len(jobs)
    )


def held_text(held: Sequence[Job], total: int, provider: str) -> Mrkdwn:
    """The note for files waiting on their provider's account: not their fault, nothing to do
    for whoever shared them, and it goes on by itself."""
    if total == 1:
        which, goes_on = mrkdwn("*{}*", held[0].filename), "It goes on by itself"
    elif len(held) == total:
        which, goes_on = mrkdwn("these {} files", total), "They go on by themselves"
    else:
        which, goes_on = (
            mrkdwn("{} of these {} files", len(held), total),
            "They go on by themselves",
        )
    return mrkdwn(
        "{} Waiting: the {} account of this app cannot take new work right now (its "
        "balance or spending limit is used up), and an admin needs to fix it. Nothing is wrong "
        "with {}. {} once the account works again.",
        HELD_MARK,
        provider,
        which,
        goes_on,
    )
