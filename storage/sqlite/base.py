"""What every part of the SQLite store shares: reading rows, and the guarded writes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from storage.models import Batch, Job
from storage.rows import BATCH_SELECT, JOB_SELECT, states_sql
from storage.sqlite.connection import Database
from storage.sqlite.rows import batch_of, chunks, job_of, placeholders, to_text
from storage.states import BatchState, JobState


async def stamp_batches(db: aiosqlite.Connection, job_ids: Sequence[str], now: datetime) -> None:
    """Record on the batches of these jobs, which just finished, when a job of each last did
    (``jobs_finished_at``). A cycle finds the batches whose reply or progress message may be due
    among those, through partial indexes, instead of looking at the jobs of every open batch."""
    stamp = to_text(now)
    for chunk in chunks(list(job_ids)):
        await db.execute(
            f"""UPDATE batches SET jobs_finished_at = MAX(COALESCE(jobs_finished_at, ?), ?)
                WHERE id IN (SELECT batch_id FROM jobs WHERE id IN ({placeholders(len(chunk))}))""",
            (stamp, stamp, *chunk),
        )


class StoreBase:
    def __init__(self, database: Database) -> None:
        self._database = database

    # -- reading -----------------------------------------------------------------------------

    async def _jobs(self, where: str, parameters: Sequence[Any] = ()) -> list[Job]:
        async with (
            self._database.read() as db,
            db.execute(f"SELECT {JOB_SELECT} FROM jobs {where}", parameters) as cursor,
        ):
            rows = await cursor.fetchall()
        return [job_of(row) for row in rows]

    async def _batches(self, where: str, parameters: Sequence[Any] = ()) -> list[Batch]:
        """Batches matching ``where``, which may name the table ``b``."""
        async with (
            self._database.read() as db,
            db.execute(f"SELECT {BATCH_SELECT} FROM batches AS b {where}", parameters) as cursor,
        ):
            rows = await cursor.fetchall()
        return [batch_of(row) for row in rows]

    async def _rows(self, query: str, parameters: Sequence[Any] = ()) -> list[Any]:
        async with self._database.read() as db, db.execute(query, parameters) as cursor:
            return list(await cursor.fetchall())

    # -- writing -----------------------------------------------------------------------------

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
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"""UPDATE jobs SET {assignments}, updated_at = ?
                    WHERE id = ? AND state IN {states_sql(sources)}""",
                (*values, to_text(now), job_id),
            )
        return cursor.rowcount == 1

    async def _finish_job(
        self,
        job_id: str,
        assignments: str,
        values: Sequence[Any],
        now: datetime,
        sources: Collection[JobState],
    ) -> bool:
        """As :meth:`_update_job`, for a move to a finished state: the job's batch records in
        the same transaction that one of its jobs finished (:func:`stamp_batches`)."""
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"""UPDATE jobs SET {assignments}, updated_at = ?
                    WHERE id = ? AND state IN {states_sql(sources)}""",
                (*values, to_text(now), job_id),
            )
            if cursor.rowcount != 1:
                return False
            await stamp_batches(db, [job_id], now)
        return True

    async def _update_jobs(
        self,
        job_ids: Collection[str],
        assignments: str,
        values: Sequence[Any],
        now: datetime,
        sources: Collection[JobState] | None = None,
    ) -> int:
        """Run ``SET {assignments}`` (the same values) on every job of ``job_ids`` whose state
        is one of ``sources`` (any, without), in one transaction; how many there were, each
        counted once however often it is given."""
        if not job_ids:
            return 0
        # Each row updated counts in the rowcount: an id given twice would count twice.
        job_ids = dict.fromkeys(job_ids)
        guard = f" AND state IN {states_sql(sources)}" if sources is not None else ""
        stamp = to_text(now)
        async with self._database.transaction() as db:
            cursor = await db.executemany(
                f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?{guard}",
                [(*values, stamp, job_id) for job_id in job_ids],
            )
        return cursor.rowcount

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
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"UPDATE batches SET {assignments}, updated_at = ? WHERE id = ?{guard}",
                (*values, to_text(now), batch_id),
            )
        return cursor.rowcount == 1


async def jobs_in(
    db: aiosqlite.Connection, job_ids: Collection[str], sources: Collection[JobState]
) -> set[str]:
    """Those of ``job_ids`` whose state is one of ``sources``; inside a transaction, what a
    write made next in it may move."""
    found: set[str] = set()
    for chunk in chunks(list(job_ids)):
        rows = await db.execute_fetchall(
            f"""SELECT id FROM jobs WHERE id IN ({placeholders(len(chunk))})
                AND state IN {states_sql(sources)}""",
            chunk,
        )
        found.update(str(row[0]) for row in rows)
    return found
