"""Naming a transcript's speakers: the *Name speakers* button under a reply opens a form with one
person picker per speaker, and ``@threadscribe speakers 1=@alice 2=@bob`` in the thread does the
same in words.

Only members of the channel may name them. A form's answer is checked against the batch it was
opened for (named in its ``private_metadata``): the batch exists, has its reply, is in that channel
and thread, and has those speakers. The names are saved before anything else happens; the poll
cycle then shows them in the reply (:mod:`bot.work.names`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.commands.context import CommandContext, CommandError, text_or_none
from bot.commands.parsing import parse_speaker_names
from bot.messages import REACTION_DONE
from bot.messages import speakers as words
from bot.rendering import NAME_SPEAKERS_ACTION
from bot.slack_api import slack_error_code
from bot.slack_ids import workspace_of
from bot.slack_text import Block, Mrkdwn, View, context, modal, section, user_picker
from bot.transcript import Transcript, merge_turns
from storage.models import Batch, BatchState, Job, JobState, SpeakerNames, Workspace

log = logging.getLogger(__name__)

#: ``callback_id`` of the form.
NAME_SPEAKERS_VIEW = "name_speakers"
#: ``action_id`` of every person picker in the form; its block says which speaker it names.
PICKER_ACTION = "person"
#: Pickers in one form: Slack allows 100 blocks in a modal, and one is needed per file too.
MAX_PICKERS = 45
#: Longest wait for Slack to say who is in a channel before a form's answer is due (3 s).
MEMBERSHIP_WAIT_SECONDS = 2.0

_USER_ID = re.compile(r"[UW][A-Z0-9]{2,20}")
_PICKER_BLOCK = re.compile(r"speaker-(\d{1,4})-(\w{1,40})")


@dataclass(frozen=True)
class Speaker:
    """One speaker of one transcript of a batch."""

    job: Job
    label: str
    #: What they say first, to tell who is who.
    first_words: str

    @property
    def block_id(self) -> str:
        return f"speaker-{self.job.position}-{self.label}"


@dataclass
class FormAnswer:
    """What the form's submission is answered with (``ack``'s arguments: none closes it), and
    what follows the answer."""

    ack: dict[str, Any] = field(default_factory=dict)
    follow_up: Callable[[], Awaitable[None]] | None = None


class Refused(Exception):
    """A request to name speakers that is not carried out; ``text`` says why."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


# -- the button ------------------------------------------------------------------------------------


async def button_pressed(ctx: CommandContext, payload: Mapping[str, Any]) -> Mrkdwn | None:
    """Open the form for the batch the pressed button names; or say, only to whoever pressed
    it, why not. Runs after the ack: the form must open within three seconds of the press."""
    user = str((payload.get("user") or {}).get("id") or "")
    channel = str(
        (payload.get("channel") or {}).get("id")
        or (payload.get("container") or {}).get("channel_id")
        or ""
    )
    actions = [
        a for a in payload.get("actions") or [] if a.get("action_id") == NAME_SPEAKERS_ACTION
    ]
    batch_id = str(actions[0].get("value") or "") if actions else ""
    membership = await _membership(ctx, channel, user)
    if membership is not None:
        return membership
    batch = await _named_batch(ctx, workspace_of(payload), batch_id)
    if batch is None or batch.channel_id != channel:
        return words.TRANSCRIPT_GONE
    jobs = await ctx.store.jobs_of(batch.id)
    if _erased(jobs):
        return words.TRANSCRIPT_GONE
    speakers = speakers_of(jobs)
    if not speakers:
        return words.NO_SPEAKERS
    naming = await ctx.store.speaker_naming(batch.id)
    view = speakers_form(batch, speakers, naming.names if naming else {})
    try:
        await ctx.slack.open_view(trigger_id=str(payload.get("trigger_id") or ""), view=view)
    except SlackApiError as exc:
        log.warning("cannot open the speakers form of %s: %s", batch.id, slack_error_code(exc))
        return words.cannot_open_form(slack_error_code(exc))
    return None


def speakers_form(batch: Batch, speakers: Sequence[Speaker], names: SpeakerNames) -> View:
    """The form: a person picker per speaker (the first :data:`MAX_PICKERS`), each set to
    whom the speaker is named after now, under the name of its file when there are several."""
    blocks: list[Block] = [context(words.FORM_INTRO)]
    several_files = len({speaker.job.id for speaker in speakers}) > 1
    shown = speakers[:MAX_PICKERS]
    for index, speaker in enumerate(shown):
        if several_files and (index == 0 or shown[index - 1].job.id != speaker.job.id):
            blocks.append(section(words.file_in_form(speaker.job.filename)))
        current = names.get(speaker.job.id, {}).get(speaker.label)
        blocks.append(
            user_picker(
                block_id=speaker.block_id,
                action_id=PICKER_ACTION,
                label=words.speaker(speaker.label),
                placeholder=words.CHOOSE_A_PERSON,
                initial_user=current if current and _USER_ID.fullmatch(current) else None,
                hint=words.first_words(speaker.first_words) if speaker.first_words else None,
            )
        )
    if len(speakers) > len(shown):
        blocks.append(context(words.more_speakers(len(speakers) - len(shown))))
    metadata = {"batch": batch.id, "channel": batch.channel_id, "thread": batch.thread_ts}
    return modal(
        callback_id=NAME_SPEAKERS_VIEW,
        title=words.FORM_TITLE,
        submit=words.SAVE,
        close=words.CANCEL,
        blocks=blocks,
        private_metadata=json.dumps(metadata),
    )


# -- the form's answer ---------------------------------------------------------------------------


async def form_submitted(ctx: CommandContext, payload: Mapping[str, Any]) -> FormAnswer:
    """Check the form's answer against its batch and save the names, before the ack; a refusal
    is shown in the form."""
    view = payload.get("view") or {}
    values = (view.get("state") or {}).get("values") or {}
    pickers = [block_id for block_id in values if isinstance(block_id, str)]
    try:
        batch_id = await _names_from_form(ctx, payload, view, values)
    except Refused as refused:
        if not pickers:
            # Errors are shown under a field: a form without one is not ours to answer.
            log.warning("a speakers form without fields was refused: %s", refused.text)
            return FormAnswer()
        return FormAnswer({"response_action": "errors", "errors": {pickers[0]: refused.text}})

    async def follow_up() -> None:
        ctx.kick()

    log.info("speakers of %s named by %s", batch_id, (payload.get("user") or {}).get("id"))
    return FormAnswer(follow_up=follow_up)


async def _names_from_form(
    ctx: CommandContext, payload: Mapping[str, Any], view: Mapping[str, Any], values: Any
) -> str:
    """Save the names the form's answer gives; the batch's id. Raises :class:`Refused`."""
    try:
        metadata = json.loads(str(view.get("private_metadata") or ""))
    except ValueError:
        raise Refused(words.FORM_DOES_NOT_MATCH) from None
    if not isinstance(metadata, dict) or not isinstance(values, dict) or not values:
        raise Refused(words.FORM_DOES_NOT_MATCH)
    batch = await ctx.store.get_batch(str(metadata.get("batch") or ""))
    if (
        batch is None
        or not _of_workspace(batch, workspace_of(payload))
        or batch.channel_id != metadata.get("channel")
        or batch.thread_ts != metadata.get("thread")
    ):
        raise Refused(words.FORM_DOES_NOT_MATCH)
    if batch.state is not BatchState.DELIVERED or batch.reply_ts is None:
        raise Refused(words.FORM_TRANSCRIPT_GONE)
    jobs = await ctx.store.jobs_of(batch.id)
    if _erased(jobs):
        raise Refused(words.FORM_TRANSCRIPT_GONE)
    chosen = _chosen_people(values, {speaker.block_id: speaker for speaker in speakers_of(jobs)})

    user = str((payload.get("user") or {}).get("id") or "")
    try:
        member = await asyncio.wait_for(
            ctx.slack.is_member(channel=batch.channel_id, user=user), MEMBERSHIP_WAIT_SECONDS
        )
    except SlackApiError as exc:
        log.error("cannot tell who is in %s: %s", batch.channel_id, slack_error_code(exc))
        raise Refused(words.form_cannot_check_membership(slack_error_code(exc))) from None
    except TimeoutError:
        raise Refused(words.form_cannot_check_membership("no answer in time")) from None
    if not member:
        raise Refused(words.FORM_ONLY_MEMBERS)

    naming = await ctx.store.speaker_naming(batch.id)
    names = _copy(naming.names if naming else {})
    for speaker, person in chosen:
        named = names.setdefault(speaker.job.id, {})
        if person is None:
            named.pop(speaker.label, None)
        else:
            named[speaker.label] = person
    if await ctx.store.name_speakers(batch.id, _without_empty(names), ctx.clock()) is None:
        raise Refused(words.FORM_TRANSCRIPT_GONE)
    return batch.id


def _chosen_people(
    values: Mapping[str, Any], speakers: Mapping[str, Speaker]
) -> list[tuple[Speaker, str | None]]:
    """Whom each picker of the answer chose (None: nobody). Raises :class:`Refused` for a field
    that names no speaker of the batch, or a choice that is not a person."""
    chosen: list[tuple[Speaker, str | None]] = []
    for block_id, actions in values.items():
        speaker = speakers.get(block_id) if _PICKER_BLOCK.fullmatch(str(block_id)) else None
        picked = actions.get(PICKER_ACTION) if isinstance(actions, dict) else None
        if speaker is None or not isinstance(picked, dict) or picked.get("type") != "users_select":
            raise Refused(words.FORM_DOES_NOT_MATCH)
        person = picked.get("selected_user")
        if person is not None and not (isinstance(person, str) and _USER_ID.fullmatch(person)):
            raise Refused(words.FORM_DOES_NOT_MATCH)
        chosen.append((speaker, person))
    return chosen


# -- in words: @threadscribe speakers 1=@alice 2=@bob --------------------------------------------


async def named_in_words(
    ctx: CommandContext,
    workspace: Workspace,
    *,
    channel: str,
    thread_ts: str,
    event: Mapping[str, Any],
) -> Mrkdwn | None:
    """Name the speakers of the thread's latest transcript in ``workspace`` as the mention says;
    the answer to post in the thread when that cannot be done (None: done)."""
    try:
        given = parse_speaker_names(str(event.get("text") or ""))
    except CommandError as exc:
        return exc.text
    if not given:
        return words.USAGE
    user = text_or_none(event.get("user")) or ""
    membership = await _membership(ctx, channel, user)
    if membership is not None:
        return membership
    batch = await ctx.store.latest_reply_in_thread(workspace, channel, thread_ts)
    if batch is None:
        return words.NO_TRANSCRIPT_HERE
    jobs = await ctx.store.jobs_of(batch.id)
    if _erased(jobs):
        return words.TRANSCRIPT_GONE
    speakers = speakers_of(jobs)
    if not speakers:
        return words.NO_SPEAKERS
    if len({speaker.job.id for speaker in speakers}) > 1:
        return words.SEVERAL_TRANSCRIPTS
    job = speakers[0].job
    known = [speaker.label for speaker in speakers]
    unknown = [label for label in given if label not in known]
    if unknown:
        return words.unknown_speakers(unknown, known)
    naming = await ctx.store.speaker_naming(batch.id)
    names = _copy(naming.names if naming else {})
    names.setdefault(job.id, {}).update(given)
    if await ctx.store.name_speakers(batch.id, names, ctx.clock()) is None:
        return words.TRANSCRIPT_GONE
    ctx.kick()
    ts = text_or_none(event.get("ts"))
    if ts is not None:
        await ctx.slack.add_reaction(channel, ts, REACTION_DONE)
    return None


# -- shared --------------------------------------------------------------------------------------


def speakers_of(jobs: Sequence[Job]) -> list[Speaker]:
    """Every speaker of the batch's transcripts, file by file, in the order they first speak."""
    found: list[Speaker] = []
    for job in jobs:
        if job.state is not JobState.COMPLETED or job.transcript is None:
            continue
        transcript = Transcript.model_validate(job.transcript)
        first: dict[str, str] = {}
        for turn in merge_turns(transcript.segments):
            if turn.speaker is not None and turn.speaker not in first:
                first[turn.speaker] = turn.text.strip()
        found += [Speaker(job, label, text) for label, text in first.items()]
    return found


async def _membership(ctx: CommandContext, channel: str, user: str) -> Mrkdwn | None:
    """None when ``user`` is a member of ``channel``; else what to tell them."""
    try:
        if await ctx.slack.is_member(channel=channel, user=user):
            return None
    except SlackApiError as exc:
        # missing_scope: the app was not reinstalled with the scopes of its manifest.
        log.error("cannot tell who is in %s: %s", channel, slack_error_code(exc))
        return words.cannot_check_membership(slack_error_code(exc))
    return words.ONLY_MEMBERS


async def _named_batch(ctx: CommandContext, workspace: Workspace, batch_id: str) -> Batch | None:
    """The batch a button names, if it is ``workspace``'s and its reply is out."""
    batch = await ctx.store.get_batch(batch_id) if batch_id else None
    if (
        batch is None
        or not _of_workspace(batch, workspace)
        or batch.state is not BatchState.DELIVERED
        or batch.reply_ts is None
    ):
        return None
    return batch


def _of_workspace(batch: Batch, workspace: Workspace) -> bool:
    """Whether ``batch`` is ``workspace``'s: another workspace's is not even found, though its
    channel id may be the same one (Slack Connect)."""
    return (batch.team_id or "") == workspace.team_id


def _erased(jobs: Sequence[Job]) -> bool:
    """Whether the transcripts were erased after the retention period."""
    return any(job.state is JobState.COMPLETED and job.transcript is None for job in jobs)


def _copy(names: SpeakerNames) -> SpeakerNames:
    return {job_id: dict(speakers) for job_id, speakers in names.items()}


def _without_empty(names: SpeakerNames) -> SpeakerNames:
    return {job_id: speakers for job_id, speakers in names.items() if speakers}
