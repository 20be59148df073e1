"""The retry policy, decision by decision: what an error, the attempts made, when the step started
stalling and now come to."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import (
    AccountProblem,
    NotReadyYet,
    PermanentError,
    RateLimited,
    TemporaryError,
    TranscribeError,
    WorkLost,
)
from bot.work.retry import (
    CLEAN_UP_RETRY_SECONDS,
    Decision,
    Fail,
    Retry,
    RetryPolicy,
    Wait,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
MAX_AGE = timedelta(hours=6)
POLL_INTERVAL = 5.0
PROBE_AT = NOW + timedelta(seconds=42)

REFUSED = PermanentError("400 bad file", user_message="The file could not be read.")
FIVE_HUNDRED = TemporaryError("503")
BALANCE = AccountProblem("402", provider="memory", reason="balance", user_message="Top it up.")


def policy() -> RetryPolicy:
    return RetryPolicy(max_age=MAX_AGE, poll_interval=POLL_INTERVAL, rng=random.Random(7))


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


@pytest.mark.parametrize(
    ("error", "attempts", "since", "expected"),
    [
        # A refusal fails at once, whatever the allowance left.
        (REFUSED, 0, None, Fail(REFUSED)),
        # Retry-After is kept exactly; the attempt is counted, the age from the first failure.
        (
            RateLimited("429", retry_after=30),
            3,
            ago(minutes=5),
            Retry(NOW + timedelta(seconds=30), 4, ago(minutes=5), "429"),
        ),
        # Not ready yet: asked again after a poll interval (or its Retry-After), no attempt.
        (
            NotReadyYet("still receiving"),
            2,
            None,
            Wait(NOW + timedelta(seconds=POLL_INTERVAL), NOW),
        ),
        (
            NotReadyYet("409", retry_after=7),
            0,
            ago(hours=1),
            Wait(NOW + timedelta(seconds=7), ago(hours=1)),
        ),
        # An account that refuses new work: wait for its next probe, held for it.
        (BALANCE, 0, None, Wait(PROBE_AT, NOW, held_by="memory")),
    ],
)
def test_a_step_error_becomes_a_decision(
    error: TranscribeError, attempts: int, since: datetime | None, expected: Decision
) -> None:
    decided = policy().decide(
        error, attempts=attempts, since=since, now=NOW, account_retry_at=PROBE_AT
    )
    assert decided == expected


@pytest.mark.parametrize(("attempts", "base"), [(0, 2), (1, 4), (2, 8), (5, 64), (20, 300)])
def test_a_passing_fault_backs_off_exponentially_with_jitter(attempts: int, base: float) -> None:
    decided = policy().decide(FIVE_HUNDRED, attempts=attempts, since=None, now=NOW)
    assert isinstance(decided, Retry)
    assert decided.attempts == attempts + 1 and decided.since == NOW
    assert base / 2 <= (decided.at - NOW).total_seconds() <= base


@pytest.mark.parametrize(
    ("error", "doing"),
    [
        (FIVE_HUNDRED, "trying"),
        (NotReadyYet("still receiving"), "trying"),
        (BALANCE, "waiting"),
    ],
)
def test_past_the_age_limit_a_stalled_step_fails_saying_why(
    error: TranscribeError, doing: str
) -> None:
    decided = policy().decide(error, attempts=9, since=ago(hours=6, seconds=1), now=NOW)
    assert isinstance(decided, Fail)
    assert decided.error.user_message == f"Gave up after 6 hours of {doing}. {error.user_message}"
    assert decided.error.detail == f"gave up after 6 h: {error.detail}"
    in_time = policy().decide(error, attempts=9, since=ago(hours=6), now=NOW)
    assert not isinstance(in_time, Fail), "the limit itself is still in time"


def test_a_transcription_still_running_past_the_age_limit_fails() -> None:
    assert policy().still_running("processing", since=ago(hours=6), now=NOW) is None
    overdue = policy().still_running("processing", since=ago(hours=7), now=NOW)
    assert overdue is not None
    assert overdue.error.detail == "provider still processing after 6 h"
    assert "had not finished after 6 hours" in overdue.error.user_message


def test_lost_work_is_sent_again_twice_then_fails() -> None:
    lost = WorkLost("batch not found", user_message="The service lost this file.")
    assert policy().after_work_lost(lost, 0) is None
    assert policy().after_work_lost(lost, 1) is None
    given_up = policy().after_work_lost(lost, 2)
    assert given_up is not None
    assert given_up.error.user_message == (
        "The service lost this file. It was sent again twice and lost each time; share the "
        "file again later to retry."
    )


def test_a_clean_up_that_failed_is_tried_again_in_a_minute_unless_it_cannot_succeed() -> None:
    assert policy().after_clean_up_error(REFUSED, now=NOW) == Fail(REFUSED)
    later = policy().after_clean_up_error(NotReadyYet("409 still processing"), now=NOW)
    assert isinstance(later, Retry)
    assert later.at == NOW + timedelta(seconds=CLEAN_UP_RETRY_SECONDS)
    assert policy().after_clean_up_error(RuntimeError("bug"), now=NOW).detail == (
        "RuntimeError('bug')"
    )


def test_a_reply_slack_refuses_for_good_is_given_up_and_any_other_retried() -> None:
    archived = PermanentError("is_archived")
    assert policy().decide(archived, attempts=0, since=None, now=NOW) == Fail(archived)
    decided = policy().decide(
        TemporaryError("ratelimited"), attempts=1, since=ago(hours=1), now=NOW
    )
    assert isinstance(decided, Retry) and decided.since == ago(hours=1)
