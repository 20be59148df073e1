"""Turning finished jobs into one Slack reply: Block Kit within Slack's limits, a notification
fallback, and ``.txt`` attachments for transcripts too long for a message.

File names, transcripts and failure reasons come from outside: all of it passes
:mod:`bot.slack_text` on its way into the reply, the fallback ``text`` as much as the blocks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from bot.languages import language_names
from bot.media import is_video
from bot.messages import reply as words
from bot.messages import speakers as speaker_words
from bot.messages.reply import NO_SPEECH
from bot.slack_text import (
    Block,
    Mrkdwn,
    PlainText,
    button,
    context,
    escape,
    join,
    mention,
    mrkdwn,
    plain,
    section,
    split,
    truncate,
)
from bot.transcript import (
    Segment,
    Transcript,
    merge_turns,
    speaker_label,
    to_plain_text,
    translation_label,
    turn_heading,
)
from storage.models import Job, JobState, SpeakerNames

#: One file's transcript longer than this goes into a file.
MAX_INLINE_CHARS = 3000
#: All inline transcripts together stay under this.
MAX_MESSAGE_CHARS = 12000
PREVIEW_CHARS = 400
#: Slack allows 50 blocks a message; keep room for the summary.
MAX_BLOCKS = 50
#: Languages named on a transcript's language line; more are counted.
MAX_LANGUAGES_SHOWN = 5
#: ``action_id`` of the *Name speakers* button (its ``value`` is the batch id), and its block.
NAME_SPEAKERS_ACTION = "name_speakers"
NAME_SPEAKERS_BLOCK = "speakers"


@dataclass(frozen=True)
class Speakers:
    """Who the speakers of a batch are, as its reply shows them: each named one as a mention in
    the message (Slack shows the person's current name, to each reader as they chose, and an
    edit that adds a mention notifies nobody), and by name where a mention cannot be, in the
    attached files and the notification text."""

    names: SpeakerNames = field(default_factory=dict)
    #: The name of each person named, by Slack user id; one missing is shown by speaker number
    #: outside the message.
    display_names: Mapping[str, str] = field(default_factory=dict)

    def in_message(self, job_id: str) -> dict[str, Mrkdwn]:
        return {speaker: mention(user) for speaker, user in self.names.get(job_id, {}).items()}

    def in_text(self, job_id: str) -> dict[str, str]:
        named = self.names.get(job_id, {})
        return {s: self.display_names[u] for s, u in named.items() if u in self.display_names}


NO_NAMES = Speakers()


@dataclass
class Attachment:
    job_id: str
    filename: PlainText
    title: PlainText
    #: The file's text: shown as a file, never parsed as markup.
    content: str


@dataclass
class Reply:
    text: Mrkdwn
    blocks: list[Block]
    attachments: list[Attachment] = field(default_factory=list)
    any_failed: bool = False

    def add_note(self, note: Block) -> None:
        """Add ``note`` below the transcripts (above the button), within Slack's block limit."""
        actions = [block for block in self.blocks if block["type"] == "actions"]
        shown = [block for block in self.blocks if block["type"] != "actions"]
        self.blocks = [*shown[: MAX_BLOCKS - 1 - len(actions)], note, *actions]


def attachment_name(job: Job, suffix: str = ".txt") -> PlainText:
    return plain(f"{PurePosixPath(job.filename).stem or 'transcript'}-transcript{suffix}")


#: Subtitle cues longer than this are split, with time shared out by length.
MAX_CUE_CHARS = 84


def _srt_time(ms: int) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d},{millis:03d}"


def _cue_texts(text: str) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > MAX_CUE_CHARS:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    if current:
        pieces.append(current)
    return pieces


def to_srt(transcript: Transcript, names: Mapping[str, str] | None = None) -> str | None:
    """SubRip subtitles from the provider's timings, each speaker by their name in ``names`` or
    their number; None when the provider gave no timings."""
    timed = [s for s in transcript.segments if s.start_ms is not None and s.end_ms is not None]
    if not timed:
        return None
    cues: list[str] = []
    for segment in timed:
        assert segment.start_ms is not None and segment.end_ms is not None
        pieces = _cue_texts(segment.text)
        total = sum(len(piece) for piece in pieces) or 1
        start = segment.start_ms
        span = max(segment.end_ms - segment.start_ms, 0)
        for piece in pieces:
            end = start + span * len(piece) // total
            label = _speaker_label(segment.speaker, names)
            cues.append(
                f"{len(cues) + 1}\n{_srt_time(start)} --> {_srt_time(max(end, start + 1))}\n"
                f"{label}{piece}\n"
            )
            start = end
    return "\n".join(cues)


def _speaker_label(speaker: str | None, names: Mapping[str, str] | None) -> str:
    if speaker is None:
        return ""
    named = names.get(speaker) if names else None
    return f"[{named or speaker_label(speaker)}] "


def to_mrkdwn(
    transcript: Transcript,
    mentions: Mapping[str, Mrkdwn] | None = None,
    doubtful_below: float | None = None,
) -> Mrkdwn:
    """The transcript for a Slack message: a paragraph per speaker turn, the speaker in bold (as
    the mention in ``mentions``, once named), each turn's translation quoted under it. With
    ``doubtful_below``, the words whose confidence is below it are in italics."""
    if not transcript.has_speakers and not transcript.has_translation:
        if doubtful_below is not None and any(s.word_confidence for s in transcript.segments):
            return join(" ", [_words(segment, doubtful_below) for segment in transcript.segments])
        return escape(transcript.text.strip())
    paragraphs = []
    for turn in merge_turns(transcript.segments):
        said = _words(turn, doubtful_below)
        if transcript.has_speakers:
            label, stamp = turn_heading(turn)
            named = mentions.get(turn.speaker) if mentions and turn.speaker is not None else None
            said = mrkdwn("*{}*{}  {}", named or label, stamp, said)
        if turn.translation:
            translated = words.translation_line(translation_label(turn), turn.translation.strip())
            said = join("\n", [said, translated])
        paragraphs.append(said)
    return join("\n\n", paragraphs)


def _words(segment: Segment, doubtful_below: float | None) -> Mrkdwn:
    """The segment's text, its doubtful words marked when asked and known."""
    said = segment.text.split()
    scores = segment.word_confidence
    if doubtful_below is None or len(scores) != len(said):
        return escape(segment.text.strip())
    return join(
        " ",
        [
            words.doubtful_word(word) if score < doubtful_below else word
            for word, score in zip(said, scores, strict=True)
        ],
    )


def _chunks(text: Mrkdwn, limit: int = MAX_INLINE_CHARS) -> list[Mrkdwn]:
    """Split at paragraph (else word) boundaries into pieces Slack takes as one section each."""
    return split(text, limit)


def _section(text: Mrkdwn) -> Block:
    return section(truncate(text, MAX_INLINE_CHARS))


def language_line(transcript: Transcript) -> Block | None:
    """``Language: English, Hindi``, most spoken first, as a context block; None when the
    provider identified none."""
    names = language_names(transcript.spoken_languages)
    if not names:
        return None
    return context(words.languages_spoken(names, MAX_LANGUAGES_SHOWN))


def _preview(text: str) -> str:
    if len(text) <= PREVIEW_CHARS:
        return text
    cut = text[:PREVIEW_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"


def render_reply(
    jobs: list[Job],
    *,
    batch_id: str | None = None,
    speakers: Speakers = NO_NAMES,
    doubtful_below: float | None = None,
) -> Reply:
    """The reply for every reported job of a batch (skipped ones are left out), with the
    speakers named as ``speakers`` says; with ``batch_id``, a reply with more than one speaker
    gets the *Name speakers* button. With ``doubtful_below``, the message marks the words the
    provider was less sure of than that, where it said how sure it was; the attached files keep
    plain text."""
    reported = [job for job in jobs if job.state is not JobState.SKIPPED]
    transcripts = {
        job.id: Transcript.model_validate(job.transcript)
        for job in reported
        if job.state is JobState.COMPLETED and job.transcript is not None
    }
    # Which transcripts go into files is decided on the text as first posted: naming the
    # speakers later must not move one into a file, or out of one.
    in_file = _sent_as_files(
        {
            job_id: "" if transcript.is_empty else to_plain_text(transcript)
            for job_id, transcript in transcripts.items()
        }
    )
    texts = {
        job_id: "" if transcript.is_empty else to_plain_text(transcript, speakers.in_text(job_id))
        for job_id, transcript in transcripts.items()
    }
    blocks: list[Block] = []
    attachments: list[Attachment] = []
    fallback: list[Mrkdwn] = []
    for job in reported:
        part = _render_job(
            job,
            transcripts.get(job.id),
            texts.get(job.id, ""),
            in_file=job.id in in_file,
            speakers=speakers,
            doubtful_below=doubtful_below,
        )
        blocks += part.blocks
        attachments += part.attachments
        fallback.append(part.fallback)
    failed = sum(job.state is JobState.FAILED for job in reported)

    if batch_id is not None and speaker_count(transcripts.values()) > 1:
        blocks = [*_within_block_limit(blocks, MAX_BLOCKS - 1), name_speakers_button(batch_id)]
    else:
        blocks = _within_block_limit(blocks)
    summary = words.reply_summary([job.filename for job in reported], failed)
    return Reply(
        text=truncate(join("\n\n", [summary, *fallback]), MAX_MESSAGE_CHARS + 1000),
        blocks=blocks,
        attachments=attachments,
        any_failed=failed > 0,
    )


@dataclass
class _JobPart:
    """What one file adds to the reply."""

    blocks: list[Block]
    fallback: Mrkdwn
    attachments: list[Attachment] = field(default_factory=list)


def _render_job(
    job: Job,
    transcript: Transcript | None,
    text: str,
    *,
    in_file: bool,
    speakers: Speakers,
    doubtful_below: float | None,
) -> _JobPart:
    """One file's part of the reply: why it failed, that it had no speech, its transcript in a
    file with a preview, or its transcript in the message; then its languages."""
    if job.state is JobState.FAILED:
        reason = job.error or words.NOT_TRANSCRIBED
        return _JobPart(
            [_section(words.file_failed(job.filename, reason))],
            mrkdwn("{}: {}", job.filename, reason),
        )
    if not text or transcript is None:
        return _JobPart(
            [_section(words.file_without_speech(job.filename))],
            mrkdwn("{}: {}", job.filename, NO_SPEECH),
        )
    if in_file:
        attached = _attachments(job, transcript, text, speakers.in_text(job.id))
        preview = _preview(text)
        shown = words.file_in_attachment(job.filename, len(text), attached[0].filename, preview)
        part = _JobPart([_section(shown)], mrkdwn("{}: {}", job.filename, preview), attached)
    else:
        shown = to_mrkdwn(transcript, speakers.in_message(job.id), doubtful_below)
        part = _JobPart(
            [_section(words.file_heading(job.filename)), *map(_section, _chunks(shown))],
            mrkdwn("{}:\n{}", job.filename, text),
        )
    languages = language_line(transcript)
    if languages is not None:
        part.blocks.append(languages)
    return part


def speaker_count(transcripts: Iterable[Transcript]) -> int:
    """The speakers of all the transcripts together (speaker 1 of two files counts twice)."""
    return sum(len(transcript.speakers) for transcript in transcripts)


def name_speakers_button(batch_id: str) -> Block:
    return button(
        block_id=NAME_SPEAKERS_BLOCK,
        action_id=NAME_SPEAKERS_ACTION,
        label=speaker_words.BUTTON,
        value=batch_id,
    )


def _sent_as_files(texts: dict[str, str]) -> set[str]:
    """The jobs whose transcripts go into files: each over the per-file limit, then the longest
    ones until what stays inline fits in one message."""
    in_file = {job_id for job_id, text in texts.items() if len(text) > MAX_INLINE_CHARS}
    inline_total = sum(len(text) for job_id, text in texts.items() if job_id not in in_file)
    for job_id in sorted(texts, key=lambda key: len(texts[key]), reverse=True):
        if inline_total <= MAX_MESSAGE_CHARS:
            break
        if job_id not in in_file:
            in_file.add(job_id)
            inline_total -= len(texts[job_id])
    return in_file


def _attachments(
    job: Job, transcript: Transcript, text: str, names: Mapping[str, str]
) -> list[Attachment]:
    """The transcript as a text file, and for a video, subtitles when the provider gave timings."""
    attachments = [
        Attachment(
            job_id=job.id,
            filename=attachment_name(job),
            title=plain(words.transcript_title(job.filename)),
            content=text + "\n",
        )
    ]
    subtitles = to_srt(transcript, names) if is_video(job.filename, job.mimetype) else None
    if subtitles:
        attachments.append(
            Attachment(
                job_id=job.id,
                filename=attachment_name(job, ".srt"),
                title=plain(words.subtitles_title(job.filename)),
                content=subtitles,
            )
        )
    return attachments


def _within_block_limit(blocks: list[Block], limit: int = MAX_BLOCKS) -> list[Block]:
    if len(blocks) <= limit:
        return blocks
    kept = blocks[: limit - 1]
    kept.append(_section(words.more_sections(len(blocks) - len(kept))))
    return kept
