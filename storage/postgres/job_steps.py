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
from storage.postgres.base import StoreBase, columns, moved
from storage.postgres.connection import Connection
from storage.postgres.rows import UNFINISHED, safe_text, states_sql, to_jsonb
from storage.states import UNFINISHED_JOB_STATES, JobMoves

_RUNNING_AT_PROVIDER = states_sql(JobMoves.KEEP_RUNNING.sources)


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
        return await self._update_job(
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
        async with self._database.transaction() as db:
            done = set()
            if rows:
                done = await moved(
                    db,
                    f"""UPDATE jobs SET state = '{move.target.value}',
                            provider_job_id = v.remote_id,
                            provider_file_id = COALESCE(v.file_id, jobs.provider_file_id),
                            provider_eta_at = v.eta_at, next_attempt_at = v.poll_at,
                            attempts = 0, stalled_since = %s, sent_at = NULL, updated_at = %s
                        FROM unnest(%b::text[], %b::text[], %b::text[], %b::timestamptz[],
                                    %b::timestamptz[]) AS v(id, remote_id, file_id, eta_at, poll_at)
                        WHERE jobs.id = v.id AND jobs.state IN {states_sql(move.sources)}
                        RETURNING jobs.id""",
                    (now, now, *columns(rows, 5)),
                )
            return done | await _fail(db, refused, now, answered=True)

    # -- at the provider ---------------------------------------------------------------------

    async def record_still_running(self, polled: Sequence[StillRunning], now: datetime) -> int:
        if not polled:
            return 0
        # One statement for every answer. Writing a state or an estimate unchanged costs nothing
        # more: an index is only touched when its columns' values change.
        rows = [(each.job_id, each.read_updated_at, each.poll_at, each.eta_at) for each in polled]
        return await self._execute(
            f"""UPDATE jobs SET state = '{JobMoves.KEEP_RUNNING.target.value}',
                    next_attempt_at = v.poll_at,
                    provider_eta_at = COALESCE(v.eta_at, jobs.provider_eta_at), updated_at = %s
                FROM unnest(%b::text[], %b::timestamptz[], %b::timestamptz[], %b::timestamptz[])
                    AS v(id, read_updated_at, poll_at, eta_at)
                WHERE jobs.id = v.id AND jobs.updated_at = v.read_updated_at
                  AND jobs.state IN {_RUNNING_AT_PROVIDER}""",
            (now, *columns(rows, 4)),
        )

    async def record_remote_finished(self, provider: str, remote_id: str, now: datetime) -> int:
        return await self._execute(
            f"""UPDATE jobs SET next_attempt_at = NULL, updated_at = %s
                WHERE provider = %s AND provider_job_id = %s
                  AND state IN {_RUNNING_AT_PROVIDER}""",
            (now, provider, safe_text(remote_id)),
        )

    async def complete_job(
        self, job_id: str, *, transcript: dict[str, Any], raw: Any, now: datetime
    ) -> bool:
        move = JobMoves.COMPLETE
        return await self._update_job(
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
        f"""UPDATE jobs SET state = '{move.target.value}', error = v.error,
                error_detail = v.detail, finished_at = %s,
                raw_result = COALESCE(v.raw, jobs.raw_result){sent}, updated_at = %s
            FROM unnest(%b::text[], %b::text[], %b::text[], %b::jsonb[])
                AS v(id, error, detail, raw)
            WHERE jobs.id = v.id AND jobs.state IN {states_sql(move.sources)}
            RETURNING jobs.id""",
        (now, now, *columns(rows, 4)),
    )
