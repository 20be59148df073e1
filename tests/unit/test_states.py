"""The table of moves: the finished states are those no move leaves, and every other state has a
way on."""

from __future__ import annotations

import itertools

from storage.states import (
    BATCH_MOVES,
    FINISHED_BATCH_STATES,
    FINISHED_JOB_STATES,
    JOB_MOVES,
    UNFINISHED_JOB_STATES,
    BatchState,
    JobState,
    batch_move_allowed,
    job_move_allowed,
)


def test_finished_job_states_are_the_ones_no_move_leaves() -> None:
    left = {source for move in JOB_MOVES for source in move.sources}
    assert left == UNFINISHED_JOB_STATES
    assert set(JobState) - left == FINISHED_JOB_STATES
    assert all(state.is_terminal is (state in FINISHED_JOB_STATES) for state in JobState)
    assert {move.target for move in JOB_MOVES} >= FINISHED_JOB_STATES


def test_finished_batch_states_are_the_ones_no_move_leaves() -> None:
    left = {source for move in BATCH_MOVES for source in move.sources}
    assert set(BatchState) - left == FINISHED_BATCH_STATES
    assert {move.target for move in BATCH_MOVES} >= FINISHED_BATCH_STATES


def test_a_file_has_a_way_from_queued_to_completed_and_a_lost_one_back() -> None:
    path = [
        JobState.QUEUED,
        JobState.DOWNLOADING,
        JobState.UPLOADING,
        JobState.UPLOADED,
        JobState.SUBMITTED,
        JobState.PROCESSING,
        JobState.COMPLETED,
    ]
    assert all(job_move_allowed(a, b) for a, b in itertools.pairwise(path))
    assert job_move_allowed(JobState.QUEUED, JobState.SUBMITTED), "a link goes straight there"
    assert job_move_allowed(JobState.PROCESSING, JobState.UPLOADED)
    assert not job_move_allowed(JobState.COMPLETED, JobState.QUEUED)
    assert not job_move_allowed(JobState.UPLOADED, JobState.COMPLETED)


def test_a_cancelled_batch_is_never_delivered_and_a_delivering_one_never_cancelled() -> None:
    assert batch_move_allowed(BatchState.OPEN, BatchState.CANCELLED)
    assert not batch_move_allowed(BatchState.DELIVERING, BatchState.CANCELLED)
    assert not batch_move_allowed(BatchState.CANCELLED, BatchState.DELIVERING)
    assert not batch_move_allowed(BatchState.CANCELLED, BatchState.DELIVERED)
