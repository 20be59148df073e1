"""Leases in PostgreSQL: which process works on which job or batch.

A lease is two columns of the row it covers (``lease_owner``, ``lease_expires_at``). A claim picks
the rows with ``SELECT … FOR UPDATE SKIP LOCKED`` and writes the lease in the same statement: a
row another process is claiming (or writing) at that moment is passed over rather than waited
for, and two claims never both take one row. Renewing and releasing name the owner, so they never
touch a lease another process took over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from storage.models import Batch, Job, Leases
from storage.postgres.base import StoreBase
from storage.postgres.rows import UNFINISHED, batch_of, job_of
from storage.states import BatchState

_OPEN = f"'{BatchState.OPEN.value}'"
_JOB_COLUMNS = ", ".join(f"jobs.{field.name}" for field in dataclasses.fields(Job))
_BATCH_COLUMNS = ", ".join(f"batches.{field.name}" for field in dataclasses.fields(Batch))
#: A row no one holds: never leased, released, or its lease ran out.
_FREE = "({table}.lease_owner IS NULL OR {table}.lease_expires_at <= %(now)s)"


def _free(table: str) -> str:
    return _FREE.format(table=table)


# The jobs of per-file providers are due one by one; those of batch-native providers are claimed
# by batch, whole, once one of the batch is due and none is held.
_CLAIM_DUE = f"""
    WITH claimed AS (
        SELECT j.id FROM jobs AS j
        WHERE j.{UNFINISHED}
          AND j.batch_id IN (SELECT id FROM batches WHERE state = {_OPEN})
          AND {_free("j")}
          AND ((j.provider <> ALL(%(whole)s::text[])
                AND (j.next_attempt_at IS NULL OR j.next_attempt_at <= %(now)s))
               OR (j.provider = ANY(%(whole)s::text[])
                   AND EXISTS (SELECT 1 FROM jobs AS d WHERE d.batch_id = j.batch_id
                               AND d.{UNFINISHED}
                               AND (d.next_attempt_at IS NULL
                                    OR d.next_attempt_at <= %(now)s))
                   AND NOT EXISTS (SELECT 1 FROM jobs AS h WHERE h.batch_id = j.batch_id
                                   AND h.{UNFINISHED} AND NOT {_free("h")})))
        ORDER BY j.created_at, j.batch_id, j.position
        LIMIT %(limit)s
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs SET lease_owner = %(owner)s, lease_expires_at = %(until)s
    FROM claimed WHERE jobs.id = claimed.id
    RETURNING {_JOB_COLUMNS}"""

# A batch-native batch claimed in part (the limit cut it, or one of its jobs was being written
# and so skipped) is given back whole: its provider takes the batch together or not at all.
_GIVE_BACK_PARTS = f"""
    UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL
    WHERE lease_owner = %(owner)s AND batch_id = ANY(%(batches)s::text[])
      AND batch_id IN (SELECT batch_id FROM jobs AS o
                       WHERE o.batch_id = ANY(%(batches)s::text[]) AND o.{UNFINISHED}
                         AND (o.lease_owner IS DISTINCT FROM %(owner)s
                              OR o.lease_expires_at IS DISTINCT FROM %(until)s))
    RETURNING id"""

_CLAIM_JOBS = f"""
    WITH claimed AS (
        SELECT j.id FROM jobs AS j
        WHERE j.id = ANY(%(ids)s::text[]) AND {_free("j")}
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs SET lease_owner = %(owner)s, lease_expires_at = %(until)s
    FROM claimed WHERE jobs.id = claimed.id
    RETURNING {_JOB_COLUMNS}"""

_CLAIM_BATCHES = f"""
    WITH claimed AS (
        SELECT b.id FROM batches AS b
        WHERE b.id = ANY(%(ids)s::text[]) AND {_free("b")}
        FOR UPDATE OF b SKIP LOCKED
    )
    UPDATE batches SET lease_owner = %(owner)s, lease_expires_at = %(until)s
    FROM claimed WHERE batches.id = claimed.id
    RETURNING {_BATCH_COLUMNS}"""

_NO_LIMIT = 2**62


class LeaseSteps(StoreBase):
    async def claim_due_jobs(
        self,
        owner: str,
        now: datetime,
        lease_for: timedelta,
        *,
        whole_batches: Collection[str] = (),
        limit: int | None = None,
    ) -> list[Job]:
        until = now + lease_for
        parameters: dict[str, Any] = {
            "owner": owner,
            "now": now,
            "until": until,
            "whole": list(whole_batches),
            "limit": _NO_LIMIT if limit is None else limit,
        }
        async with self._database.transaction() as db:
            cursor = await db.execute(_CLAIM_DUE, parameters)
            jobs = [job_of(row) for row in await cursor.fetchall()]
            whole = {job.batch_id for job in jobs if job.provider in whole_batches}
            if whole:
                cursor = await db.execute(
                    _GIVE_BACK_PARTS, {"owner": owner, "until": until, "batches": list(whole)}
                )
                given_back = {str(row[0]) for row in await cursor.fetchall()}
                jobs = [job for job in jobs if job.id not in given_back]
        jobs.sort(key=lambda job: (job.created_at, job.batch_id, job.position))
        return jobs

    async def claim_jobs(
        self, owner: str, job_ids: Collection[str], now: datetime, lease_for: timedelta
    ) -> list[Job]:
        if not job_ids:
            return []
        rows = await self._rows(
            _CLAIM_JOBS,
            {"owner": owner, "now": now, "until": now + lease_for, "ids": list(job_ids)},
        )
        jobs = [job_of(row) for row in rows]
        jobs.sort(key=lambda job: (job.batch_id, job.position))
        return jobs

    async def claim_batches(
        self, owner: str, batch_ids: Collection[str], now: datetime, lease_for: timedelta
    ) -> list[Batch]:
        if not batch_ids:
            return []
        rows = await self._rows(
            _CLAIM_BATCHES,
            {"owner": owner, "now": now, "until": now + lease_for, "ids": list(batch_ids)},
        )
        batches = [batch_of(row) for row in rows]
        batches.sort(key=lambda batch: (batch.created_at, batch.id))
        return batches

    async def renew_leases(
        self, owner: str, leases: Leases, now: datetime, lease_for: timedelta
    ) -> Leases:
        if not leases:
            return Leases()
        until = now + lease_for
        async with self._database.transaction() as db:
            jobs = batches = frozenset[str]()
            if leases.jobs:
                cursor = await db.execute(
                    """UPDATE jobs SET lease_expires_at = %s
                       WHERE id = ANY(%s::text[]) AND lease_owner = %s RETURNING id""",
                    (until, list(leases.jobs), owner),
                )
                jobs = frozenset(str(row[0]) for row in await cursor.fetchall())
            if leases.batches:
                cursor = await db.execute(
                    """UPDATE batches SET lease_expires_at = %s
                       WHERE id = ANY(%s::text[]) AND lease_owner = %s RETURNING id""",
                    (until, list(leases.batches), owner),
                )
                batches = frozenset(str(row[0]) for row in await cursor.fetchall())
        return Leases(jobs, batches)

    async def release_leases(self, owner: str, leases: Leases) -> None:
        if not leases:
            return
        async with self._database.transaction() as db:
            if leases.jobs:
                await db.execute(
                    """UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL
                       WHERE id = ANY(%b::text[]) AND lease_owner = %s""",
                    (list(leases.jobs), owner),
                )
            if leases.batches:
                await db.execute(
                    """UPDATE batches SET lease_owner = NULL, lease_expires_at = NULL
                       WHERE id = ANY(%b::text[]) AND lease_owner = %s""",
                    (list(leases.batches), owner),
                )
