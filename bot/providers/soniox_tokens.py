"""Soniox's answer as our transcript: its tokens are sub-word pieces, joined into words, turns
and, with translation on, each turn's translation."""

from __future__ import annotations

import re
from typing import Any

from bot.transcript import Segment, Transcript

#: ``translation_status`` of a token Soniox translated: it follows the spoken (``original``)
#: tokens it translates, and carries the translation's ``language``.
TRANSLATED = "translation"
_SPACE = re.compile(r"(\s+)")


def transcript_from_tokens(
    body: dict[str, Any], duration_ms: int | None = None, *, word_confidence: bool = False
) -> Transcript:
    """Join Soniox's tokens, and cut a segment where the speaker changes.

    With language identification each token carries its ``language``: the transcript's languages
    are ordered by how much of the text each one labels. With translation, each token carries a
    ``translation_status``: translated tokens follow the spoken ones they translate and become
    their segment's translation (a segment is also cut where the spoken language changes, so
    that each has one translation); only spoken tokens make the text and its languages. With
    ``word_confidence``, each word keeps its least sure token's ``confidence``.
    """
    reader = _TokenReader(word_confidence=word_confidence)
    for token in body.get("tokens") or []:
        reader.add(token)
    given = body.get("text")
    # With translation, Soniox's ``text`` may join the translated tokens too: the spoken alone.
    text = given if isinstance(given, str) and not reader.translated else "".join(reader.spoken)
    languages = reader.languages_by_use()
    return Transcript(
        text=text.strip(),
        segments=reader.segments(),
        language=languages[0] if languages else None,
        languages=languages,
        duration_ms=duration_ms,
    )


class _Turn:
    """A segment being read from tokens, with what reading it further needs."""

    def __init__(self, segment: Segment, language: str | None) -> None:
        self.segment = segment
        #: The language of its spoken words, which a translated segment keeps to.
        self.language = language
        #: The last word of ``segment.text`` may go on in the next token.
        self.word_open = False

    def changes_language(self, language: str | None) -> bool:
        """Whether a token in ``language`` is spoken in another language than this segment.
        With translation on, that starts a new segment: in two-way translation, the language
        of the translation changes with it."""
        return None not in (language, self.language) and language != self.language

    def add_confidence(self, text: str, confidence: float) -> None:
        """A word's confidence is its least sure token's."""
        scores = self.segment.word_confidence
        for piece in _SPACE.split(text):
            if not piece:
                continue
            if piece.isspace():
                self.word_open = False
            elif self.word_open:
                scores[-1] = min(scores[-1], confidence)
            else:
                scores.append(confidence)
                self.word_open = True


class _TokenReader:
    """Reads tokens in order, one at a time, into turns."""

    def __init__(self, *, word_confidence: bool) -> None:
        self.word_confidence = word_confidence
        self.turns: list[_Turn] = []
        #: Characters of spoken text labelled with each language, in order of first appearance.
        self.language_use: dict[str, int] = {}
        self.spoken: list[str] = []
        self.translated = False

    def add(self, token: dict[str, Any]) -> None:
        text = str(token.get("text", ""))
        language = _language(token)
        status = token.get("translation_status")
        if status == TRANSLATED:
            self._add_translation(text, language)
            return
        self.spoken.append(text)
        if language is not None and text.strip():
            self.language_use[language] = self.language_use.get(language, 0) + len(text.strip())
        turn = self._turn_for(token, text, language, may_cut=status is not None)
        confidence = token.get("confidence")
        if self.word_confidence and isinstance(confidence, (int, float)):
            turn.add_confidence(text, float(confidence))

    def _add_translation(self, text: str, language: str | None) -> None:
        self.translated = True
        if self.turns:
            segment = self.turns[-1].segment
            segment.translation = (segment.translation or "") + text
            segment.translation_language = segment.translation_language or language

    def _turn_for(
        self, token: dict[str, Any], text: str, language: str | None, *, may_cut: bool
    ) -> _Turn:
        """The turn ``text`` goes on: the last one, unless the speaker (or, with translation
        on, the spoken language) changed."""
        speaker = token.get("speaker")
        speaker = str(speaker) if speaker is not None else None
        turn = self.turns[-1] if self.turns else None
        if (
            turn is not None
            and turn.segment.speaker == speaker
            and not (may_cut and turn.changes_language(language))
        ):
            turn.segment.text += text
            turn.segment.end_ms = token.get("end_ms", turn.segment.end_ms)
            turn.language = turn.language or language
            return turn
        segment = Segment(
            text=text, speaker=speaker, start_ms=token.get("start_ms"), end_ms=token.get("end_ms")
        )
        turn = _Turn(segment, language)
        self.turns.append(turn)
        return turn

    def segments(self) -> list[Segment]:
        segments = [turn.segment for turn in self.turns]
        for segment in segments:
            segment.text = segment.text.strip()
            if segment.translation is not None:
                segment.translation = segment.translation.strip() or None
            if len(segment.word_confidence) != len(segment.text.split()):
                segment.word_confidence = []  # some token had no confidence: none is kept
            segment.word_confidence = [round(score, 2) for score in segment.word_confidence]
        return segments

    def languages_by_use(self) -> list[str]:
        # Most text first; a tie keeps the order of first appearance (sorted is stable).
        return sorted(self.language_use, key=self.language_use.__getitem__, reverse=True)


def _language(token: dict[str, Any]) -> str | None:
    language = token.get("language")
    return language.strip() if isinstance(language, str) and language.strip() else None
