"""The order in which a claim hands out due work, the same on every backend: workspaces take
turns, so that one workspace's backlog (a flood of files) does not keep another's work waiting
behind it for transfers and provider slots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from storage.models import Job

#: The first due jobs of each workspace that take turns with those of the other workspaces; the
#: rest follow oldest first. Bounded so that a claim reads a few jobs of each workspace, not
#: every due one.
FAIR_TURNS = 16
#: How far into each workspace's open batches (oldest first) a claim looks for those first due
#: jobs, at least: a workspace with more batches open than this is itself the one with a backlog.
FAIR_WINDOW = 256


def in_turns(jobs: Sequence[Job], workspace_of: Mapping[str, object]) -> list[Job]:
    """``jobs`` with workspaces taking turns: each job's rank among the jobs of its workspace
    (``workspace_of`` by job id), oldest first, up to :data:`FAIR_TURNS`; then oldest first.
    With one workspace, simply oldest first."""
    by_age = sorted(jobs, key=lambda job: (job.created_at, job.batch_id, job.position))
    counted: dict[object, int] = {}
    turn: dict[str, int] = {}
    for job in by_age:
        workspace = workspace_of.get(job.id)
        turn[job.id] = counted.get(workspace, 0)
        counted[workspace] = turn[job.id] + 1
    # A stable sort: within a turn, and past the last one, the age order stays.
    return sorted(by_age, key=lambda job: min(turn[job.id], FAIR_TURNS))
