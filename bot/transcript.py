"""The provider-neutral transcript: text plus, when the provider gives them, timed speaker turns."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel


class Segment(BaseModel):
    text: str
    speaker: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None


class Transcript(BaseModel):
    text: str
    segments: list[Segment] = []
    #: The language spoken most, as the provider codes it (ISO 639-1).
    language: str | None = None
    #: Every language the provider identified, most spoken first.
    languages: list[str] = []
    duration_ms: int | None = None

    @property
    def spoken_languages(self) -> list[str]:
        """The languages identified, most spoken first; the one language, for a provider that
        names only one."""
        if self.languages:
            return list(self.languages)
        return [self.language] if self.language else []

    @property
    def has_speakers(self) -> bool:
        return any(segment.speaker is not None for segment in self.segments)

    @property
    def speakers(self) -> list[str]:
        """The speakers' labels, in the order they first speak."""
        return list(dict.fromkeys(s.speaker for s in self.segments if s.speaker is not None))

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()


def merge_turns(segments: list[Segment]) -> list[Segment]:
    """Join consecutive segments of the same speaker into one turn."""
    turns: list[Segment] = []
    for segment in segments:
        if turns and turns[-1].speaker == segment.speaker:
            last = turns[-1]
            last.text = f"{last.text.rstrip()} {segment.text.lstrip()}".strip()
            last.end_ms = segment.end_ms if segment.end_ms is not None else last.end_ms
        else:
            turns.append(segment.model_copy())
    return turns


def format_timestamp(ms: int) -> str:
    seconds = ms // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"


def speaker_label(speaker: str | None) -> str:
    """How a speaker the provider numbered is shown until named: ``Speaker 1``."""
    return f"Speaker {speaker}" if speaker is not None else "Unknown speaker"


def turn_heading(turn: Segment, names: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Who speaks in ``turn`` (``Speaker 1``, or the name given in ``names``) and, when known,
    when (`` [00:12]``)."""
    named = names.get(turn.speaker) if names and turn.speaker is not None else None
    label = named or speaker_label(turn.speaker)
    stamp = f" [{format_timestamp(turn.start_ms)}]" if turn.start_ms is not None else ""
    return label, stamp


def to_plain_text(transcript: Transcript, names: Mapping[str, str] | None = None) -> str:
    """Speaker turns on their own lines (``Speaker 1 [00:12] …``, or the speaker's name from
    ``names``) when known, else the text."""
    if not transcript.has_speakers:
        return transcript.text.strip()
    lines = []
    for turn in merge_turns(transcript.segments):
        label, stamp = turn_heading(turn, names)
        lines.append(f"{label}{stamp}: {turn.text.strip()}")
    return "\n".join(lines)
