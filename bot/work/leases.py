"""The leases this process holds: no unit of work is taken by two processes at once.

A cycle claims the units it takes (the due jobs, a batch whose reply or progress message it posts
or whose speakers' names it shows, the jobs it cleans up) under a lease in the database, in this
process's name. Each unit's lease is released as soon as its step is done, so any process may take
its next step, and renewed while the step runs (a transfer can take minutes). A process that is
killed leaves its leases to run out: ``lease_for`` later, another process takes its work over.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Collection
from datetime import datetime, timedelta

from storage.models import Batch, Job, Leases
from storage.store import StorageError, Store

log = logging.getLogger(__name__)


def new_owner() -> str:
    """This process's name on its leases: unique (random), and telling an operator who looks at
    the database which host and process it is."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class WorkLeases:
    def __init__(
        self,
        store: Store,
        *,
        owner: str,
        lease_for: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self.owner = owner
        self.lease_for = lease_for
        self._clock = clock
        #: What this process holds now.
        self._jobs: set[str] = set()
        self._batches: set[str] = set()

    @property
    def held(self) -> Leases:
        return Leases(frozenset(self._jobs), frozenset(self._batches))

    async def claim_due(
        self, now: datetime, *, whole_batches: Collection[str], limit: int | None = None
    ) -> list[Job]:
        """The due jobs no other process works on (at most ``limit``), leased to this one."""
        jobs = await self._store.claim_due_jobs(
            self.owner, now, self.lease_for, whole_batches=whole_batches, limit=limit
        )
        self._jobs.update(job.id for job in jobs)
        return jobs

    async def claim_jobs(self, job_ids: Collection[str]) -> list[Job]:
        if not job_ids:
            return []
        jobs = await self._store.claim_jobs(self.owner, job_ids, self._clock(), self.lease_for)
        self._jobs.update(job.id for job in jobs)
        return jobs

    async def claim_batches(self, batch_ids: Collection[str]) -> list[Batch]:
        """These batches, as they are now, for those no other process holds."""
        if not batch_ids:
            return []
        batches = await self._store.claim_batches(
            self.owner, batch_ids, self._clock(), self.lease_for
        )
        self._batches.update(batch.id for batch in batches)
        return batches

    async def release(self, *, jobs: Collection[str] = (), batches: Collection[str] = ()) -> None:
        """Give these back: any process may take their next step at once. A release that fails
        is not retried: the leases run out by themselves."""
        leases = Leases(
            frozenset(jobs) & frozenset(self._jobs), frozenset(batches) & frozenset(self._batches)
        )
        self._jobs.difference_update(leases.jobs)
        self._batches.difference_update(leases.batches)
        if not leases:
            return
        try:
            await self._store.release_leases(self.owner, leases)
        except StorageError as exc:
            log.warning(
                "could not give back %d lease(s); they run out by themselves: %s",
                len(leases.jobs) + len(leases.batches),
                exc,
            )

    def given_back(self, job_ids: Collection[str]) -> None:
        """These were given back by a store verb that saved their step too: no longer held."""
        self._jobs.difference_update(job_ids)

    async def release_all(self) -> None:
        held = self.held
        await self.release(jobs=held.jobs, batches=held.batches)

    async def renew(self) -> Leases:
        """Extend every lease held; returns those lost meanwhile (another process took them over
        after they ran out), which this process no longer holds."""
        held = self.held
        if not held:
            return Leases()
        kept = await self._store.renew_leases(self.owner, held, self._clock(), self.lease_for)
        # A lease released while this ran was not lost.
        lost = Leases(
            (held.jobs - kept.jobs) & self._jobs, (held.batches - kept.batches) & self._batches
        )
        self._jobs.difference_update(lost.jobs)
        self._batches.difference_update(lost.batches)
        return lost
