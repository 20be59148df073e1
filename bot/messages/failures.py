"""Why a file was not transcribed, in words for its thread. Stored with the job as plain text
and escaped when the reply shows it."""

from __future__ import annotations

TRANSCRIBE_FAILED = "Something went wrong while transcribing this file."
KEPT_FAILING = "The transcription service kept failing; please try again later."
ACCOUNT_CANNOT_TAKE_WORK = (
    "The transcription service account of this app cannot take new work (its balance or "
    "spending limit is used up). An admin needs to top it up."
)
CREDENTIALS_REJECTED = (
    "The transcription service rejected our credentials. An admin needs to check the API "
    "key of this app."
)


def too_large(size: str, limit: str, limited_by: str | None) -> str:
    """A file over ``limit``, set by the provider ``limited_by`` or else by this app."""
    if limited_by is None:
        reason = f"the limit of this app is {limit}"
    else:
        reason = f"{limited_by} takes at most {limit} per file"
    return f"This file is {size}; {reason}. Trim or compress it and share it again."


def too_long(duration: str, provider: str, max_minutes: float) -> str:
    return (
        f"This recording is {duration} long; {provider} takes at most {max_minutes:,.0f} "
        "minutes per file. Split it into shorter parts and share them again."
    )


def larger_than_app_limit(max_megabytes: int) -> str:
    return f"This file is larger than the {max_megabytes} MB limit of this app."


NOT_A_SLACK_DOWNLOAD = "This file's download link does not point to Slack; skipped."
FILE_GONE = "Slack no longer has this file; it may have been deleted."
SIGN_IN_PAGE = (
    "Slack sent a sign-in page instead of the file. The app probably lacks the `files:read` "
    "scope: an admin should add it and reinstall the app, then share the file again."
)
REDIRECT_LOOP = (
    "Slack kept redirecting this file's download without ever sending the file; share it again "
    "later."
)


def led_off_slack(host: str) -> str:
    return (
        f"Slack's download link for this file led outside Slack (to {host or 'another site'}), "
        "so the app did not follow it: it sends its Slack token to Slack alone. The workspace "
        "may send file downloads through another sign-in; an admin should check its file "
        "settings. Until then, share the file again or use another copy."
    )
