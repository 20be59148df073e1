"""What people ask of the app explicitly, and the words it answers with: ``/transcribe`` and its
subcommands, the *Transcribe* message shortcut, and ``@threadscribe transcribe`` in a thread.

The Bolt listeners stay thin: they hand the request here and send what comes back. Each entry point
is split at the ack. Before it, only SQLite writes (and, for ``/transcribe <link>``, the one message
the answer threads under), so what Slack has acknowledged is already durable; after it, the slower
Slack calls (reactions, ephemeral answers) that may be lost in a crash without losing any work.
"""

from __future__ import annotations

import asyncio
import logging
import re
import string
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.config import ProviderName
from bot.intake import Intake, audio_links_in_text, link_from_token
from bot.languages import ISO_639_1
from bot.media import link_filename
from bot.pipeline import REACTION_FAILED, REACTION_WORKING
from bot.rendering import escape
from bot.slack_api import SlackGateway, slack_error_code
from storage.models import Batch, BatchState, ChannelSettings, Job, JobState
from storage.repository import Repository

log = logging.getLogger(__name__)

#: Longest wait for the message that /transcribe <link> posts before it acks (Slack allows 3 s).
PRE_ACK_POST_SECONDS = 2.0

COMMAND = "/transcribe"
#: Links one ``/transcribe`` may carry: enough for a meeting's recordings, few enough to read back.
MAX_COMMAND_LINKS = 5
#: Finished batches ``status`` lists.
STATUS_FINISHED = 10
#: Running batches ``status`` lists before summing up the rest.
STATUS_RUNNING = 20
#: The word that makes language hints strict: ``/transcribe language en strict``.
STRICT = "strict"

PROVIDER_LABELS = {ProviderName.SONIOX.value: "Soniox", ProviderName.SOKET.value: "Soket.ai"}
PROVIDER_KEYS = {
    ProviderName.SONIOX.value: "SONIOX_API_KEY",
    ProviderName.SOKET.value: "SOKET_API_TOKEN",
}


_BATCH_ID = re.compile(r"b-[0-9a-f]{8,12}")
_USER_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
#: Words a mention may add around "transcribe" and still mean it.
_POLITE = frozenset({"please", "this", "it", "pls"})

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

HELP = f"""*{COMMAND}*: transcribe audio where the conversation is. Answers here are only visible \
to you.
• `{COMMAND} help`: this list.
• `{COMMAND} status`: what is being transcribed in this channel, and the last \
{STATUS_FINISHED} finished.
• `{COMMAND} https://example.com/call.mp3`: transcribe 1 to {MAX_COMMAND_LINKS} links; \
I post a message and answer in its thread.
• `{COMMAND} provider soket`: show (without a name) or choose this channel's \
speech-to-text provider: `soniox` or `soket`.
• `{COMMAND} auto off`: show or switch (`on`/`off`) automatic transcription of uploads and \
audio links in this channel.
• `{COMMAND} language en,hi`: language hints for this channel (ISO 639-1 codes); add \
`strict` to keep to those languages, or say `auto` to detect the language.
• `{COMMAND} retry b-1a2b3c4d5e6f`: transcribe the failed files of the last failed batch \
(or of the batch named) again.
• `{COMMAND} cancel b-1a2b3c4d5e6f`: stop the running batch (or the batch named); nothing is \
posted for it.
Also: the *Transcribe* message shortcut (a message's ⋮ menu, works in threads) and \
`@threadscribe transcribe` in a thread, for the thread's first message."""

MENTION_HELP = (
    "To transcribe a recording, mention me *in its thread* with just "
    "`@threadscribe transcribe`: I transcribe the audio, video and audio links of the thread's "
    "first message. The *Transcribe* message shortcut does the same for any message, and "
    f"`{COMMAND} help` lists everything else."
)
NOTHING_IN_MESSAGE = (
    "This message has no audio, video or audio link I can transcribe. Links count when their "
    "path ends in an audio or video extension such as .mp3, .wav or .m4a; for other links, use "
    f"`{COMMAND} <link>`."
)
NOTHING_IN_PARENT = (
    "The first message of this thread has no audio, video or audio link I can transcribe. To "
    "transcribe a message inside the thread, use the *Transcribe* message shortcut on it."
)


class CommandError(Exception):
    """A request that cannot be done as asked; the message says why, for the person asking."""


@dataclass
class Outcome:
    """What an entry point does once Slack has its ack."""

    #: The answer, visible only to the person who asked; None for no answer.
    text: str | None = None
    #: Slack calls that come after the ack (reactions) and a nudge to the poll cycle.
    follow_up: Callable[[], Awaitable[None]] | None = None
    #: An answer that takes Slack calls to put together: made after the ack, then sent as
    #: ``text`` is.
    answer_later: Callable[[], Awaitable[str]] | None = None


# -- parsing -------------------------------------------------------------------------------------


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
        url = link_from_token(token)
        if url is None:
            raise CommandError(
                f"`{escape(token)}` is not an http or https link. Give 1 to "
                f"{MAX_COMMAND_LINKS} links, such as `{COMMAND} https://example.com/call.mp3`."
            )
        if url not in links:
            links.append(url)
    if len(links) > MAX_COMMAND_LINKS:
        raise CommandError(
            f"That is {len(links)} links; I take at most {MAX_COMMAND_LINKS} at a time. "
            "Send the rest in another command."
        )
    return links


def parse_languages(args: Sequence[str]) -> list[str]:
    """Language hints from ``en,hi`` or ``en hi`` (any case); ``auto`` clears them."""
    codes = [code.strip().lower() for arg in args for code in arg.split(",") if code.strip()]
    if codes == ["auto"]:
        return []
    unknown = [code for code in codes if code not in ISO_639_1]
    if not codes or unknown:
        shown = ", ".join(f"`{escape(code)}`" for code in unknown)
        problem = f"{shown} {'is not an' if len(unknown) == 1 else 'are not'} " if unknown else ""
        raise CommandError(
            f"{problem}ISO 639-1 language code{'' if len(unknown) == 1 else 's'}: give two-letter "
            f"codes such as `{COMMAND} language en,hi`, or `{COMMAND} language auto`."
        )
    return list(dict.fromkeys(codes))


def parse_language_setting(args: Sequence[str]) -> tuple[list[str], bool]:
    """Language hints and whether they are strict, from ``en,hi strict`` (``strict`` anywhere
    among the words); ``auto`` clears both."""
    words = [word for arg in args for word in arg.split(",") if word.strip()]
    strict = any(word.strip().lower() == STRICT for word in words)
    codes = [word for word in words if word.strip().lower() != STRICT]
    if strict and not codes:
        raise CommandError(
            f"`{STRICT}` keeps to the languages you name: give them too, such as "
            f"`{COMMAND} language en {STRICT}`."
        )
    hints = parse_languages(codes)
    if strict and not hints:
        raise CommandError(f"`auto` detects any language; it cannot be `{STRICT}`.")
    return hints, strict


def mention_words(text: str) -> list[str]:
    """The words of a mention's text without the user mentions and punctuation, lower case."""
    stripped = _USER_MENTION.sub(" ", text or "")
    return [
        word for word in (raw.strip(string.punctuation).lower() for raw in stripped.split()) if word
    ]


def asks_to_transcribe(text: str) -> bool:
    words = mention_words(text)
    return "transcribe" in words and all(w == "transcribe" or w in _POLITE for w in words)


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# -- the entry points ----------------------------------------------------------------------------


class Commands:
    def __init__(
        self,
        *,
        repository: Repository,
        intake: Intake,
        slack: SlackGateway,
        providers: Collection[str],
        default_provider: str,
        clock: Callable[[], datetime],
        kick: Callable[[], None],
    ) -> None:
        self._repository = repository
        self._intake = intake
        self._slack = slack
        #: Only providers with credentials: a channel can choose among these alone.
        self._providers = providers
        self._default_provider = default_provider
        self._clock = clock
        self._kick = kick

    # -- /transcribe ------------------------------------------------------------------------------

    async def slash(self, body: Mapping[str, Any]) -> Outcome:
        """Carry out one ``/transcribe``; everything before the returned follow-up is durable."""
        channel = str(body.get("channel_id") or "")
        first, args = split_command(str(body.get("text") or ""))
        subcommand = first.lower()
        try:
            if subcommand in ("", "help"):
                return Outcome(HELP)
            if looks_like_link(first):
                return await self._links(body, channel, parse_links([first, *args]))
            if subcommand == "status":
                # Its links come from Slack (one call each, when not known yet): after the ack.
                return Outcome(answer_later=partial(self._status, channel))
            if subcommand == "provider":
                return Outcome(await self._provider(channel, args))
            if subcommand == "auto":
                return Outcome(await self._auto(channel, args))
            if subcommand in ("language", "languages"):
                return Outcome(await self._language(channel, args))
            if subcommand == "retry":
                return await self._retry(channel, args)
            if subcommand == "cancel":
                return await self._cancel(channel, args)
        except CommandError as exc:
            return Outcome(str(exc))
        return Outcome(f"I don't know the subcommand `{escape(first)}`.\n\n{HELP}")

    async def _links(self, body: Mapping[str, Any], channel: str, links: list[str]) -> Outcome:
        user = str(body.get("user_id") or "")
        lines = [f"Transcribing {plural(len(links), 'link')} for <@{user}>"]
        lines += [f"• <{escape(url)}|{escape(link_filename(url))}>" for url in links]
        # The thread needs a message to hang from, so the message comes first; the batch is
        # recorded right after it and before the ack. A crash in between leaves Slack without an
        # ack: the person sees the command fail and can run it again, rather than a silent loss.
        try:
            # Bounded: the ack is due within 3 s, and a rate-limited post would sleep past it.
            response = await asyncio.wait_for(
                self._slack.client.chat_postMessage(
                    channel=channel, text="\n".join(lines), unfurl_links=False, unfurl_media=False
                ),
                PRE_ACK_POST_SECONDS,
            )
        except SlackApiError as exc:
            log.warning("cannot post the /transcribe message in %s: %s", channel, exc)
            return Outcome(_cannot_post(slack_error_code(exc)))
        except TimeoutError:
            log.warning("posting the /transcribe message in %s took too long", channel)
            return Outcome("Slack is busy right now; please run the command again in a moment.")
        message_ts = str(response["ts"])
        try:
            batch = await self._intake.take_links(
                links,
                channel=channel,
                team_id=_text(body.get("team_id")),
                user_id=user or None,
                message_ts=message_ts,
            )
        except Exception:
            # Without the batch the message would promise a transcript that never comes. The
            # command fails (no ack), so the person knows to run it again.
            with suppress(SlackApiError):
                await self._slack.client.chat_update(
                    channel=channel,
                    ts=message_ts,
                    text=f"Could not start transcribing for <@{user}>; please run it again.",
                )
            raise

        async def follow_up() -> None:
            self._kick()
            await self._slack.add_reaction(channel, message_ts, REACTION_WORKING)

        return Outcome(
            f"Started `{batch.id}`: the transcript will appear in the thread of my message.",
            follow_up,
        )

    async def _status(self, channel: str) -> str:
        now = self._clock()
        running = await self._repository.running_batches(channel)
        finished = await self._repository.finished_batches(channel, STATUS_FINISHED)
        jobs = await self._repository.jobs_of_batches([b.id for b in [*running, *finished]])
        links = await asyncio.gather(
            *(
                self._slack.permalink(batch.channel_id, batch.reply_ts or batch.thread_ts)
                for batch in finished
            )
        )

        lines = ["*Being transcribed in this channel*"]
        if not running:
            lines.append("Nothing right now.")
        for batch in running[:STATUS_RUNNING]:
            lines.append(_running_line(batch, jobs[batch.id], now))
        if len(running) > STATUS_RUNNING:
            lines.append(f"…and {len(running) - STATUS_RUNNING} more.")
        lines.append(f"*Last {STATUS_FINISHED} finished*")
        if not finished:
            lines.append("Nothing yet.")
        for batch, link in zip(finished, links, strict=True):
            lines.append(_finished_line(batch, jobs[batch.id], now, link))
        settings = await self._repository.channel_settings(channel)
        if settings.language_hints:
            lines.append(f"Language hints for new work: {_hints_text(settings)}")
        return "\n".join(lines)

    async def _provider(self, channel: str, args: list[str]) -> str:
        settings = await self._repository.channel_settings(channel)
        available = ", ".join(f"`{name}`" for name in sorted(self._providers)) or "none"
        if not args:
            current = settings.provider or self._default_provider
            how = "chosen for this channel" if settings.provider else "the app's default"
            missing = (
                ""
                if current in self._providers
                else f" It is not set up on this app any more ({PROVIDER_KEYS.get(current)} is "
                "missing), so new work here fails until you choose another."
            )
            return (
                f"This channel uses *{_label(current)}* ({how}).{missing} Available: {available}. "
                f"Change it with `{COMMAND} provider <name>`."
            )
        if len(args) > 1:
            raise CommandError(f"Name one provider, such as `{COMMAND} provider soniox`.")
        name = args[0].lower()
        if name not in PROVIDER_LABELS:
            raise CommandError(
                f"There is no provider called `{escape(args[0])}`. Choose one of: {available}."
            )
        if name not in self._providers:
            raise CommandError(
                f"{_label(name)} is not set up on this app ({PROVIDER_KEYS[name]} is missing), so "
                f"this channel cannot use it. Available: {available}."
            )
        settings.provider = name
        await self._repository.save_channel_settings(settings, self._clock())
        return (
            f"This channel now uses *{_label(name)}* for new work; work already started keeps its "
            "provider."
        )

    async def _auto(self, channel: str, args: list[str]) -> str:
        settings = await self._repository.channel_settings(channel)
        if args:
            if len(args) > 1 or args[0].lower() not in ("on", "off"):
                raise CommandError(f"`auto` takes `on` or `off`, such as `{COMMAND} auto off`.")
            settings.auto = args[0].lower() == "on"
            await self._repository.save_channel_settings(settings, self._clock())
        state = "on" if settings.auto else "off"
        now = "now " if args else ""
        if settings.auto:
            return (
                f"Automatic transcription is {now}*{state}* in this channel: uploads and audio "
                f"links are transcribed as they are shared. `{COMMAND} auto off` stops that."
            )
        return (
            f"Automatic transcription is {now}*{state}* in this channel: I transcribe only when "
            "asked, with the *Transcribe* message shortcut, `@threadscribe transcribe` in a "
            f"thread, or `{COMMAND} <link>`. `{COMMAND} auto on` turns it back on."
        )

    async def _language(self, channel: str, args: list[str]) -> str:
        settings = await self._repository.channel_settings(channel)
        if args:
            settings.language_hints, settings.language_hints_strict = parse_language_setting(args)
            await self._repository.save_channel_settings(settings, self._clock())
        now = "now " if args else ""
        if not settings.language_hints:
            return (
                f"Language hints are {now}off in this channel: the provider detects the "
                f"language. Set some with `{COMMAND} language en,hi` (add `{STRICT}` to keep "
                "to them)."
            )
        codes = ", ".join(f"`{code}`" for code in settings.language_hints)
        if settings.language_hints_strict:
            how = (
                f", {STRICT}: Soniox keeps to these languages (Soket.ai only leans towards them). "
                f"`{COMMAND} language {','.join(settings.language_hints)}` makes them hints only."
            )
        else:
            how = f": the provider leans towards these languages; add `{STRICT}` to keep to them."
        return (
            f"Language hints in this channel are {now}{codes}{how} They apply to new work; "
            f"`{COMMAND} language auto` removes them."
        )

    async def _retry(self, channel: str, args: list[str]) -> Outcome:
        if len(args) > 1:
            raise CommandError(f"Name at most one batch, such as `{COMMAND} retry b-1a2b3c4d5e6f`.")
        if args:
            failed = await self._batch_in_channel(channel, args[0])
            if failed.state in (BatchState.OPEN, BatchState.DELIVERING):
                raise CommandError(f"`{failed.id}` is still running; wait for its reply.")
            if failed.state is BatchState.CANCELLED:
                raise CommandError(
                    f"`{failed.id}` was cancelled. To transcribe that message after all, use the "
                    "*Transcribe* message shortcut on it."
                )
        else:
            found = await self._repository.last_failed_batch(channel)
            if found is None:
                raise CommandError("Nothing to retry: no batch in this channel has failed files.")
            failed = found
        failed_jobs = [
            job for job in await self._repository.jobs_of(failed.id) if job.state is JobState.FAILED
        ]
        if not failed_jobs:
            raise CommandError(f"`{failed.id}` has no failed files: nothing to retry.")
        running = await self._repository.active_batch_for_message(channel, failed.message_ts)
        if running is not None:
            raise CommandError(
                f"`{running.id}` is already working on that message; wait for its reply."
            )
        batch = await self._intake.resubmit(failed, failed_jobs)

        async def follow_up() -> None:
            self._kick()
            await self._slack.remove_reaction(channel, batch.message_ts, REACTION_FAILED)
            await self._slack.add_reaction(channel, batch.message_ts, REACTION_WORKING)

        names = ", ".join(escape(job.filename) for job in failed_jobs)
        return Outcome(
            f"Resubmitted {plural(len(failed_jobs), 'file')} of `{failed.id}` as `{batch.id}` "
            f"with {_label(batch.provider)}: {names}. The reply will appear in the same thread.",
            follow_up,
        )

    async def _cancel(self, channel: str, args: list[str]) -> Outcome:
        if len(args) > 1:
            raise CommandError(
                f"Name at most one batch, such as `{COMMAND} cancel b-1a2b3c4d5e6f`."
            )
        others = 0
        if args:
            batch = await self._batch_in_channel(channel, args[0])
        else:
            running = [
                b
                for b in await self._repository.running_batches(channel)
                if b.state is BatchState.OPEN
            ]
            if not running:
                raise CommandError("Nothing is running in this channel.")
            batch, others = running[-1], len(running) - 1
        # Conditional: if the pipeline has begun posting the reply meanwhile, it wins.
        cancelled = batch.state is BatchState.OPEN and await self._repository.change_batch_state(
            batch.id, self._clock(), expected=[BatchState.OPEN], state=BatchState.CANCELLED
        )
        if not cancelled:
            current = await self._repository.get_batch(batch.id)
            state = current.state if current is not None else batch.state
            if state is BatchState.DELIVERING:
                raise CommandError(f"`{batch.id}` is being posted right now: too late to cancel.")
            raise CommandError(f"`{batch.id}` has already finished ({_batch_state(state)}).")
        jobs = await self._repository.jobs_of(batch.id)

        async def follow_up() -> None:
            await self._slack.remove_reaction(channel, batch.message_ts, REACTION_WORKING)

        text = f"Cancelled `{batch.id}` ({_names(jobs)}): nothing will be posted for it." + (
            f" {plural(others, 'other batch')} still running; `{COMMAND} status` lists them."
            if others
            else ""
        )
        return Outcome(text, follow_up)

    async def _batch_in_channel(self, channel: str, batch_id: str) -> Batch:
        wanted = batch_id.strip().lower()
        if not _BATCH_ID.fullmatch(wanted):
            raise CommandError(
                f"`{escape(batch_id)}` is not a batch id; ids look like `b-1a2b3c4d5e6f` "
                f"(`{COMMAND} status` shows them)."
            )
        batch = await self._repository.get_batch(wanted)
        # Another channel's batch is not this channel's business, not even its existence.
        if batch is None or batch.channel_id != channel:
            raise CommandError(f"There is no batch `{wanted}` in this channel.")
        return batch

    # -- the message shortcut ---------------------------------------------------------------------

    async def shortcut(self, payload: Mapping[str, Any]) -> Outcome:
        """Record the media of the message the *Transcribe* shortcut was run on."""
        message = payload.get("message") or {}
        channel = str((payload.get("channel") or {}).get("id") or "")
        requested = await self._intake.take_request(
            message,
            channel=channel,
            team_id=_text((payload.get("team") or {}).get("id")),
            user_id=_text((payload.get("user") or {}).get("id")),
            source="shortcut",
        )
        if requested.running is not None:
            return Outcome(
                f"Already on it: `{requested.running.id}` is transcribing this message; the "
                "transcript will appear in its thread."
            )
        batch = requested.batch
        if batch is None:
            return Outcome(NOTHING_IN_MESSAGE)
        return Outcome(None, self._started(batch))

    # -- mentions ---------------------------------------------------------------------------------

    async def mention(self, event: Mapping[str, Any], team_id: str | None) -> None:
        """Answer ``@threadscribe …``; runs after the ack, as it reads the thread from Slack."""
        channel = str(event.get("channel") or "")
        ts = str(event.get("ts") or "")
        thread_ts = _text(event.get("thread_ts"))
        text = str(event.get("text") or "")
        if event.get("files") or audio_links_in_text(text):
            settings = await self._repository.channel_settings(channel)
            if settings.auto:
                return  # the message itself is being transcribed automatically
        in_thread = thread_ts is not None and thread_ts != ts
        if not in_thread or not asks_to_transcribe(text):
            await self._say(channel, thread_ts or ts, MENTION_HELP)
            return
        assert thread_ts is not None
        try:
            parent = await self._thread_parent(channel, thread_ts)
        except SlackApiError as exc:
            log.warning("cannot read thread %s in %s: %s", thread_ts, channel, exc)
            await self._say(
                channel,
                thread_ts,
                f"I could not read this thread's first message ({slack_error_code(exc)}).",
            )
            return
        requested = await self._intake.take_request(
            parent,
            channel=channel,
            team_id=team_id,
            user_id=_text(event.get("user")),
            source="mention",
        )
        if requested.running is not None:
            await self._say(
                channel,
                thread_ts,
                f"Already on it: `{requested.running.id}` is transcribing that message.",
            )
        elif requested.batch is None:
            await self._say(channel, thread_ts, NOTHING_IN_PARENT)
        else:
            await self._started(requested.batch)()

    async def _thread_parent(self, channel: str, thread_ts: str) -> dict[str, Any]:
        # Slack's own answer: its files are the only ones that get the bot token on download.
        response = await self._slack.client.conversations_replies(
            channel=channel, ts=thread_ts, limit=1
        )
        for message in response.get("messages") or []:
            if isinstance(message, dict) and message.get("ts") == thread_ts:
                return message
        return {}

    async def _say(self, channel: str, thread_ts: str, text: str) -> None:
        try:
            await self._slack.client.chat_postMessage(
                channel=channel,
                thread_ts=thread_ts,
                text=text,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            log.warning("cannot answer in %s: %s", channel, slack_error_code(exc))

    def _started(self, batch: Batch) -> Callable[[], Awaitable[None]]:
        async def follow_up() -> None:
            self._kick()
            await self._slack.add_reaction(batch.channel_id, batch.message_ts, REACTION_WORKING)

        return follow_up


# -- rendering -----------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    return str(value) if value else None


def _hints_text(settings: ChannelSettings) -> str:
    """The channel's language hints as the answers show them: `en`, `hi` (strict)."""
    codes = ", ".join(f"`{code}`" for code in settings.language_hints)
    return f"{codes} ({STRICT})" if settings.language_hints_strict else codes


def _label(provider: str) -> str:
    return PROVIDER_LABELS.get(provider, provider)


def _names(jobs: Sequence[Job], limit: int = 5) -> str:
    shown = [f"*{escape(job.filename)}*" for job in jobs[:limit]]
    if len(jobs) > limit:
        shown.append(f"{len(jobs) - limit} more")
    return ", ".join(shown) or "no files"


def _batch_state(state: BatchState) -> str:
    return {
        BatchState.DELIVERED: "its reply is posted",
        BatchState.UNDELIVERABLE: "its reply could not be posted",
        BatchState.CANCELLED: "it was cancelled",
    }.get(state, state.value)


def _running_line(batch: Batch, jobs: Sequence[Job], now: datetime) -> str:
    files = ", ".join(
        f"*{escape(job.filename)}* ({JOB_STATE_LABELS[job.state]})"
        for job in jobs
        if job.state is not JobState.SKIPPED
    )
    parts = [f"`{batch.id}` {files or 'no files'}"]
    if batch.user_id:
        parts.append(f"shared by <@{batch.user_id}>")
    parts.append(f"started {format_duration((now - batch.created_at).total_seconds())} ago")
    if batch.state is BatchState.DELIVERING:
        parts.append("posting the reply")
    else:
        etas = [
            job.provider_eta_at
            for job in jobs
            if job.provider_eta_at is not None and not job.state.is_terminal
        ]
        if etas:
            left = (max(etas) - now).total_seconds()
            parts.append(
                f"{_label(batch.provider)} expects it in about {format_duration(left)}"
                if left > 0
                else f"{_label(batch.provider)} expected it by now"
            )
    return "• " + " · ".join(parts)


def _finished_line(batch: Batch, jobs: Sequence[Job], now: datetime, link: str | None) -> str:
    """One finished batch, its id linked to its reply (to its thread before a reply) when Slack
    gave the link."""
    reported = [job for job in jobs if job.state is not JobState.SKIPPED]
    failed = sum(job.state is JobState.FAILED for job in reported)
    if batch.state is BatchState.CANCELLED:
        outcome = "cancelled"
    elif batch.state is BatchState.UNDELIVERABLE:
        outcome = "reply could not be posted"
    elif failed == len(reported) and reported:
        outcome = "failed"
    elif failed:
        outcome = f"{failed} of {len(reported)} failed"
    else:
        outcome = "transcribed"
    when = batch.delivered_at or batch.updated_at
    named = f"<{escape(link)}|{batch.id}>" if link else f"`{batch.id}`"
    return (
        f"• {named} {_names(reported)} · {outcome} · "
        f"{format_duration((now - when).total_seconds())} ago"
    )


def _cannot_post(code: str) -> str:
    if code in ("not_in_channel", "channel_not_found"):
        return (
            "I can't post in this conversation, so I can't start a thread here. Invite me first "
            "with `/invite @threadscribe`, or run the command in a channel I am in."
        )
    return f"Slack refused my message ({code or 'unknown error'}); try again in a moment."
