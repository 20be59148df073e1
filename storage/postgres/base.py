"""What every part of the PostgreSQL store shares: reading rows, and the guarded writes."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from storage.models import Batch, Job
from storage.postgres.connection import Connection, Database
from storage.postgres.rows import batch_of, job_of
from storage.rows import BATCH_SELECT, JOB_SELECT, states_sql
from storage.states import BatchState, JobState

#: The second part of a statement that finishes jobs (``WITH moved AS (UPDATE jobs … RETURNING
#: jobs.id, jobs.batch_id)``): each of their batches keeps when a job of it last finished
#: (``jobs_finished_at``, two parameters: the time, twice). A cycle finds the batches whose reply
#: or progress message may be due among those, through partial indexes, instead of looking at the
#: jobs of every open batch. Written after the jobs, as every statement that writes both does.
STAMP_BATCHES = """
    UPDATE batches SET jobs_finished_at = GREATEST(COALESCE(jobs_finished_at, %s), %s)
    WHERE id IN (SELECT batch_id FROM moved)"""


class StoreBase:
    def __init__(self, database: Database) -> None:
        self._database = database

    # -- reading -----------------------------------------------------------------------------

    async def _jobs(self, where: str, parameters: Sequence[Any] = ()) -> list[Job]:
        return [
            job_of(row)
            for row in await self._rows(f"SELECT {JOB_SELECT} FROM jobs {where}", parameters)
        ]

    async def _batches(
        self, where: str, parameters: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Batch]:
        """Batches matching ``where``, which may name the table ``b``."""
        rows = await self._rows(f"SELECT {BATCH_SELECT} FROM batches AS b {where}", parameters)
        return [batch_of(row) for row in rows]

    async def _rows(
        self, query: str, parameters: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Any]:
        async with self._database.autocommit() as db:
            cursor = await db.execute(query, parameters)
            return await cursor.fetchall()

    # -- writing -----------------------------------------------------------------------------

    async def _execute(self, statement: str, parameters: Sequence[Any] = ()) -> int:
        """Run one statement, a transaction of its own; how many rows it changed."""
        async with self._database.autocommit() as db:
            cursor = await db.execute(statement, parameters)
            return cursor.rowcount

    async def _update_job(
        self,
        job_id: str,
        assignments: str,
        values: Sequence[Any],
        now: datetime,
        sources: Collection[JobState],
    ) -> bool:
        """Run ``SET {assignments}`` on the job if its state is one of ``sources``; whether it
        was."""
        changed = await self._execute(
            f"""UPDATE jobs SET {assignments}, updated_at = %s
                WHERE id = %s AND state IN {states_sql(sources)}""",
            (*values, now, job_id),
        )
        return changed == 1

    async def _finish_job(
        self,
        job_id: str,
        assignments: str,
        values: Sequence[Any],
        now: datetime,
        sources: Collection[JobState],
    ) -> bool:
        """As :meth:`_update_job`, for a move to a finished state: the job's batch records in
        the same statement that one of its jobs finished (:data:`STAMP_BATCHES`)."""
        async with self._database.autocommit() as db:
            cursor = await db.execute(
                f"""WITH moved AS (
                        UPDATE jobs SET {assignments}, updated_at = %s
                        WHERE id = %s AND state IN {states_sql(sources)}
                        RETURNING jobs.id, jobs.batch_id
                    ), stamped AS ({STAMP_BATCHES})
                    SELECT id FROM moved""",
                (*values, now, job_id, now, now),
            )
            return len(await cursor.fetchall()) == 1

    async def _update_jobs(
        self,
        job_ids: Collection[str],
        assignments: str,
        values: Sequence[Any],
        now: datetime,
        sources: Collection[JobState] | None = None,
    ) -> int:
        """Run ``SET {assignments}`` (the same values) on every job of ``job_ids`` whose state
        is one of ``sources`` (any, without), in one statement; how many there were."""
        if not job_ids:
            return 0
        guard = f" AND state IN {states_sql(sources)}" if sources is not None else ""
        return await self._execute(
            f"UPDATE jobs SET {assignments}, updated_at = %s WHERE id = ANY(%b::text[]){guard}",
            (*values, now, list(job_ids)),
        )

    async def _update_batch(
        self,
        batch_id: str,
        assignments: str,
        values: Sequence[Any],
        now: datetime,
        sources: Collection[BatchState] | None = None,
    ) -> bool:
        """Run ``SET {assignments}`` on the batch if its state is one of ``sources`` (any,
        without); whether it was."""
        guard = f" AND state IN {states_sql(sources)}" if sources is not None else ""
        changed = await self._execute(
            f"UPDATE batches SET {assignments}, updated_at = %s WHERE id = %s{guard}",
            (*values, now, batch_id),
        )
        return changed == 1


def columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """``rows`` turned into ``width`` columns: the arrays a statement ``unnest``s, so that many
    rows are written by one statement. Arrays are bound in binary (``%b``): for 10,000 jobs the
    driver formats them as text several times slower than the server runs the statement."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


async def moved(db: Connection, statement: str, parameters: Sequence[Any]) -> set[str]:
    """Run a guarded ``UPDATE … RETURNING jobs.id``; the ids of the jobs it moved."""
    cursor = await db.execute(statement, parameters)
    return {str(row[0]) for row in await cursor.fetchall()}
