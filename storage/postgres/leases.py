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

from storage.leases import FAIR_TURNS, FAIR_WINDOW, in_turns
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


#: A row this very claim took (its turns come first, in the same transaction): the rest of its
#: batch-native batch is still claimable with it.
_THIS_CLAIM = "({table}.lease_owner = %(owner)s AND {table}.lease_expires_at = %(until)s)"


# The jobs of per-file providers are due one by one; those of batch-native providers are claimed
# by batch, whole, once one of the batch is due and none is held.
_DUE = f"""
    j.{UNFINISHED}
    AND {_free("j")}
    AND ((j.provider <> ALL(%(whole)s::text[])
          AND (j.next_attempt_at IS NULL OR j.next_attempt_at <= %(now)s))
         OR (j.provider = ANY(%(whole)s::text[])
             AND EXISTS (SELECT 1 FROM jobs AS d WHERE d.batch_id = j.batch_id
                         AND d.{UNFINISHED}
                         AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %(now)s))
             AND NOT EXISTS (SELECT 1 FROM jobs AS h WHERE h.batch_id = j.batch_id
                             AND h.{UNFINISHED} AND NOT {_free("h")}
                             AND NOT {_THIS_CLAIM.format(table="h")})))"""

#: A batch's workspace as the index batches_open_by_workspace keeps it (no NULLs, which a row
#: comparison would not order).
_WORKSPACE = "COALESCE({b}.enterprise_id, ''), COALESCE({b}.team_id, '')"

# The workspaces with open batches, one index probe each (a skip scan of
# batches_open_by_workspace), stopping after ``most``: the claim only needs to know whether there
# are several, and which, when there are a few.
_OPEN_WORKSPACES = f"""
    WITH RECURSIVE spaces (e, t, n) AS (
        (SELECT {_WORKSPACE.format(b="batches")}, 1 FROM batches WHERE state = {_OPEN}
         ORDER BY 1, 2 LIMIT 1)
        UNION ALL
        SELECT next.e, next.t, spaces.n + 1 FROM spaces CROSS JOIN LATERAL (
            SELECT {_WORKSPACE.format(b="b")} FROM batches AS b
            WHERE b.state = {_OPEN}
              AND ({_WORKSPACE.format(b="b")}) > (spaces.e, spaces.t)
            ORDER BY 1, 2 LIMIT 1) AS next (e, t)
        WHERE spaces.n < %(most)s
    )
    SELECT e, t FROM spaces"""

# The claim proper: the oldest due jobs no one holds, read in age order from the index
# jobs_unfinished_by_age (past those other processes hold, and stopping once ``limit`` are
# locked) rather than sorting every due job. Each comes with its batch's workspace.
_CLAIM_DUE = f"""
    WITH claimed AS (
        SELECT j.id, COALESCE(b.enterprise_id, '') AS e, COALESCE(b.team_id, '') AS t
        FROM jobs AS j JOIN batches AS b ON b.id = j.batch_id
        WHERE b.state = {_OPEN} AND {_DUE}
        ORDER BY j.created_at, j.batch_id, j.position
        LIMIT %(limit)s
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs SET lease_owner = %(owner)s, lease_expires_at = %(until)s
    FROM claimed WHERE jobs.id = claimed.id
    RETURNING claimed.e, claimed.t, {_JOB_COLUMNS}"""

# Before it, when several workspaces have open batches: each workspace's first ``turns`` due jobs
# among its oldest ``window`` open batches, so that one workspace's backlog does not keep
# another's work behind it. Each workspace is read from its own oldest batches on
# (batches_open_by_workspace), no further than the window: a workspace with more in flight than
# that is the one with the backlog, whose other due jobs come in age order. The claim locks them
# turn by turn.
_CLAIM_TURNS = f"""
    WITH heads AS (
        SELECT h.id, w.e, w.t, h.turn
        FROM unnest(%(e)s::text[], %(t)s::text[]) AS w (e, t)
        CROSS JOIN LATERAL (
            SELECT j.id, ROW_NUMBER() OVER () AS turn FROM (
                SELECT j.id FROM (
                    SELECT b.id, b.created_at FROM batches AS b
                    WHERE b.state = {_OPEN} AND ({_WORKSPACE.format(b="b")}) = (w.e, w.t)
                    ORDER BY b.created_at, b.id
                    LIMIT %(window)s) AS b
                JOIN jobs AS j ON j.batch_id = b.id
                WHERE {_DUE}
                ORDER BY b.created_at, b.id, j.position
                LIMIT %(turns)s) AS j
        ) AS h
    ), claimed AS (
        SELECT j.id, heads.e, heads.t FROM jobs AS j JOIN heads ON heads.id = j.id
        WHERE {_DUE}
        ORDER BY heads.turn, j.created_at, j.batch_id, j.position
        LIMIT %(limit)s
        FOR UPDATE OF j SKIP LOCKED
    )
    UPDATE jobs SET lease_owner = %(owner)s, lease_expires_at = %(until)s
    FROM claimed WHERE jobs.id = claimed.id
    RETURNING claimed.e, claimed.t, {_JOB_COLUMNS}"""

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
#: With more workspaces than this having open batches, a claim takes the oldest due jobs without
#: looking at each workspace first (taking turns would read that many workspaces every cycle).
_MOST_WORKSPACES_TAKING_TURNS = 1000


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
        room = _NO_LIMIT if limit is None else limit
        parameters: dict[str, Any] = {
            "owner": owner,
            "now": now,
            "until": until,
            "whole": list(whole_batches),
            "turns": FAIR_TURNS,
            "window": FAIR_WINDOW,
        }
        workspace_of: dict[str, tuple[str, str]] = {}
        jobs: list[Job] = []
        async with self._database.transaction() as db:
            cursor = await db.execute(_OPEN_WORKSPACES, {"most": _MOST_WORKSPACES_TAKING_TURNS + 1})
            spaces = [(str(row[0]), str(row[1])) for row in await cursor.fetchall()]
            claims: list[tuple[str, dict[str, Any]]] = [(_CLAIM_DUE, {})]
            if 1 < len(spaces) <= _MOST_WORKSPACES_TAKING_TURNS:
                turns = {"e": [e for e, _ in spaces], "t": [t for _, t in spaces]}
                claims.insert(0, (_CLAIM_TURNS, turns))
            for query, extra in claims:
                if len(jobs) >= room:
                    break
                # The jobs claimed by a first statement are this owner's now: not free for the next.
                cursor = await db.execute(query, {**parameters, **extra, "limit": room - len(jobs)})
                for row in await cursor.fetchall():
                    job = job_of(row[2:])
                    workspace_of[job.id] = (str(row[0]), str(row[1]))
                    jobs.append(job)
            whole = {job.batch_id for job in jobs if job.provider in whole_batches}
            if whole:
                cursor = await db.execute(
                    _GIVE_BACK_PARTS, {"owner": owner, "until": until, "batches": list(whole)}
                )
                given_back = {str(row[0]) for row in await cursor.fetchall()}
                jobs = [job for job in jobs if job.id not in given_back]
        return in_turns(jobs, workspace_of)

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
