"""The small rules the engine lives by: backoff, poll spacing, progress wording, subtitles."""

from __future__ import annotations

import random

from bot.messages.work import progress_text
from bot.rendering import to_srt
from bot.transcript import Segment, Transcript
from bot.work.poll import MAX_POLL_BACKOFF_SECONDS, next_poll_delay
from bot.work.retry import MAX_BACKOFF_SECONDS, backoff_seconds
from storage.models import JobState
from tests.unit.test_rendering import job


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    rng = random.Random(7)
    for attempts, base in [(1, 2), (2, 4), (3, 8), (6, 64)]:
        delay = backoff_seconds(attempts, rng)
        assert base / 2 <= delay <= base
    assert backoff_seconds(40, rng) <= MAX_BACKOFF_SECONDS
    assert len({round(backoff_seconds(3, rng), 6) for _ in range(20)}) > 1, "jittered"


def test_progress_wording() -> None:
    assert progress_text([job("memo.wav", JobState.PROCESSING)], label_of=str) == (
        ":hourglass_flowing_sand: Transcribing *memo.wav*…"
    )
    two = [job("a.wav", JobState.COMPLETED), job("b.wav", JobState.UPLOADING)]
    assert (
        progress_text(two, label_of=str)
        == ":hourglass_flowing_sand: Transcribing 2 files… 1 of 2 done"
    )


def test_subtitles_split_long_turns_and_keep_timing_in_order() -> None:
    transcript = Transcript(
        text="x",
        segments=[
            Segment(text="word " * 40, speaker="1", start_ms=0, end_ms=20_000),
            Segment(text="Short reply.", speaker="2", start_ms=20_500, end_ms=21_500),
        ],
    )
    srt = to_srt(transcript)
    assert srt is not None
    cues = [cue.splitlines() for cue in srt.strip().split("\n\n")]
    assert [cue[0] for cue in cues] == [str(i) for i in range(1, len(cues) + 1)]
    assert len(cues) == 4  # 200 characters make three cues, then the reply
    assert cues[-1] == ["4", "00:00:20,500 --> 00:00:21,500", "[Speaker 2] Short reply."]
    starts = [cue[1].split(" --> ")[0] for cue in cues]
    assert starts == sorted(starts)
    assert all(len(cue[2]) <= 84 + len("[Speaker 1] ") for cue in cues)


def test_no_timings_no_subtitles() -> None:
    assert to_srt(Transcript(text="plain", segments=[Segment(text="plain")])) is None


def test_adaptive_poll_spacing() -> None:
    assert next_poll_delay(20, None, poll_interval=5) == 5
    assert next_poll_delay(300, None, poll_interval=5) == 30
    assert next_poll_delay(7200, None, poll_interval=5) == MAX_POLL_BACKOFF_SECONDS
    assert next_poll_delay(20, 42.0, poll_interval=5) == 42.0
    assert next_poll_delay(20, 1.0, poll_interval=5) == 5


def test_with_a_webhook_polls_are_only_a_fallback() -> None:
    assert next_poll_delay(0, None, poll_interval=5, notified=True) == 60
    assert next_poll_delay(0, 20.0, poll_interval=5, notified=True) == 60
    assert next_poll_delay(0, 90.0, poll_interval=5, notified=True) == 90
    assert next_poll_delay(0, None, poll_interval=120, notified=True) == 120
