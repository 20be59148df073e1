"""Leases on SQLite: kept in memory.

One process alone works on a SQLite database (its process lock sees to that), so no other process
can hold a lease: the store keeps them in memory, with the same verbs and meaning as a store that
several processes share. They end with the store, as with the process: after a restart nothing is
leased, and the work a killed process left is taken up at once.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from storage.leases import in_turns
from storage.models import Batch, Job, Leases
from storage.sqlite.connection import Database
from storage.sqlite.reads import Reads
from storage.sqlite.rows import chunks, placeholders

#: A lease: its owner, and when it expires.
_Lease = tuple[str, datetime]


class LeaseSteps(Reads):
    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._job_leases: dict[str, _Lease] = {}
        self._batch_leases: dict[str, _Lease] = {}

    async def claim_due_jobs(
        self,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        *,
        whole_batches: Collection[str] = (),
        limit: int | None = None,
    ) -> list[Job]:
        # The due jobs of open batches: those due, and every unfinished job of a batch with one.
        due = await self.due_jobs(now)
        # Read before the leases are looked at: from there to taking them nothing may wait.
        workspaces = await self._workspaces_of({job.batch_id for job in due})
        workspace_of = {job.id: workspaces.get(job.batch_id) for job in due}
        held = self._job_leases
        room = len(due) if limit is None else limit
        by_batch: dict[str, list[Job]] = {}
        for job in due:
            if job.provider in whole_batches:
                by_batch.setdefault(job.batch_id, []).append(job)
        units: list[list[Job]] = []
        for job in due:
            if job.provider in whole_batches:
                unit = by_batch.pop(job.batch_id, [])
                if not unit or not all(_free(held, other.id, now) for other in unit):
                    continue
            elif not _free(held, job.id, now) or (
                job.next_attempt_at is not None and job.next_attempt_at > now
            ):
                continue
            else:
                unit = [job]
            units.append(unit)
        # Workspaces take turns (storage.leases): a unit goes by its first job's place.
        place = {job.id: index for index, job in enumerate(in_turns(due, workspace_of))}
        units.sort(key=lambda unit: place[unit[0].id])
        claimed: list[Job] = []
        for unit in units:
            if len(claimed) + len(unit) > room:
                break
            claimed += unit
        until = now + lease_for
        for job in claimed:
            held[job.id] = (owner, until)
        return in_turns(claimed, workspace_of)

    async def _workspaces_of(self, batch_ids: Collection[str]) -> dict[str, tuple[str, str]]:
        """Each batch's workspace: its organisation and team."""
        found: dict[str, tuple[str, str]] = {}
        for chunk in chunks(list(batch_ids)):
            rows = await self._rows(
                f"""SELECT id, COALESCE(enterprise_id, ''), COALESCE(team_id, '') FROM batches
                    WHERE id IN ({placeholders(len(chunk))})""",
                chunk,
            )
            found.update((str(row[0]), (str(row[1]), str(row[2]))) for row in rows)
        return found

    async def claim_jobs(
        self, owner: str, job_ids: Collection[str], now: datetime, lease_for: timedelta
    ) -> list[Job]:
        found = await self.get_jobs(list(job_ids))
        # Checked and taken with no wait in between: no other claim can run meanwhile.
        jobs = [job for job in found if _free(self._job_leases, job.id, now)]
        for job in jobs:
            self._job_leases[job.id] = (owner, now + lease_for)
        return list(jobs)

    async def claim_batches(
        self, owner: str, batch_ids: Collection[str], now: datetime, lease_for: timedelta
    ) -> list[Batch]:
        found: list[Batch] = []
        for chunk in chunks(list(dict.fromkeys(batch_ids))):
            found += await self._batches(f"WHERE id IN ({placeholders(len(chunk))})", chunk)
        # Checked and taken with no wait in between: no other claim can run meanwhile.
        batches = [batch for batch in found if _free(self._batch_leases, batch.id, now)]
        batches.sort(key=lambda batch: (batch.created_at, batch.id))
        for batch in batches:
            self._batch_leases[batch.id] = (owner, now + lease_for)
        return batches

    async def renew_leases(
        self, owner: str, leases: Leases, now: datetime, lease_for: timedelta
    ) -> Leases:
        until = now + lease_for
        renewed: list[frozenset[str]] = []
        for held, ids in ((self._job_leases, leases.jobs), (self._batch_leases, leases.batches)):
            mine = frozenset(id_ for id_ in ids if id_ in held and held[id_][0] == owner)
            for id_ in mine:
                held[id_] = (owner, until)
            renewed.append(mine)
        return Leases(*renewed)

    async def release_leases(self, owner: str, leases: Leases) -> None:
        for held, ids in ((self._job_leases, leases.jobs), (self._batch_leases, leases.batches)):
            for id_ in ids:
                if id_ in held and held[id_][0] == owner:
                    del held[id_]


def _free(held: dict[str, _Lease], id_: str, now: datetime) -> bool:
    lease = held.get(id_)
    return lease is None or lease[1] <= now
