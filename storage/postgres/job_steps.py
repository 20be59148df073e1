"""A job's steps, as the PostgreSQL store records them: each a guarded write
(:mod:`storage.states`). A step given many jobs is one statement over ``unnest``ed arrays, which
returns the jobs it moved."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from storage.models import (
    Failure,
    FileInfo,
    ProviderAccountProblem,
    Resubmission,
    StillRunning,
    Submission,
    Upload,
)
from storage.postgres.base import STAMP_BATCHES, StoreBase, columns, moved
from storage.postgres.connection import Connection
from storage.postgres.rows import UNFINISHED, safe_text, to_jsonb
from storage.rows import states_sql
from storage.states import UNFINISHED_JOB_STATES, BatchState, JobMoves, JobState
from storage.store import EARLY_NOTICE_KEPT

_RUNNING_AT_PROVIDER = states_sql(JobMoves.KEEP_RUNNING.sources)
_OF_OPEN_BATCHES = f"batch_id IN (SELECT id FROM batches WHERE state = '{BatchState.OPEN.value}')"

# What a provider holds for us (see ``Reads.stored_at_provider``), and what the given jobs would
# add, in one statement.
_STORED_AND_NEW = f"""
    SELECT held.files + sent.files, held.size + sent.size, new.files, new.size
    FROM (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size FROM jobs
          WHERE provider = %(provider)s AND NOT cleaned_up
            AND provider_file_id IS NOT NULL) AS held,
         (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size FROM jobs
          WHERE sent_at IS NOT NULL AND provider = %(provider)s
            AND state = '{JobState.UPLOADING.value}' AND provider_file_id IS NULL) AS sent,
         (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size FROM jobs
          WHERE id = ANY(%(ids)s::text[]) AND sent_at IS NULL
            AND state IN {states_sql(JobMoves.FINISH_UPLOAD.sources)}) AS new"""

# A provider's jobs in flight: running there, or with a submission sent and not answered; and
# how many of the given jobs would be added.
_IN_FLIGHT_AND_NEW = f"""
    SELECT (SELECT COUNT(*) FROM jobs WHERE provider = %(provider)s
              AND state IN {_RUNNING_AT_PROVIDER} AND {_OF_OPEN_BATCHES})
         + (SELECT COUNT(*) FROM jobs WHERE sent_at IS NOT NULL AND provider = %(provider)s
              AND state IN {states_sql(JobMoves.SUBMIT.sources)} AND {_OF_OPEN_BATCHES}),
           (SELECT COUNT(*) FROM jobs WHERE id = ANY(%(ids)s::text[]) AND sent_at IS NULL
              AND state IN {states_sql(JobMoves.SUBMIT.sources)})"""


#: The lock under which notices and the submissions they may name are written: either the notice
#: finds the job, or the submission finds the notice.
_NOTICES_LOCK = "early notices"


#: Gives back the lease of the row being written if the owner given (twice) holds it; with no
#: owner (NULL), leaves it as it is.
_GIVE_BACK = """lease_owner = CASE WHEN jobs.lease_owner = %s THEN NULL ELSE jobs.lease_owner END,
    lease_expires_at = CASE WHEN jobs.lease_owner = %s THEN NULL
                            ELSE jobs.lease_expires_at END"""


class JobSteps(StoreBase):
    # -- from Slack to the provider ----------------------------------------------------------

    async def start_download(self, job_id: str, now: datetime) -> bool:
        move = JobMoves.START_DOWNLOAD
        return await self._update_job(job_id, "state = %s", (move.target.value,), now, move.sources)

    async def record_file_info(self, job_id: str, info: FileInfo, now: datetime) -> bool:
        return await self._update_job(
            job_id,
            """needs_file_info = false, filename = %s, download_url = %s, mimetype = %s,
               size_bytes = %s, duration_ms = %s""",
            (
                safe_text(info.filename),
                safe_text(info.download_url),
                safe_text(info.mimetype),
                info.size_bytes,
                info.duration_ms,
            ),
            now,
            JobMoves.START_DOWNLOAD.sources,
        )

    async def skip_job(self, job_id: str, now: datetime) -> bool:
        move = JobMoves.SKIP
        return await self._finish_job(
            job_id, "state = %s, finished_at = %s", (move.target.value, now), now, move.sources
        )

    async def record_download(
        self, job_id: str, *, spool_path: str, size_bytes: int, now: datetime
    ) -> bool:
        move = JobMoves.FINISH_DOWNLOAD
        return await self._update_job(
            job_id,
            "state = %s, spool_path = %s, size_bytes = %s, stalled_since = NULL",
            (move.target.value, safe_text(spool_path), size_bytes),
            now,
            move.sources,
        )

    async def download_again(self, job_id: str, now: datetime) -> bool:
        move = JobMoves.DOWNLOAD_AGAIN
        return await self._update_job(
            job_id, "state = %s, spool_path = NULL", (move.target.value,), now, move.sources
        )

    async def record_spool_deleted(self, job_id: str, now: datetime) -> bool:
        changed = await self._execute(
            """UPDATE jobs SET spool_path = NULL, updated_at = %s
               WHERE id = %s AND spool_path IS NOT NULL""",
            (now, job_id),
        )
        return changed == 1

    async def mark_upload_sent(self, job_ids: Sequence[str], now: datetime) -> int:
        sources = JobMoves.FINISH_UPLOAD.sources
        return await self._update_jobs(job_ids, "sent_at = %s", (now,), now, sources)

    async def record_uploads(
        self, uploads: Sequence[Upload], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        move = JobMoves.FINISH_UPLOAD
        rows = [
            (each.job_id, safe_text(each.file_id), safe_text(each.upload_id)) for each in uploads
        ]
        async with self._database.transaction() as db:
            done = set()
            if rows:
                done = await moved(
                    db,
                    f"""UPDATE jobs SET state = '{move.target.value}',
                            provider_file_id = v.file_id, provider_upload_id = v.upload_id,
                            attempts = 0, next_attempt_at = NULL, stalled_since = NULL,
                            sent_at = NULL, updated_at = %s
                        FROM unnest(%b::text[], %b::text[], %b::text[])
                            AS v(id, file_id, upload_id)
                        WHERE jobs.id = v.id AND jobs.state IN {states_sql(move.sources)}
                        RETURNING jobs.id""",
                    (now, *columns(rows, 3)),
                )
            return done | await _fail(db, refused, now, answered=True)

    async def mark_submission_sent(self, job_ids: Sequence[str], now: datetime) -> int:
        sources = JobMoves.SUBMIT.sources
        return await self._update_jobs(job_ids, "sent_at = %s", (now,), now, sources)

    async def take_upload_room(
        self,
        provider: str,
        job_ids: Sequence[str],
        *,
        max_files: int | None,
        max_bytes: int | None,
        now: datetime,
    ) -> bool:
        if not job_ids:
            return True
        capped = max_files is not None or max_bytes is not None
        async with self._database.locked_transaction(
            f"room at {provider}" if capped else None
        ) as db:
            if capped:
                cursor = await db.execute(
                    _STORED_AND_NEW, {"provider": provider, "ids": list(job_ids)}
                )
                row = await cursor.fetchone()
                assert row is not None
                held_files, held_bytes, files, size = (int(value) for value in row)
                if (
                    files
                    and held_files
                    and (
                        (max_files is not None and held_files + files > max_files)
                        or (max_bytes is not None and held_bytes + size > max_bytes)
                    )
                ):
                    return False
            await db.execute(
                f"""UPDATE jobs SET sent_at = %s, updated_at = %s WHERE id = ANY(%b::text[])
                    AND state IN {states_sql(JobMoves.FINISH_UPLOAD.sources)}""",
                (now, now, list(job_ids)),
            )
        return True

    async def take_submission_slots(
        self, provider: str, job_ids: Sequence[str], *, limit: int | None, now: datetime
    ) -> bool:
        if not job_ids:
            return True
        async with self._database.locked_transaction(
            f"submissions to {provider}" if limit is not None else None
        ) as db:
            if limit is not None:
                cursor = await db.execute(
                    _IN_FLIGHT_AND_NEW, {"provider": provider, "ids": list(job_ids)}
                )
                row = await cursor.fetchone()
                assert row is not None
                in_flight, count = int(row[0]), int(row[1])
                if count and in_flight and in_flight + count > limit:
                    return False
            await db.execute(
                f"""UPDATE jobs SET sent_at = %s, updated_at = %s WHERE id = ANY(%b::text[])
                    AND state IN {states_sql(JobMoves.SUBMIT.sources)}""",
                (now, now, list(job_ids)),
            )
        return True

    async def record_submissions(
        self, submissions: Sequence[Submission], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        move = JobMoves.SUBMIT
        rows = [
            (
                each.job_id,
                safe_text(each.remote_id),
                safe_text(each.file_id),
                each.eta_at,
                each.poll_at,
            )
            for each in submissions
        ]
        async with self._database.locked_transaction(_NOTICES_LOCK if rows else None) as db:
            done = set()
            if rows:
                # A notice that the transcription ended already came: poll it at once.
                done = await moved(
                    db,
                    f"""UPDATE jobs SET state = '{move.target.value}',
                            provider_job_id = v.remote_id,
                            provider_file_id = COALESCE(v.file_id, jobs.provider_file_id),
                            provider_eta_at = v.eta_at,
                            next_attempt_at = CASE WHEN EXISTS (
                                SELECT 1 FROM early_notices AS n
                                WHERE n.provider = jobs.provider AND n.remote_id = v.remote_id
                                  AND n.seen_at > %s) THEN NULL ELSE v.poll_at END,
                            attempts = 0, stalled_since = %s, sent_at = NULL, updated_at = %s
                        FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[],
                                    %b::timestamptz[]) AS v(id, remote_id, file_id, eta_at, poll_at)
                        WHERE jobs.id = v.id AND jobs.state IN {states_sql(move.sources)}
                        RETURNING jobs.id""",
                    (now - EARLY_NOTICE_KEPT, now, now, *columns(rows, 5)),
                )
                if done:
                    await db.execute(
                        """DELETE FROM early_notices AS n USING jobs
                           WHERE jobs.id = ANY(%b::text[]) AND n.provider = jobs.provider
                             AND n.remote_id = jobs.provider_job_id""",
                        (list(done),),
                    )
            return done | await _fail(db, refused, now, answered=True)

    # -- at the provider ---------------------------------------------------------------------

    async def record_still_running(
        self, polled: Sequence[StillRunning], now: datetime, *, owner: str | None = None
    ) -> int:
        if not polled:
            return 0
        # One statement for every answer. Writing a state or an estimate unchanged costs nothing
        # more: an index is only touched when its columns' values change. The lease goes back
        # in the same row version (one write per job, not two).
        rows = [(each.job_id, each.read_updated_at, each.poll_at, each.eta_at) for each in polled]
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"""UPDATE jobs SET state = '{JobMoves.KEEP_RUNNING.target.value}',
                        next_attempt_at = v.poll_at,
                        provider_eta_at = COALESCE(v.eta_at, jobs.provider_eta_at),
                        updated_at = %s, {_GIVE_BACK}
                    FROM unnest(%b::text[], %b::timestamptz[], %b::timestamptz[],
                                %b::timestamptz[])
                        AS v(id, read_updated_at, poll_at, eta_at)
                    WHERE jobs.id = v.id AND jobs.updated_at = v.read_updated_at
                      AND jobs.state IN {_RUNNING_AT_PROVIDER}
                    RETURNING jobs.id""",
                (now, owner, owner, *columns(rows, 4)),
            )
            recorded = {str(row[0]) for row in await cursor.fetchall()}
            left = [each.job_id for each in polled if each.job_id not in recorded]
            if owner is not None and left:
                await db.execute(
                    """UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL
                       WHERE id = ANY(%b::text[]) AND lease_owner = %s""",
                    (left, owner),
                )
        return len(recorded)

    async def record_remote_finished(self, provider: str, remote_id: str, now: datetime) -> int:
        remote_id = safe_text(remote_id) or ""
        async with self._database.locked_transaction(_NOTICES_LOCK) as db:
            cursor = await db.execute(
                f"""UPDATE jobs SET next_attempt_at = NULL, updated_at = %s
                    WHERE provider = %s AND provider_job_id = %s
                      AND state IN {_RUNNING_AT_PROVIDER}""",
                (now, provider, remote_id),
            )
            if cursor.rowcount:
                return cursor.rowcount
            # Before the answer that started it: kept for that answer (see record_submissions).
            await db.execute(
                "DELETE FROM early_notices WHERE seen_at <= %s", (now - EARLY_NOTICE_KEPT,)
            )
            await db.execute(
                """INSERT INTO early_notices (provider, remote_id, seen_at) VALUES (%s, %s, %s)
                   ON CONFLICT (provider, remote_id) DO UPDATE SET seen_at = excluded.seen_at""",
                (provider, remote_id, now),
            )
        return 0

    async def complete_job(
        self, job_id: str, *, transcript: dict[str, Any], raw: Any, now: datetime
    ) -> bool:
        move = JobMoves.COMPLETE
        return await self._finish_job(
            job_id,
            """state = %s, transcript = %s, raw_result = %s, finished_at = %s, error = NULL,
               error_detail = NULL""",
            (move.target.value, to_jsonb(transcript), to_jsonb(raw), now),
            now,
            move.sources,
        )

    async def fail_jobs(self, job_ids: Sequence[str], failure: Failure, now: datetime) -> set[str]:
        async with self._database.autocommit() as db:
            return await _fail(db, dict.fromkeys(job_ids, failure), now, answered=False)

    async def record_work_lost(
        self, resubmissions: Sequence[Resubmission], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        stored, from_start = JobMoves.RESUBMIT_STORED, JobMoves.RESUBMIT_FROM_START
        rows = [
            (
                each.job_id,
                (stored if each.file_id else from_start).target.value,
                safe_text(each.file_id),
                safe_text(each.detail),
            )
            for each in resubmissions
        ]
        async with self._database.transaction() as db:
            done = set()
            if rows:
                done = await moved(
                    db,
                    f"""UPDATE jobs SET state = v.state, provider_file_id = v.file_id,
                            provider_job_id = NULL, provider_eta_at = NULL,
                            resubmissions = resubmissions + 1, attempts = 0,
                            next_attempt_at = NULL, stalled_since = NULL,
                            error_detail = v.detail, updated_at = %s
                        FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[])
                            AS v(id, state, file_id, detail)
                        WHERE jobs.id = v.id
                          AND ((v.state = '{stored.target.value}'
                                AND jobs.state IN {states_sql(stored.sources)})
                               OR (v.state = '{from_start.target.value}'
                                   AND jobs.state IN {states_sql(from_start.sources)}))
                        RETURNING jobs.id""",
                    (now, *columns(rows, 4)),
                )
            return done | await _fail(db, refused, now, answered=False)

    # -- waiting and retrying ----------------------------------------------------------------

    async def schedule_retry(
        self,
        job_ids: Sequence[str],
        *,
        attempts: int,
        retry_at: datetime,
        detail: str,
        stalled_since: datetime,
        now: datetime,
    ) -> int:
        return await self._update_jobs(
            job_ids,
            "attempts = %s, next_attempt_at = %s, error_detail = %s, stalled_since = %s",
            (attempts, retry_at, safe_text(detail), stalled_since),
            now,
            UNFINISHED_JOB_STATES,
        )

    async def postpone_jobs(
        self,
        job_ids: Sequence[str],
        *,
        until: datetime,
        stalled_since: datetime | None,
        now: datetime,
    ) -> int:
        return await self._update_jobs(
            job_ids,
            "next_attempt_at = %s, stalled_since = %s",
            (until, stalled_since),
            now,
            UNFINISHED_JOB_STATES,
        )

    async def hold_for_account(
        self,
        job_ids: Sequence[str],
        *,
        provider: str,
        until: datetime,
        stalled_since: datetime,
        detail: str,
        now: datetime,
    ) -> int:
        return await self._update_jobs(
            job_ids,
            "next_attempt_at = %s, stalled_since = %s, held_by = %s, error_detail = %s",
            (until, stalled_since, provider, safe_text(detail)),
            now,
            UNFINISHED_JOB_STATES,
        )

    async def release_jobs(self, job_ids: Sequence[str], now: datetime) -> int:
        return await self._update_jobs(
            job_ids, "held_by = NULL, next_attempt_at = NULL", (), now, UNFINISHED_JOB_STATES
        )

    async def record_account_problem(self, problem: ProviderAccountProblem, now: datetime) -> None:
        await self._execute(
            """INSERT INTO provider_account_problems
                   (provider, reason, detail, message, steps, since, updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (provider) DO UPDATE SET reason = excluded.reason,
                   detail = excluded.detail, message = excluded.message,
                   steps = excluded.steps, since = excluded.since,
                   updated_at = excluded.updated_at""",
            (
                problem.provider,
                safe_text(problem.reason),
                safe_text(problem.detail),
                safe_text(problem.message),
                to_jsonb(problem.steps),
                problem.since,
                now,
            ),
        )

    async def resolve_account_problem(self, provider: str, now: datetime) -> int:
        async with self._database.transaction() as db:
            await db.execute(
                "DELETE FROM provider_account_problems WHERE provider = %s", (provider,)
            )
            cursor = await db.execute(
                f"""UPDATE jobs SET held_by = NULL, next_attempt_at = NULL, stalled_since = NULL,
                        updated_at = %s
                    WHERE held_by = %s AND {UNFINISHED}""",
                (now, provider),
            )
        return cursor.rowcount

    # -- after the work ----------------------------------------------------------------------

    async def record_lost_answer(
        self, job_id: str, *, file_id: str | None, remote_id: str | None, now: datetime
    ) -> bool:
        changed = await self._execute(
            """UPDATE jobs SET provider_file_id = COALESCE(%s, provider_file_id),
                   provider_job_id = COALESCE(%s, provider_job_id), sent_at = NULL,
                   updated_at = %s
               WHERE id = %s AND sent_at IS NOT NULL""",
            (safe_text(file_id), safe_text(remote_id), now, job_id),
        )
        return changed == 1

    async def mark_attachments_uploaded(self, job_ids: Collection[str], now: datetime) -> int:
        return await self._update_jobs(job_ids, "attachment_uploaded = true", (), now)

    async def postpone_clean_up(
        self, job_ids: Sequence[str], until: datetime, now: datetime
    ) -> int:
        return await self._update_jobs(job_ids, "next_attempt_at = %s", (until,), now)

    async def mark_cleaned_up(self, job_ids: Sequence[str], now: datetime) -> int:
        return await self._update_jobs(job_ids, "cleaned_up = true", (), now)


async def _fail(
    db: Connection, failures: Mapping[str, Failure], now: datetime, *, answered: bool
) -> set[str]:
    """``JobMoves.FAIL`` for each job of ``failures``, in one statement; with ``answered``, the
    call that was sent for it got its answer (the refusal), so it is no longer marked sent."""
    if not failures:
        return set()
    move = JobMoves.FAIL
    sent = ", sent_at = NULL" if answered else ""
    rows = [
        (
            id_,
            safe_text(failure.message),
            safe_text(failure.detail),
            to_jsonb(failure.provider_answer),
        )
        for id_, failure in failures.items()
    ]
    return await moved(
        db,
        f"""WITH moved AS (
                UPDATE jobs SET state = '{move.target.value}', error = v.error,
                    error_detail = v.detail, finished_at = %s,
                    raw_result = COALESCE(v.raw, jobs.raw_result){sent}, updated_at = %s
                FROM unnest(%b::text[], %b::text[], %b::text[], %b::jsonb[])
                    AS v(id, error, detail, raw)
                WHERE jobs.id = v.id AND jobs.state IN {states_sql(move.sources)}
                RETURNING jobs.id, jobs.batch_id
            ), stamped AS ({STAMP_BATCHES})
            SELECT id FROM moved""",
        (now, now, *columns(rows, 4), now, now),
    )
