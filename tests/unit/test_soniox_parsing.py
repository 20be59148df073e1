from __future__ import annotations

import httpx
import pytest

from bot.errors import AccountProblem, PermanentError, TemporaryError
from bot.providers.soniox import _error
from bot.providers.soniox_tokens import transcript_from_tokens


def test_sub_word_tokens_join_and_speaker_changes_cut_segments() -> None:
    body = {
        "id": "t1",
        "text": "Hello there. Hi.",
        "tokens": [
            {"text": "Hel", "start_ms": 0, "end_ms": 100, "speaker": "1", "language": "en"},
            {"text": "lo", "start_ms": 100, "end_ms": 200, "speaker": "1", "language": "en"},
            {"text": " there.", "start_ms": 200, "end_ms": 600, "speaker": "1", "language": "en"},
            {"text": " Hi.", "start_ms": 900, "end_ms": 1100, "speaker": "2", "language": "en"},
        ],
    }
    transcript = transcript_from_tokens(body, duration_ms=1200)
    assert transcript.text == "Hello there. Hi."
    assert [(s.speaker, s.text, s.start_ms, s.end_ms) for s in transcript.segments] == [
        ("1", "Hello there.", 0, 600),
        ("2", "Hi.", 900, 1100),
    ]
    assert transcript.language == "en"
    assert transcript.duration_ms == 1200


def test_tokens_without_speakers_give_plain_text() -> None:
    transcript = transcript_from_tokens({"tokens": [{"text": "Just"}, {"text": " words"}]})
    assert transcript.text == "Just words"
    assert not transcript.has_speakers


def test_empty_transcript() -> None:
    transcript = transcript_from_tokens({"text": "", "tokens": []})
    assert transcript.is_empty


@pytest.mark.parametrize(
    ("error_type", "used_up"),
    [
        ("organization_balance_exhausted", "the organization's balance is used up"),
        ("organization_monthly_budget_exhausted", "the organization's monthly budget"),
        ("project_monthly_budget_exhausted", "the project's monthly budget is used up"),
        ("something_new", "payment is required"),
    ],
)
def test_a_402_is_an_account_problem_not_a_problem_with_the_file(
    error_type: str, used_up: str
) -> None:
    body = {
        "status_code": 402,
        "error_type": error_type,
        "message": "Add funds <!channel>",
        "validation_errors": [],
        "request_id": "r-1",
    }
    error = _error(httpx.Response(402, json=body), "create transcription")
    assert isinstance(error, AccountProblem)
    assert not isinstance(error, (PermanentError, TemporaryError))
    assert error.provider == "soniox"
    assert error.reason == (error_type if error_type != "something_new" else "payment_required")
    assert used_up in error.user_message and "admin" in error.user_message
    assert "<!channel>" not in error.user_message, "the provider's words stay in the log"
    assert "402" in error.detail and "Add funds" in error.detail


def test_languages_are_ordered_by_how_much_of_the_text_each_labels() -> None:
    body = {
        "tokens": [
            {"text": "Hi", "language": "en"},
            {"text": " sab", "language": "hi"},
            {"text": " log", "language": "hi"},
            {"text": ",", "language": "hi"},
            {"text": " ", "language": "fr"},  # whitespace alone names no language
            {"text": " bye", "language": "en"},
            {"text": " ok"},
        ]
    }
    transcript = transcript_from_tokens(body)
    assert transcript.languages == ["hi", "en"]
    assert transcript.language == "hi"
    assert transcript.spoken_languages == ["hi", "en"]


def test_without_language_identification_no_language_is_claimed() -> None:
    transcript = transcript_from_tokens({"tokens": [{"text": "Just"}, {"text": " words"}]})
    assert transcript.languages == [] and transcript.language is None
    assert transcript.spoken_languages == []


def _token(text: str, speaker: str, language: str, status: str) -> dict[str, object]:
    return {"text": text, "speaker": speaker, "language": language, "translation_status": status}


def test_translated_tokens_become_the_translation_of_the_turn_they_follow() -> None:
    tokens = [
        {**_token("Hello", "1", "en", "original"), "start_ms": 0, "end_ms": 300},
        _token(" every", "1", "en", "original"),
        _token("one.", "1", "en", "original"),
        _token(" Hallo", "1", "de", "translation"),
        _token(" zusammen.", "1", "de", "translation"),
        # Soniox translates chunk by chunk: the same turn goes on, and so does its translation.
        _token(" Let us start.", "1", "en", "original"),
        _token(" Fangen wir an.", "1", "de", "translation"),
        # Already in the target language: not translated.
        _token(" Gut.", "2", "de", "none"),
    ]
    transcript = transcript_from_tokens({"text": "all of it, translations too", "tokens": tokens})

    assert transcript.text == "Hello everyone. Let us start. Gut."
    assert [
        (s.speaker, s.text, s.translation, s.translation_language) for s in transcript.segments
    ] == [
        ("1", "Hello everyone. Let us start.", "Hallo zusammen. Fangen wir an.", "de"),
        ("2", "Gut.", None, None),
    ]
    assert transcript.languages == ["en", "de"], "only the spoken words count"
    assert transcript.has_translation


def test_in_two_way_translation_a_change_of_language_starts_a_segment() -> None:
    tokens = [
        _token("Good morning.", "1", "en", "original"),
        _token(" Buenos días.", "1", "es", "translation"),
        _token(" ¿Qué tal?", "1", "es", "original"),
        _token(" How are you?", "1", "en", "translation"),
    ]
    transcript = transcript_from_tokens({"tokens": tokens})
    assert [(s.speaker, s.text, s.translation_language) for s in transcript.segments] == [
        ("1", "Good morning.", "es"),
        ("1", "¿Qué tal?", "en"),
    ]
    # Without translation, a speaker changing language stays in one segment.
    plain = transcript_from_tokens(
        {"tokens": [{"text": "Good morning.", "speaker": "1", "language": "en"},
                    {"text": " ¿Qué tal?", "speaker": "1", "language": "es"}]}
    )  # fmt: skip
    assert [s.text for s in plain.segments] == ["Good morning. ¿Qué tal?"]


def test_a_word_is_as_sure_as_its_least_sure_token_when_asked() -> None:
    tokens = [
        {"text": "Ku", "speaker": "1", "confidence": 0.91},
        {"text": "ber", "speaker": "1", "confidence": 0.314},
        {"text": "netes", "speaker": "1", "confidence": 0.8},
        {"text": " is", "speaker": "1", "confidence": 0.99},
        {"text": " fine.", "speaker": "1", "confidence": 0.97},
        {"text": " Yes", "speaker": "2", "confidence": 0.4},
    ]
    asked = transcript_from_tokens({"tokens": tokens}, word_confidence=True)
    assert [s.word_confidence for s in asked.segments] == [[0.31, 0.99, 0.97], [0.4]]
    assert all(s.word_confidence == [] for s in transcript_from_tokens({"tokens": tokens}).segments)
    # A token without a confidence leaves its segment without any: no word is guessed at.
    tokens[3] = {"text": " is", "speaker": "1"}
    partly = transcript_from_tokens({"tokens": tokens}, word_confidence=True)
    assert [s.word_confidence for s in partly.segments] == [[], [0.4]]
