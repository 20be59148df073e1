"""The provider-neutral transcript: text plus, when the provider gives them, timed speaker turns."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from bot.languages import language_name


class Segment(BaseModel):
    text: str
    speaker: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    #: The provider's translation of ``text``, when one was asked for, and its language.
    translation: str | None = None
    translation_language: str | None = None
    #: How sure the provider was of each word of ``text`` (its words as ``str.split`` finds
    #: them), 0 to 1; empty when it was not asked to say.
    word_confidence: list[float] = []


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
    def has_translation(self) -> bool:
        return any(segment.translation for segment in self.segments)

    @property
    def speakers(self) -> list[str]:
        """The speakers' labels, in the order they first speak."""
        return list(dict.fromkeys(s.speaker for s in self.segments if s.speaker is not None))

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()


def merge_turns(segments: list[Segment]) -> list[Segment]:
    """Join consecutive segments of the same speaker into one turn; translated segments only
    when they are translated into the same language, so each turn has one translation."""
    turns: list[Segment] = []
    for segment in segments:
        last = turns[-1] if turns else None
        if (
            last is not None
            and last.speaker == segment.speaker
            and last.translation_language == segment.translation_language
        ):
            last.text = _joined(last.text, segment.text) or ""
            last.end_ms = segment.end_ms if segment.end_ms is not None else last.end_ms
            last.translation = _joined(last.translation, segment.translation)
            last.word_confidence = [*last.word_confidence, *segment.word_confidence]
        else:
            turns.append(segment.model_copy())
    return turns


def _joined(first: str | None, second: str | None) -> str | None:
    if first is None or second is None:
        return first if second is None else second
    return f"{first.rstrip()} {second.lstrip()}".strip()


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
    ``names``) when known, else the text; each translation on an indented line of its own after
    its turn (``    → German: …``)."""
    if not transcript.has_speakers and not transcript.has_translation:
        return transcript.text.strip()
    lines = []
    for turn in merge_turns(transcript.segments):
        if transcript.has_speakers:
            label, stamp = turn_heading(turn, names)
            lines.append(f"{label}{stamp}: {turn.text.strip()}")
        else:
            lines.append(turn.text.strip())
        if turn.translation:
            lines.append(f"    → {translation_label(turn)}: {turn.translation.strip()}")
    return "\n".join(lines)


def translation_label(turn: Segment) -> str:
    """The language of a turn's translation as people read it (``German``)."""
    code = turn.translation_language or ""
    return language_name(code) or code or "?"
