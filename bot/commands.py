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

from bot.intake import Intake, audio_links_in_text, link_as_typed
from bot.languages import ISO_639_1
from bot.media import link_filename
from bot.providers import registry
from bot.slack_api import SlackGateway, slack_error_code
from bot.slack_text import Mrkdwn, join, link, mention, mrkdwn, unescape
from bot.work.texts import REACTION_FAILED, REACTION_WORKING
from storage.models import Batch, BatchState, ChannelSettings, Job, JobState
from storage.store import Store

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


def _either(names: Sequence[str]) -> Mrkdwn:
    """The names quoted and listed: `a`, `b` or `c`."""
    quoted = [mrkdwn("`{}`", name) for name in names]
    return join(" or ", [part for part in (join(", ", quoted[:-1]), quoted[-1]) if part])


def help_text() -> Mrkdwn:
    """What ``/transcribe help`` answers; it names every registered provider."""
    names = registry.names()
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
• `{command} retry b-1a2b3c4d5e6f`: transcribe the failed files of the last failed batch \
(or of the batch named) again.
• `{command} cancel b-1a2b3c4d5e6f`: stop the running batch (or the batch named); nothing is \
posted for it.
Also: the *Transcribe* message shortcut (a message's ⋮ menu, works in threads) and \
`@threadscribe transcribe` in a thread, for the thread's first message.""",
        command=COMMAND,
        finished=STATUS_FINISHED,
        links=MAX_COMMAND_LINKS,
        example=names[-1],
        providers=_either(names),
    )


HELP = help_text()

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


class CommandError(Exception):
    """A request that cannot be done as asked; ``text`` says why, for the person asking."""

    def __init__(self, text: Mrkdwn) -> None:
        super().__init__(text)
        self.text = text


@dataclass
class Outcome:
    """What an entry point does once Slack has its ack."""

    #: The answer, visible only to the person who asked; None for no answer.
    text: Mrkdwn | None = None
    #: Slack calls that come after the ack (reactions) and a nudge to the poll cycle.
    follow_up: Callable[[], Awaitable[None]] | None = None
    #: An answer that takes Slack calls to put together: made after the ack, then sent as
    #: ``text`` is.
    answer_later: Callable[[], Awaitable[Mrkdwn]] | None = None


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
        url = link_as_typed(token)
        if url is None:
            raise CommandError(
                mrkdwn(
                    "`{}` is not an http or https link. Give 1 to {} links, such as "
                    "`{} https://example.com/call.mp3`.",
                    token,
                    MAX_COMMAND_LINKS,
                    COMMAND,
                )
            )
        if url not in links:
            links.append(url)
    if len(links) > MAX_COMMAND_LINKS:
        raise CommandError(
            mrkdwn(
                "That is {} links; I take at most {} at a time. Send the rest in another command.",
                len(links),
                MAX_COMMAND_LINKS,
            )
        )
    return links


def parse_languages(args: Sequence[str]) -> list[str]:
    """Language hints from ``en,hi`` or ``en hi`` (any case); ``auto`` clears them."""
    codes = [code.strip().lower() for arg in args for code in arg.split(",") if code.strip()]
    if codes == ["auto"]:
        return []
    unknown = [code for code in codes if code not in ISO_639_1]
    if not codes or unknown:
        shown = join(", ", [mrkdwn("`{}`", code) for code in unknown])
        problem = (
            mrkdwn("{} {} ", shown, "is not an" if len(unknown) == 1 else "are not")
            if unknown
            else ""
        )
        raise CommandError(
            mrkdwn(
                "{}ISO 639-1 language code{}: give two-letter codes such as "
                "`{command} language en,hi`, or `{command} language auto`.",
                problem,
                "" if len(unknown) == 1 else "s",
                command=COMMAND,
            )
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
            mrkdwn(
                "`{strict}` keeps to the languages you name: give them too, such as "
                "`{command} language en {strict}`.",
                strict=STRICT,
                command=COMMAND,
            )
        )
    hints = parse_languages(codes)
    if strict and not hints:
        raise CommandError(mrkdwn("`auto` detects any language; it cannot be `{}`.", STRICT))
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
        store: Store,
        intake: Intake,
        slack: SlackGateway,
        providers: Collection[str],
        default_provider: str,
        clock: Callable[[], datetime],
        kick: Callable[[], None],
    ) -> None:
        self._store = store
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
        # Slack sends &, < and > as entities. Decoded here, once, everything after works on the
        # words as typed, and the answer escapes them once on the way out.
        first, args = split_command(unescape(str(body.get("text") or "")))
        subcommand = first.lower()
        try:
            if subcommand in ("", "help"):
                return Outcome(help_text())
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
            return Outcome(exc.text)
        return Outcome(mrkdwn("I don't know the subcommand `{}`.\n\n{}", first, HELP))

    async def _links(self, body: Mapping[str, Any], channel: str, links: list[str]) -> Outcome:
        user = str(body.get("user_id") or "")
        lines = [mrkdwn("Transcribing {} for {}", plural(len(links), "link"), mention(user))]
        lines += [mrkdwn("• {}", link(url, link_filename(url))) for url in links]
        # The thread needs a message to hang from, so the message comes first; the batch is
        # recorded right after it and before the ack. A crash in between leaves Slack without an
        # ack: the person sees the command fail and can run it again, rather than a silent loss.
        try:
            # Bounded: the ack is due within 3 s, and a rate-limited post would sleep past it.
            message_ts = await asyncio.wait_for(
                self._slack.post_message(channel=channel, text=join("\n", lines)),
                PRE_ACK_POST_SECONDS,
            )
        except SlackApiError as exc:
            log.warning("cannot post the /transcribe message in %s: %s", channel, exc)
            return Outcome(_cannot_post(slack_error_code(exc)))
        except TimeoutError:
            log.warning("posting the /transcribe message in %s took too long", channel)
            return Outcome(
                mrkdwn("Slack is busy right now; please run the command again in a moment.")
            )
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
                await self._slack.update_text(
                    channel=channel,
                    ts=message_ts,
                    text=mrkdwn(
                        "Could not start transcribing for {}; please run it again.", mention(user)
                    ),
                )
            raise

        async def follow_up() -> None:
            self._kick()
            await self._slack.add_reaction(channel, message_ts, REACTION_WORKING)

        return Outcome(
            mrkdwn(
                "Started `{}`: the transcript will appear in the thread of my message.", batch.id
            ),
            follow_up,
        )

    async def _status(self, channel: str) -> Mrkdwn:
        now = self._clock()
        running = await self._store.running_batches(channel)
        finished = await self._store.finished_batches(channel, STATUS_FINISHED)
        jobs = await self._store.jobs_of_batches([b.id for b in [*running, *finished]])
        links = await asyncio.gather(
            *(
                self._slack.permalink(batch.channel_id, batch.reply_ts or batch.thread_ts)
                for batch in finished
            )
        )

        lines = [mrkdwn("*Being transcribed in this channel*")]
        if not running:
            lines.append(mrkdwn("Nothing right now."))
        for batch in running[:STATUS_RUNNING]:
            lines.append(_running_line(batch, jobs[batch.id], now))
        if len(running) > STATUS_RUNNING:
            lines.append(mrkdwn("…and {} more.", len(running) - STATUS_RUNNING))
        lines.append(mrkdwn("*Last {} finished*", STATUS_FINISHED))
        if not finished:
            lines.append(mrkdwn("Nothing yet."))
        for batch, address in zip(finished, links, strict=True):
            lines.append(_finished_line(batch, jobs[batch.id], now, address))
        settings = await self._store.channel_settings(channel)
        if settings.language_hints:
            lines.append(mrkdwn("Language hints for new work: {}", _hints_text(settings)))
        return join("\n", lines)

    async def _provider(self, channel: str, args: list[str]) -> Mrkdwn:
        settings = await self._store.channel_settings(channel)
        available = join(", ", [mrkdwn("`{}`", name) for name in sorted(self._providers)])
        available = available or mrkdwn("none")
        if not args:
            current = settings.provider or self._default_provider
            how = "chosen for this channel" if settings.provider else "the app's default"
            missing = (
                ""
                if current in self._providers
                else mrkdwn(
                    " It is not set up on this app any more ({} is missing), so new work here "
                    "fails until you choose another.",
                    _variables_missing(current),
                )
            )
            return mrkdwn(
                "This channel uses *{}* ({}).{} Available: {}. Change it with "
                "`{} provider &lt;name&gt;`.",
                _label(current),
                how,
                missing,
                available,
                COMMAND,
            )
        if len(args) > 1:
            raise CommandError(
                mrkdwn("Name one provider, such as `{} provider {}`.", COMMAND, registry.names()[0])
            )
        name = args[0].lower()
        if registry.spec_named(name) is None:
            raise CommandError(
                mrkdwn("There is no provider called `{}`. Choose one of: {}.", args[0], available)
            )
        if name not in self._providers:
            raise CommandError(
                mrkdwn(
                    "{} is not set up on this app ({} is missing), so this channel cannot use "
                    "it. Available: {}.",
                    _label(name),
                    _variables_missing(name),
                    available,
                )
            )
        settings.provider = name
        await self._store.save_channel_settings(settings, self._clock())
        return mrkdwn(
            "This channel now uses *{}* for new work; work already started keeps its provider.",
            _label(name),
        )

    async def _auto(self, channel: str, args: list[str]) -> Mrkdwn:
        settings = await self._store.channel_settings(channel)
        if args:
            if len(args) > 1 or args[0].lower() not in ("on", "off"):
                raise CommandError(
                    mrkdwn("`auto` takes `on` or `off`, such as `{} auto off`.", COMMAND)
                )
            settings.auto = args[0].lower() == "on"
            await self._store.save_channel_settings(settings, self._clock())
        state = "on" if settings.auto else "off"
        now = "now " if args else ""
        if settings.auto:
            return mrkdwn(
                "Automatic transcription is {now}*{state}* in this channel: uploads and audio "
                "links are transcribed as they are shared. `{command} auto off` stops that.",
                now=now,
                state=state,
                command=COMMAND,
            )
        return mrkdwn(
            "Automatic transcription is {now}*{state}* in this channel: I transcribe only when "
            "asked, with the *Transcribe* message shortcut, `@threadscribe transcribe` in a "
            "thread, or `{command} &lt;link&gt;`. `{command} auto on` turns it back on.",
            now=now,
            state=state,
            command=COMMAND,
        )

    async def _language(self, channel: str, args: list[str]) -> Mrkdwn:
        settings = await self._store.channel_settings(channel)
        if args:
            settings.language_hints, settings.language_hints_strict = parse_language_setting(args)
            await self._store.save_channel_settings(settings, self._clock())
        now = "now " if args else ""
        if not settings.language_hints:
            return mrkdwn(
                "Language hints are {}off in this channel: the provider detects the language. "
                "Set some with `{} language en,hi` (add `{}` to keep to them).",
                now,
                COMMAND,
                STRICT,
            )
        codes = join(", ", [mrkdwn("`{}`", code) for code in settings.language_hints])
        if settings.language_hints_strict:
            how = mrkdwn(
                ", {strict}: {who_keeps}. `{command} language {codes}` makes them hints only.",
                strict=STRICT,
                who_keeps=_who_keeps_to_hints(),
                command=COMMAND,
                codes=",".join(settings.language_hints),
            )
        else:
            how = mrkdwn(
                ": the provider leans towards these languages; add `{}` to keep to them.", STRICT
            )
        return mrkdwn(
            "Language hints in this channel are {}{}{} They apply to new work; "
            "`{} language auto` removes them.",
            now,
            codes,
            how,
            COMMAND,
        )

    async def _retry(self, channel: str, args: list[str]) -> Outcome:
        if len(args) > 1:
            raise CommandError(
                mrkdwn("Name at most one batch, such as `{} retry b-1a2b3c4d5e6f`.", COMMAND)
            )
        if args:
            failed = await self._batch_in_channel(channel, args[0])
            if failed.state in (BatchState.OPEN, BatchState.DELIVERING):
                raise CommandError(mrkdwn("`{}` is still running; wait for its reply.", failed.id))
            if failed.state is BatchState.CANCELLED:
                raise CommandError(
                    mrkdwn(
                        "`{}` was cancelled. To transcribe that message after all, use the "
                        "*Transcribe* message shortcut on it.",
                        failed.id,
                    )
                )
        else:
            found = await self._store.last_failed_batch(channel)
            if found is None:
                raise CommandError(
                    mrkdwn("Nothing to retry: no batch in this channel has failed files.")
                )
            failed = found
        failed_jobs = [
            job for job in await self._store.jobs_of(failed.id) if job.state is JobState.FAILED
        ]
        if not failed_jobs:
            raise CommandError(mrkdwn("`{}` has no failed files: nothing to retry.", failed.id))
        running = await self._store.active_batch_for_message(channel, failed.message_ts)
        if running is not None:
            raise CommandError(
                mrkdwn("`{}` is already working on that message; wait for its reply.", running.id)
            )
        batch = await self._intake.resubmit(failed, failed_jobs)

        async def follow_up() -> None:
            self._kick()
            await self._slack.remove_reaction(channel, batch.message_ts, REACTION_FAILED)
            await self._slack.add_reaction(channel, batch.message_ts, REACTION_WORKING)

        return Outcome(
            mrkdwn(
                "Resubmitted {} of `{}` as `{}` with {}: {}. The reply will appear in the same "
                "thread.",
                plural(len(failed_jobs), "file"),
                failed.id,
                batch.id,
                _label(batch.provider),
                join(", ", [job.filename for job in failed_jobs]),
            ),
            follow_up,
        )

    async def _cancel(self, channel: str, args: list[str]) -> Outcome:
        if len(args) > 1:
            raise CommandError(
                mrkdwn("Name at most one batch, such as `{} cancel b-1a2b3c4d5e6f`.", COMMAND)
            )
        others = 0
        if args:
            batch = await self._batch_in_channel(channel, args[0])
        else:
            running = [
                b for b in await self._store.running_batches(channel) if b.state is BatchState.OPEN
            ]
            if not running:
                raise CommandError(mrkdwn("Nothing is running in this channel."))
            batch, others = running[-1], len(running) - 1
        # Conditional: if the pipeline has begun posting the reply meanwhile, it wins.
        cancelled = batch.state is BatchState.OPEN and await self._store.cancel_batch(
            batch.id, self._clock()
        )
        if not cancelled:
            current = await self._store.get_batch(batch.id)
            state = current.state if current is not None else batch.state
            if state is BatchState.DELIVERING:
                raise CommandError(
                    mrkdwn("`{}` is being posted right now: too late to cancel.", batch.id)
                )
            raise CommandError(
                mrkdwn("`{}` has already finished ({}).", batch.id, _batch_state(state))
            )
        jobs = await self._store.jobs_of(batch.id)

        async def follow_up() -> None:
            await self._slack.remove_reaction(channel, batch.message_ts, REACTION_WORKING)

        still_running = (
            mrkdwn(
                " {} still running; `{} status` lists them.", plural(others, "other batch"), COMMAND
            )
            if others
            else ""
        )
        text = mrkdwn(
            "Cancelled `{}` ({}): nothing will be posted for it.{}",
            batch.id,
            _names(jobs),
            still_running,
        )
        return Outcome(text, follow_up)

    async def _batch_in_channel(self, channel: str, batch_id: str) -> Batch:
        wanted = batch_id.strip().lower()
        if not _BATCH_ID.fullmatch(wanted):
            raise CommandError(
                mrkdwn(
                    "`{}` is not a batch id; ids look like `b-1a2b3c4d5e6f` (`{} status` shows "
                    "them).",
                    batch_id,
                    COMMAND,
                )
            )
        batch = await self._store.get_batch(wanted)
        # Another channel's batch is not this channel's business, not even its existence.
        if batch is None or batch.channel_id != channel:
            raise CommandError(mrkdwn("There is no batch `{}` in this channel.", wanted))
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
                mrkdwn(
                    "Already on it: `{}` is transcribing this message; the transcript will "
                    "appear in its thread.",
                    requested.running.id,
                )
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
            settings = await self._store.channel_settings(channel)
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
                mrkdwn("I could not read this thread's first message ({}).", slack_error_code(exc)),
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
                mrkdwn("Already on it: `{}` is transcribing that message.", requested.running.id),
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

    async def _say(self, channel: str, thread_ts: str, text: Mrkdwn) -> None:
        try:
            await self._slack.post_message(channel=channel, thread_ts=thread_ts, text=text)
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


def _hints_text(settings: ChannelSettings) -> Mrkdwn:
    """The channel's language hints as the answers show them: `en`, `hi` (strict)."""
    codes = join(", ", [mrkdwn("`{}`", code) for code in settings.language_hints])
    return mrkdwn("{} ({})", codes, STRICT) if settings.language_hints_strict else codes


def _label(provider: str) -> str:
    return registry.label_of(provider)


def _variables_missing(provider: str) -> str | None:
    """The settings ``provider`` needs, as an admin sets them (``<PROVIDER>_API_KEY``)."""
    spec = registry.spec_named(provider)
    return " and ".join(spec.variable(name) for name in spec.required) if spec else None


def _who_keeps_to_hints() -> str:
    """Which providers keep to strict hints and which only lean towards them, by label."""
    keep = [spec.label for spec in registry.specs() if spec.provider.keeps_to_language_hints]
    lean = [spec.label for spec in registry.specs() if not spec.provider.keeps_to_language_hints]
    if not keep:
        return "the providers only lean towards these languages"
    sentence = f"{_and(keep)} {'keeps' if len(keep) == 1 else 'keep'} to these languages"
    if lean:
        sentence += f" ({_and(lean)} only {'leans' if len(lean) == 1 else 'lean'} towards them)"
    return sentence


def _and(labels: Sequence[str]) -> str:
    return " and ".join(filter(None, [", ".join(labels[:-1]), labels[-1]]))


def _names(jobs: Sequence[Job], limit: int = 5) -> Mrkdwn:
    shown = [mrkdwn("*{}*", job.filename) for job in jobs[:limit]]
    if len(jobs) > limit:
        shown.append(mrkdwn("{} more", len(jobs) - limit))
    return join(", ", shown) or mrkdwn("no files")


def _batch_state(state: BatchState) -> str:
    return {
        BatchState.DELIVERED: "its reply is posted",
        BatchState.UNDELIVERABLE: "its reply could not be posted",
        BatchState.CANCELLED: "it was cancelled",
    }.get(state, state.value)


def _running_line(batch: Batch, jobs: Sequence[Job], now: datetime) -> Mrkdwn:
    files = join(
        ", ",
        [
            mrkdwn("*{}* ({})", job.filename, JOB_STATE_LABELS[job.state])
            for job in jobs
            if job.state is not JobState.SKIPPED
        ],
    )
    parts = [mrkdwn("`{}` {}", batch.id, files or "no files")]
    if batch.user_id:
        parts.append(mrkdwn("shared by {}", mention(batch.user_id)))
    started = format_duration((now - batch.created_at).total_seconds())
    parts.append(mrkdwn("started {} ago", started))
    if batch.state is BatchState.DELIVERING:
        parts.append(mrkdwn("posting the reply"))
    else:
        etas = [
            job.provider_eta_at
            for job in jobs
            if job.provider_eta_at is not None and not job.state.is_terminal
        ]
        if etas:
            left = (max(etas) - now).total_seconds()
            parts.append(
                mrkdwn("{} expects it in about {}", _label(batch.provider), format_duration(left))
                if left > 0
                else mrkdwn("{} expected it by now", _label(batch.provider))
            )
    return mrkdwn("• {}", join(" · ", parts))


def _finished_line(batch: Batch, jobs: Sequence[Job], now: datetime, address: str | None) -> Mrkdwn:
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
    named = link(address, batch.id) if address else mrkdwn("`{}`", batch.id)
    return mrkdwn(
        "• {} {} · {} · {} ago",
        named,
        _names(reported),
        outcome,
        format_duration((now - when).total_seconds()),
    )


def _cannot_post(code: str) -> Mrkdwn:
    if code in ("not_in_channel", "channel_not_found"):
        return mrkdwn(
            "I can't post in this conversation, so I can't start a thread here. Invite me first "
            "with `/invite @threadscribe`, or run the command in a channel I am in."
        )
    return mrkdwn("Slack refused my message ({}); try again in a moment.", code or "unknown error")
