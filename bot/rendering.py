"""Turning finished jobs into one Slack reply: Block Kit within Slack's limits, a plain-text
fallback, and ``.txt`` attachments for transcripts too long for a message."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from bot.languages import language_names
from bot.media import is_video
from bot.transcript import (
    Segment,
    Transcript,
    merge_turns,
    to_plain_text,
    turn_heading,
)
from storage.models import Job, JobState

#: One file's transcript longer than this goes into a file.
MAX_INLINE_CHARS = 3000
#: All inline transcripts together stay under this.
MAX_MESSAGE_CHARS = 12000
PREVIEW_CHARS = 400
#: Slack allows 50 blocks a message; keep room for the summary.
MAX_BLOCKS = 50
NO_SPEECH = "No speech found in this file."
#: Languages named on a transcript's language line; more are counted.
MAX_LANGUAGES_SHOWN = 5


@dataclass
class Attachment:
    job_id: str
    filename: str
    title: str
    content: str


@dataclass
class Reply:
    text: str
    blocks: list[dict[str, Any]]
    attachments: list[Attachment] = field(default_factory=list)
    any_failed: bool = False


def escape(text: str) -> str:
    """Slack mrkdwn treats ``&``, ``<`` and ``>`` as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def attachment_name(job: Job, suffix: str = ".txt") -> str:
    return f"{PurePosixPath(job.filename).stem or 'transcript'}-transcript{suffix}"


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


def to_srt(transcript: Transcript) -> str | None:
    """SubRip subtitles from the provider's timings; None when it gave none."""
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
            label = _speaker_label(segment)
            cues.append(
                f"{len(cues) + 1}\n{_srt_time(start)} --> {_srt_time(max(end, start + 1))}\n"
                f"{label}{piece}\n"
            )
            start = end
    return "\n".join(cues)


def _speaker_label(segment: Segment) -> str:
    return f"[Speaker {segment.speaker}] " if segment.speaker is not None else ""


def to_mrkdwn(transcript: Transcript) -> str:
    """The transcript for a Slack message: a paragraph per speaker turn, the speaker in bold."""
    if not transcript.has_speakers:
        return escape(transcript.text.strip())
    paragraphs = []
    for turn in merge_turns(transcript.segments):
        label, stamp = turn_heading(turn)
        paragraphs.append(f"*{escape(label)}*{stamp}  {escape(turn.text.strip())}")
    return "\n\n".join(paragraphs)


def _chunks(text: str, limit: int = MAX_INLINE_CHARS) -> list[str]:
    """Split at paragraph (else word) boundaries into pieces Slack takes as one section each."""
    chunks: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) <= limit:
            current = candidate
            continue
        if current:
            chunks.append(current)
        while len(paragraph) > limit:
            cut = paragraph.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            chunks.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip()
        current = paragraph
    if current:
        chunks.append(current)
    return chunks


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:MAX_INLINE_CHARS]}}


def language_line(transcript: Transcript) -> dict[str, Any] | None:
    """``Language: English, Hindi``, most spoken first, as a context block; None when the
    provider identified none."""
    names = language_names(transcript.spoken_languages)
    if not names:
        return None
    shown = ", ".join(names[:MAX_LANGUAGES_SHOWN])
    if len(names) > MAX_LANGUAGES_SHOWN:
        shown += f" and {len(names) - MAX_LANGUAGES_SHOWN} more"
    label = "Language" if len(names) == 1 else "Languages"
    # An unknown code is shown as the provider gave it: outside text, escaped.
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"{label}: {escape(shown)}"}],
    }


def _preview(text: str) -> str:
    if len(text) <= PREVIEW_CHARS:
        return text
    cut = text[:PREVIEW_CHARS].rsplit(" ", 1)[0]
    return f"{cut}…"


def render_reply(jobs: list[Job]) -> Reply:
    """The reply for every reported job of a batch (skipped ones are left out)."""
    reported = [job for job in jobs if job.state is not JobState.SKIPPED]
    transcripts: dict[str, Transcript] = {}
    texts: dict[str, str] = {}
    for job in reported:
        if job.state is JobState.COMPLETED and job.transcript is not None:
            transcript = transcripts[job.id] = Transcript.model_validate(job.transcript)
            texts[job.id] = "" if transcript.is_empty else to_plain_text(transcript)

    # Decide what goes into files: each transcript over the per-file limit, then the longest ones
    # until what stays inline fits in one message.
    in_file = {job_id for job_id, text in texts.items() if len(text) > MAX_INLINE_CHARS}
    inline_total = sum(len(text) for job_id, text in texts.items() if job_id not in in_file)
    for job_id in sorted(texts, key=lambda key: len(texts[key]), reverse=True):
        if inline_total <= MAX_MESSAGE_CHARS:
            break
        if job_id not in in_file:
            in_file.add(job_id)
            inline_total -= len(texts[job_id])

    blocks: list[dict[str, Any]] = []
    attachments: list[Attachment] = []
    plain: list[str] = []
    failed = 0
    for job in reported:
        name = escape(job.filename)
        if job.state is JobState.FAILED:
            failed += 1
            reason = job.error or "It could not be transcribed."
            blocks.append(_section(f":warning: *{name}*: {escape(reason)}"))
            plain.append(f"{job.filename}: {reason}")
            continue
        text = texts.get(job.id, "")
        if not text:
            blocks.append(_section(f":speech_balloon: *{name}*\n_{NO_SPEECH}_"))
            plain.append(f"{job.filename}: {NO_SPEECH}")
        elif job.id in in_file:
            attachment = Attachment(
                job_id=job.id,
                filename=attachment_name(job),
                title=f"Transcript of {job.filename}",
                content=text + "\n",
            )
            attachments.append(attachment)
            subtitles = (
                to_srt(transcripts[job.id]) if is_video(job.filename, job.mimetype) else None
            )
            if subtitles:
                attachments.append(
                    Attachment(
                        job_id=job.id,
                        filename=attachment_name(job, ".srt"),
                        title=f"Subtitles for {job.filename}",
                        content=subtitles,
                    )
                )
            blocks.append(
                _section(
                    f":speech_balloon: *{name}* ({len(text):,} characters; full transcript in "
                    f"`{escape(attachment.filename)}` below)\n>{escape(_preview(text))}"
                )
            )
            plain.append(f"{job.filename}: {_preview(text)}")
        else:
            blocks.append(_section(f":speech_balloon: *{name}*"))
            blocks.extend(_section(chunk) for chunk in _chunks(to_mrkdwn(transcripts[job.id])))
            plain.append(f"{job.filename}:\n{text}")
        identified = transcripts.get(job.id)
        languages = language_line(identified) if identified is not None and text else None
        if languages is not None:
            blocks.append(languages)

    if len(blocks) > MAX_BLOCKS:
        kept = blocks[: MAX_BLOCKS - 1]
        kept.append(_section(f"_…and {len(blocks) - len(kept)} more sections; see the files._"))
        blocks = kept

    done = len(reported) - failed
    if failed and not done:
        summary = "Could not transcribe " + _count(failed)
    elif failed:
        summary = f"Transcribed {done} of {_count(len(reported))}"
    else:
        summary = "Transcript of " + (reported[0].filename if len(reported) == 1 else _count(done))
    text = summary + "\n\n" + "\n\n".join(plain)
    return Reply(
        text=text[: MAX_MESSAGE_CHARS + 1000],
        blocks=blocks,
        attachments=attachments,
        any_failed=failed > 0,
    )


def _count(number: int) -> str:
    return f"{number} file" + ("" if number == 1 else "s")
