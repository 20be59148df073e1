"""The leases under which a process takes a unit of work.

Part of :class:`storage.store.Store`, whose docstring states the contract every method
keeps.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Protocol

from storage.models import (
    Batch,
    Job,
    Leases,
)


class LeaseSteps(Protocol):
    """The leases under which a process takes a unit of work."""

    # -- leases ------------------------------------------------------------------------------

    async def claim_due_jobs(
        self,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        *,
        whole_batches: Collection[str] = (),
        limit: int | None = None,
    ) -> list[Job]:
        """Lease to ``owner``, until ``now + lease_for``, the unfinished jobs of open batches that
        are due by ``now`` and under no unexpired lease (``owner``'s own included: that work is
        under way); returns them as they are now, workspaces taking turns
        (:func:`storage.leases.in_turns`): the first :data:`storage.leases.FAIR_TURNS` due jobs of
        each workspace (``enterprise_id``, ``team_id`` of the batch) by their rank in it, then
        in the order of :meth:`due_jobs`; those first jobs are looked for among the workspace's
        oldest :data:`storage.leases.FAIR_WINDOW` open batches at least (so that a claim reads a
        bounded part of each workspace's backlog). A claim cut by ``limit`` takes them in that
        order, so one workspace's backlog does not keep another's work waiting; with one
        workspace, the order is :meth:`due_jobs`'s.

        For a provider in ``whole_batches`` (one whose unit of work is the batch) a batch is
        claimed whole: every unfinished job of it once one is due, or none while any is under an
        unexpired lease. At most ``limit`` jobs, never part of such a batch. Raises the common
        errors."""

    async def claim_jobs(
        self, owner: str, job_ids: Collection[str], now: datetime, lease_for: timedelta
    ) -> list[Job]:
        """Lease to ``owner``, until ``now + lease_for``, those of these jobs that no other owner
        holds unexpired; returns them as they are now, by batch and position. Raises the common
        errors."""

    async def claim_batches(
        self, owner: str, batch_ids: Collection[str], now: datetime, lease_for: timedelta
    ) -> list[Batch]:
        """Lease to ``owner``, until ``now + lease_for``, those of these batches that no other
        owner holds unexpired; returns them as they are now (what a reading before the claim
        said of them may be out of date), oldest first. Raises the common errors."""

    async def renew_leases(
        self, owner: str, leases: Leases, now: datetime, lease_for: timedelta
    ) -> Leases:
        """Extend to ``now + lease_for`` the leases ``owner`` still holds among ``leases``
        (expired ones too, unless another owner claimed them since); returns those. Raises the
        common errors."""

    async def release_leases(self, owner: str, leases: Leases) -> None:
        """Free the leases ``owner`` holds among ``leases``: anyone may claim those rows at once.
        Leases another owner holds are left alone. Raises the common errors."""
