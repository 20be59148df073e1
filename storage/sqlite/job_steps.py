"""A job's steps, as the SQLite store records them: each a guarded write (:mod:`storage.states`)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import aiosqlite

from storage.models import (
    Failure,
    FileInfo,
    ProviderAccountProblem,
    Resubmission,
    StillRunning,
    Submission,
    Upload,
)
from storage.rows import states_sql
from storage.sqlite.base import StoreBase, jobs_in, stamp_batches
from storage.sqlite.rows import UNFINISHED, chunks, placeholders, to_json, to_text
from storage.states import UNFINISHED_JOB_STATES, BatchState, JobMoves, JobState
from storage.store import EARLY_NOTICE_KEPT

_RUNNING_AT_PROVIDER = states_sql(JobMoves.KEEP_RUNNING.sources)
_OF_OPEN_BATCHES = f"batch_id IN (SELECT id FROM batches WHERE state = '{BatchState.OPEN.value}')"


class JobSteps(StoreBase):
    # -- from Slack to the provider ----------------------------------------------------------

    async def start_download(self, job_id: str, now: datetime) -> bool:
        move = JobMoves.START_DOWNLOAD
        return await self._update_job(job_id, "state = ?", (move.target.value,), now, move.sources)

    async def record_file_info(self, job_id: str, info: FileInfo, now: datetime) -> bool:
        return await self._update_job(
            job_id,
            """needs_file_info = 0, filename = ?, download_url = ?, mimetype = ?,
               size_bytes = ?, duration_ms = ?""",
            (info.filename, info.download_url, info.mimetype, info.size_bytes, info.duration_ms),
            now,
            JobMoves.START_DOWNLOAD.sources,
        )

    async def skip_job(self, job_id: str, now: datetime) -> bool:
        move = JobMoves.SKIP
        return await self._finish_job(
            job_id,
            "state = ?, finished_at = ?",
            (move.target.value, to_text(now)),
            now,
            move.sources,
        )

    async def record_download(
        self, job_id: str, *, spool_path: str, size_bytes: int, now: datetime
    ) -> bool:
        move = JobMoves.FINISH_DOWNLOAD
        return await self._update_job(
            job_id,
            "state = ?, spool_path = ?, size_bytes = ?, stalled_since = NULL",
            (move.target.value, spool_path, size_bytes),
            now,
            move.sources,
        )

    async def download_again(self, job_id: str, now: datetime) -> bool:
        move = JobMoves.DOWNLOAD_AGAIN
        return await self._update_job(
            job_id, "state = ?, spool_path = NULL", (move.target.value,), now, move.sources
        )

    async def record_spool_deleted(self, job_id: str, now: datetime) -> bool:
        async with self._database.transaction() as db:
            cursor = await db.execute(
                """UPDATE jobs SET spool_path = NULL, updated_at = ?
                   WHERE id = ? AND spool_path IS NOT NULL""",
                (to_text(now), job_id),
            )
        return cursor.rowcount == 1

    async def mark_upload_sent(self, job_ids: Sequence[str], now: datetime) -> int:
        sources = JobMoves.FINISH_UPLOAD.sources
        return await self._update_jobs(job_ids, "sent_at = ?", (to_text(now),), now, sources)

    async def record_uploads(
        self, uploads: Sequence[Upload], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        move, stamp = JobMoves.FINISH_UPLOAD, to_text(now)
        async with self._database.transaction() as db:
            moved = await jobs_in(db, [upload.job_id for upload in uploads], move.sources)
            await db.executemany(
                f"""UPDATE jobs SET state = '{move.target.value}', provider_file_id = ?,
                        provider_upload_id = ?, attempts = 0, next_attempt_at = NULL,
                        stalled_since = NULL, sent_at = NULL, updated_at = ?
                    WHERE id = ?""",
                [
                    (upload.file_id, upload.upload_id, stamp, upload.job_id)
                    for upload in uploads
                    if upload.job_id in moved
                ],
            )
            return moved | await _fail(db, refused, now, answered=True)

    async def mark_submission_sent(self, job_ids: Sequence[str], now: datetime) -> int:
        sources = JobMoves.SUBMIT.sources
        return await self._update_jobs(job_ids, "sent_at = ?", (to_text(now),), now, sources)

    async def take_upload_room(
        self,
        provider: str,
        job_ids: Sequence[str],
        *,
        max_files: int | None,
        max_bytes: int | None,
        now: datetime,
    ) -> bool:
        sources = JobMoves.FINISH_UPLOAD.sources
        # One transaction, which holds SQLite's write lock from its start: nothing is marked
        # between the count and the marks.
        async with self._database.transaction() as db:
            if max_files is not None or max_bytes is not None:
                ((held_files, held_bytes, sent_files, sent_bytes),) = await db.execute_fetchall(
                    """SELECT held.files, held.size, sent.files, sent.size
                       FROM (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size
                             FROM jobs WHERE provider = ? AND cleaned_up = 0
                               AND provider_file_id IS NOT NULL) AS held,
                            (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size
                             FROM jobs WHERE sent_at IS NOT NULL AND provider = ? AND state = ?
                               AND provider_file_id IS NULL) AS sent""",
                    (provider, provider, JobState.UPLOADING.value),
                )
                files = size = 0
                for chunk in chunks(list(job_ids)):
                    ((count, total),) = await db.execute_fetchall(
                        f"""SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM jobs
                            WHERE id IN ({placeholders(len(chunk))}) AND sent_at IS NULL
                              AND state IN {states_sql(sources)}""",
                        chunk,
                    )
                    files, size = files + int(count), size + int(total)
                held = int(held_files) + int(sent_files)
                held_size = int(held_bytes) + int(sent_bytes)
                if (
                    files
                    and held
                    and (
                        (max_files is not None and held + files > max_files)
                        or (max_bytes is not None and held_size + size > max_bytes)
                    )
                ):
                    return False
            await _mark_sent(db, job_ids, sources, now)
        return True

    async def take_submission_slots(
        self, provider: str, job_ids: Sequence[str], *, limit: int | None, now: datetime
    ) -> bool:
        sources = JobMoves.SUBMIT.sources
        async with self._database.transaction() as db:
            if limit is not None:
                ((in_flight,),) = await db.execute_fetchall(
                    f"""SELECT (SELECT COUNT(*) FROM jobs WHERE provider = ?
                                  AND state IN {_RUNNING_AT_PROVIDER} AND {_OF_OPEN_BATCHES})
                             + (SELECT COUNT(*) FROM jobs WHERE sent_at IS NOT NULL
                                  AND provider = ? AND state IN {states_sql(sources)}
                                  AND {_OF_OPEN_BATCHES})""",
                    (provider, provider),
                )
                count = 0
                for chunk in chunks(list(job_ids)):
                    ((found,),) = await db.execute_fetchall(
                        f"""SELECT COUNT(*) FROM jobs WHERE id IN ({placeholders(len(chunk))})
                            AND sent_at IS NULL AND state IN {states_sql(sources)}""",
                        chunk,
                    )
                    count += int(found)
                if count and in_flight and int(in_flight) + count > limit:
                    return False
            await _mark_sent(db, job_ids, sources, now)
        return True

    async def record_submissions(
        self, submissions: Sequence[Submission], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        move, stamp = JobMoves.SUBMIT, to_text(now)
        async with self._database.transaction() as db:
            moved = await jobs_in(db, [each.job_id for each in submissions], move.sources)
            # A notice that the transcription ended already came: poll it at once.
            await db.executemany(
                f"""UPDATE jobs SET state = '{move.target.value}', provider_job_id = ?,
                        provider_file_id = COALESCE(?, provider_file_id), provider_eta_at = ?,
                        next_attempt_at = CASE WHEN EXISTS (
                            SELECT 1 FROM early_notices AS n
                            WHERE n.provider = jobs.provider AND n.remote_id = ?
                              AND n.seen_at > ?) THEN NULL ELSE ? END,
                        attempts = 0, stalled_since = ?, sent_at = NULL, updated_at = ?
                    WHERE id = ?""",
                [
                    (
                        each.remote_id,
                        each.file_id,
                        to_text(each.eta_at),
                        each.remote_id,
                        to_text(now - EARLY_NOTICE_KEPT),
                        to_text(each.poll_at),
                        stamp,
                        stamp,
                        each.job_id,
                    )
                    for each in submissions
                    if each.job_id in moved
                ],
            )
            await db.executemany(
                """DELETE FROM early_notices WHERE remote_id = ?
                   AND provider = (SELECT provider FROM jobs WHERE id = ?)""",
                [(each.remote_id, each.job_id) for each in submissions if each.job_id in moved],
            )
            return moved | await _fail(db, refused, now, answered=True)

    # -- at the provider ---------------------------------------------------------------------

    async def record_still_running(self, polled: Sequence[StillRunning], now: datetime) -> int:
        # Only what changed is written: with thousands of jobs polled, each column written costs
        # (the state's indexes above all), so the rows are grouped by the columns they change.
        groups: dict[tuple[bool, bool], list[tuple[Any, ...]]] = {}
        stamp = to_text(now)
        for each in polled:
            moving = each.read_state is not JobState.PROCESSING
            eta = () if each.eta_at is None else (to_text(each.eta_at),)
            groups.setdefault((moving, bool(eta)), []).append(
                (to_text(each.poll_at), *eta, stamp, each.job_id, to_text(each.read_updated_at))
            )
        if not groups:
            return 0
        updated = 0
        async with self._database.transaction() as db:
            for (moving, with_eta), rows in groups.items():
                state = f"state = '{JobState.PROCESSING.value}', " if moving else ""
                eta_at = ", provider_eta_at = ?" if with_eta else ""
                cursor = await db.executemany(
                    f"""UPDATE jobs SET {state}next_attempt_at = ?{eta_at}, updated_at = ?
                        WHERE id = ? AND updated_at = ? AND state IN {_RUNNING_AT_PROVIDER}""",
                    rows,
                )
                updated += cursor.rowcount
        return updated

    async def record_remote_finished(self, provider: str, remote_id: str, now: datetime) -> int:
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"""UPDATE jobs SET next_attempt_at = NULL, updated_at = ?
                    WHERE provider = ? AND provider_job_id = ?
                      AND state IN {_RUNNING_AT_PROVIDER}""",
                (to_text(now), provider, remote_id),
            )
            if cursor.rowcount:
                return cursor.rowcount
            # Before the answer that started it: kept for that answer (see record_submissions).
            await db.execute(
                "DELETE FROM early_notices WHERE seen_at <= ?", (to_text(now - EARLY_NOTICE_KEPT),)
            )
            await db.execute(
                """INSERT INTO early_notices (provider, remote_id, seen_at) VALUES (?, ?, ?)
                   ON CONFLICT (provider, remote_id) DO UPDATE SET seen_at = excluded.seen_at""",
                (provider, remote_id, to_text(now)),
            )
        return 0

    async def complete_job(
        self, job_id: str, *, transcript: dict[str, Any], raw: Any, now: datetime
    ) -> bool:
        move = JobMoves.COMPLETE
        return await self._finish_job(
            job_id,
            """state = ?, transcript = ?, raw_result = ?, finished_at = ?, error = NULL,
               error_detail = NULL""",
            (move.target.value, json.dumps(transcript), to_json(raw), to_text(now)),
            now,
            move.sources,
        )

    async def fail_jobs(self, job_ids: Sequence[str], failure: Failure, now: datetime) -> set[str]:
        async with self._database.transaction() as db:
            return await _fail(db, dict.fromkeys(job_ids, failure), now, answered=False)

    async def record_work_lost(
        self, resubmissions: Sequence[Resubmission], refused: Mapping[str, Failure], now: datetime
    ) -> set[str]:
        stored, from_start = JobMoves.RESUBMIT_STORED, JobMoves.RESUBMIT_FROM_START
        stamp = to_text(now)
        async with self._database.transaction() as db:
            moved = await jobs_in(
                db, [each.job_id for each in resubmissions if each.file_id], stored.sources
            ) | await jobs_in(
                db, [each.job_id for each in resubmissions if not each.file_id], from_start.sources
            )
            await db.executemany(
                """UPDATE jobs SET state = ?, provider_file_id = ?, provider_job_id = NULL,
                       provider_eta_at = NULL, resubmissions = resubmissions + 1, attempts = 0,
                       next_attempt_at = NULL, stalled_since = NULL, error_detail = ?,
                       updated_at = ?
                   WHERE id = ?""",
                [
                    (
                        (stored if each.file_id else from_start).target.value,
                        each.file_id,
                        each.detail,
                        stamp,
                        each.job_id,
                    )
                    for each in resubmissions
                    if each.job_id in moved
                ],
            )
            return moved | await _fail(db, refused, now, answered=False)

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
            "attempts = ?, next_attempt_at = ?, error_detail = ?, stalled_since = ?",
            (attempts, to_text(retry_at), detail, to_text(stalled_since)),
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
            "next_attempt_at = ?, stalled_since = ?",
            (to_text(until), to_text(stalled_since)),
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
            "next_attempt_at = ?, stalled_since = ?, held_by = ?, error_detail = ?",
            (to_text(until), to_text(stalled_since), provider, detail),
            now,
            UNFINISHED_JOB_STATES,
        )

    async def release_jobs(self, job_ids: Sequence[str], now: datetime) -> int:
        return await self._update_jobs(
            job_ids, "held_by = NULL, next_attempt_at = NULL", (), now, UNFINISHED_JOB_STATES
        )

    async def record_account_problem(self, problem: ProviderAccountProblem, now: datetime) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                """INSERT INTO provider_account_problems
                       (provider, reason, detail, message, steps, since, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (provider) DO UPDATE SET reason = excluded.reason,
                       detail = excluded.detail, message = excluded.message,
                       steps = excluded.steps, since = excluded.since,
                       updated_at = excluded.updated_at""",
                (
                    problem.provider,
                    problem.reason,
                    problem.detail,
                    problem.message,
                    json.dumps(problem.steps),
                    to_text(problem.since),
                    to_text(now),
                ),
            )

    async def resolve_account_problem(self, provider: str, now: datetime) -> int:
        async with self._database.transaction() as db:
            await db.execute(
                "DELETE FROM provider_account_problems WHERE provider = ?", (provider,)
            )
            cursor = await db.execute(
                f"""UPDATE jobs SET held_by = NULL, next_attempt_at = NULL, stalled_since = NULL,
                        updated_at = ?
                    WHERE held_by = ? AND {UNFINISHED}""",
                (to_text(now), provider),
            )
        return cursor.rowcount

    # -- after the work ----------------------------------------------------------------------

    async def record_lost_answer(
        self, job_id: str, *, file_id: str | None, remote_id: str | None, now: datetime
    ) -> bool:
        async with self._database.transaction() as db:
            cursor = await db.execute(
                """UPDATE jobs SET provider_file_id = COALESCE(?, provider_file_id),
                       provider_job_id = COALESCE(?, provider_job_id), sent_at = NULL,
                       updated_at = ?
                   WHERE id = ? AND sent_at IS NOT NULL""",
                (file_id, remote_id, to_text(now), job_id),
            )
        return cursor.rowcount == 1

    async def mark_attachments_uploaded(self, job_ids: Collection[str], now: datetime) -> int:
        return await self._update_jobs(job_ids, "attachment_uploaded = 1", (), now)

    async def postpone_clean_up(
        self, job_ids: Sequence[str], until: datetime, now: datetime
    ) -> int:
        return await self._update_jobs(job_ids, "next_attempt_at = ?", (to_text(until),), now)

    async def mark_cleaned_up(self, job_ids: Sequence[str], now: datetime) -> int:
        return await self._update_jobs(job_ids, "cleaned_up = 1", (), now)


async def _fail(
    db: aiosqlite.Connection, failures: Mapping[str, Failure], now: datetime, *, answered: bool
) -> set[str]:
    """``JobMoves.FAIL`` for each job of ``failures``; with ``answered``, the call that was sent
    for it got its answer (the refusal), so it is no longer marked sent."""
    move, stamp = JobMoves.FAIL, to_text(now)
    moved = await jobs_in(db, failures, move.sources)
    sent = ", sent_at = NULL" if answered else ""
    await db.executemany(
        f"""UPDATE jobs SET state = '{move.target.value}', error = ?, error_detail = ?,
                finished_at = ?, raw_result = COALESCE(?, raw_result){sent}, updated_at = ?
            WHERE id = ?""",
        [
            (failure.message, failure.detail, stamp, to_json(failure.provider_answer), stamp, id_)
            for id_, failure in failures.items()
            if id_ in moved
        ],
    )
    await stamp_batches(db, list(moved), now)
    return moved


async def _mark_sent(
    db: aiosqlite.Connection, job_ids: Sequence[str], sources: Collection[JobState], now: datetime
) -> None:
    """Mark the calls of these jobs (those in ``sources``) sent, inside the caller's
    transaction."""
    stamp = to_text(now)
    await db.executemany(
        f"""UPDATE jobs SET sent_at = ?, updated_at = ?
            WHERE id = ? AND state IN {states_sql(sources)}""",
        [(stamp, stamp, job_id) for job_id in job_ids],
    )
