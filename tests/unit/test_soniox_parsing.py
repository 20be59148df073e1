from __future__ import annotations

import httpx
import pytest

from bot.errors import AccountProblem, PermanentError, TemporaryError
from bot.providers.soniox import _error, transcript_from_tokens


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
