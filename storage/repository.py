"""The only door to the database. Every method commits before it returns, so whatever the caller
does next (a download, an upload, a post) happens after its state is durable.

Methods take ``now`` from the caller: the clock belongs to the pipeline, which makes time-dependent
behaviour (backoff, age limits, retention) testable without patching.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from storage.migrations import MIGRATIONS
from storage.models import (
    PENDING_STATUS,
    Batch,
    BatchState,
    ChannelSettings,
    Job,
    JobKind,
    JobState,
    LanguageHints,
    NewBatch,
    NewJob,
    ProviderAccountProblem,
)

#: Jobs with a step left. Written out, not bound, and exactly as the condition of the index
#: ``jobs_unfinished`` (migration 7): SQLite only uses a partial index for a query whose
#: condition it can see implies the index's.
_UNFINISHED = "state NOT IN ('completed', 'failed', 'skipped')"
#: Draws of a fresh batch id before giving up (a second collision in a row is all but impossible).
ID_ATTEMPTS = 5
#: Ids bound in one ``IN (…)``: far below SQLite's limit on variables, whatever the build.
IDS_PER_QUERY = 500

_JOB_COLUMNS = frozenset(
    {
        "state",
        "attempts",
        "next_attempt_at",
        "error",
        "error_detail",
        "spool_path",
        "provider_file_id",
        "provider_upload_id",
        "provider_job_id",
        "provider_eta_at",
        "transcript",
        "raw_result",
        "attachment_uploaded",
        "cleaned_up",
        "finished_at",
        "filename",
        "download_url",
        "mimetype",
        "size_bytes",
        "needs_file_info",
        "stalled_since",
        "sent_at",
        "resubmissions",
        "duration_ms",
        "held_by",
    }
)
_BATCH_COLUMNS = frozenset(
    {
        "state",
        "reply_ts",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "provider",
        "status_ts",
        "status_text",
        "status_updated_at",
        "failing_since",
    }
)


def _to_text(value: datetime | None) -> str | None:
    """The stored form, ``2026-11-21T09:00:00.000000Z``: fixed width, so text order is time
    order."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    # isoformat is several times cheaper than strftime, which showed in cycles of many jobs.
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _to_time(value: str | None) -> datetime | None:
    # fromisoformat reads the stored "...Z" form and is far cheaper than strptime, which
    # mattered: a cycle over thousands of jobs parses several times per row.
    return None if value is None else datetime.fromisoformat(value)


def _required_time(value: str) -> datetime:
    parsed = _to_time(value)
    assert parsed is not None
    return parsed


def _encode(column: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return _to_text(value)
    if isinstance(value, (JobState, BatchState)):
        return value.value
    if column in ("transcript", "raw_result") and value is not None:
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def new_batch_id() -> str:
    """Short enough to type in ``/transcribe retry b-1a2b3c4d5e6f``, long enough (48 random
    bits) that two batches practically never draw the same id; :meth:`Repository.create_batch`
    draws again if they do."""
    return f"b-{secrets.token_hex(6)}"


@dataclasses.dataclass
class _BatchRequest:
    batch: NewBatch
    jobs: list[NewJob]
    now: datetime
    unless_running: bool
    outcome: asyncio.Future[Batch | None]


def _settle(outcome: asyncio.Future[Batch | None], result: Batch | Exception | None) -> None:
    """Hand ``result`` to a waiting caller (one who stopped waiting no longer wants it)."""
    if outcome.done():
        return
    if isinstance(result, Exception):
        outcome.set_exception(result)
    else:
        outcome.set_result(result)


def _new_batch(batch_id: str, request: _BatchRequest) -> Batch:
    """The batch as just inserted (what reading it back would give)."""
    batch, stamp = request.batch, request.now.astimezone(UTC)
    return Batch(
        id=batch_id,
        team_id=batch.team_id,
        channel_id=batch.channel_id,
        message_ts=batch.message_ts,
        thread_ts=batch.thread_ts,
        user_id=batch.user_id,
        provider=batch.provider,
        source=batch.source,
        state=BatchState.OPEN,
        language_hints=list(batch.language_hints),
        language_hints_strict=batch.language_hints_strict,
        reply_ts=None,
        attempts=0,
        next_attempt_at=None,
        created_at=stamp,
        updated_at=stamp,
        delivered_at=None,
    )


class Repository:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._db = connection
        # One connection serves every coroutine: a statement run while another coroutine's
        # transaction is open would join (and could be rolled back with) that transaction.
        self._lock = asyncio.Lock()
        #: Channel settings read or saved so far; this object is their only writer.
        self._channel_settings: dict[str, ChannelSettings] = {}
        #: ``create_batch`` requests waiting for the writer, which takes them as one group.
        self._new_batches: list[_BatchRequest] = []
        self._batch_writer: asyncio.Task[None] | None = None
        self._closed = False
        #: The group the writer is writing now.
        self._writing: list[_BatchRequest] = []

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException:
                # Also when COMMIT itself failed: a transaction left open would refuse every
                # later BEGIN.
                if self._db.in_transaction:
                    await self._db.execute("ROLLBACK")
                raise

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            yield self._db

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: Path | str) -> Repository:
        """Open (creating if needed, owner-only) and migrate the database at ``path``."""
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
            # Transcripts are private conversations: the file is readable by its owner only.
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            os.chmod(path, 0o600)
        connection = await aiosqlite.connect(path, isolation_level=None)
        connection.row_factory = aiosqlite.Row
        await connection.execute("PRAGMA journal_mode = WAL")
        await connection.execute("PRAGMA synchronous = NORMAL")
        await connection.execute("PRAGMA foreign_keys = ON")
        await connection.execute("PRAGMA busy_timeout = 5000")
        # 32 MB of page cache instead of 2: a poll cycle reads and writes every job in flight.
        await connection.execute("PRAGMA cache_size = -32768")
        repository = cls(connection)
        await repository._migrate()
        return repository

    async def close(self) -> None:
        self._closed = True
        if self._batch_writer is not None:
            # Shielded: what is being written is finished even if closing is cancelled.
            await asyncio.shield(self._batch_writer)
        await self._db.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self._db.executescript(
                f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;"
            )

    async def ping(self) -> bool:
        async with self._read() as db, db.execute("SELECT 1") as cursor:
            return await cursor.fetchone() is not None

    # -- intake ------------------------------------------------------------------------------

    async def remember_event(self, event_id: str, now: datetime) -> bool:
        """Record an Events API ``event_id``; False when it was seen before."""
        async with self._transaction() as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO processed_events (event_id, seen_at) VALUES (?, ?)",
                (event_id, _to_text(now)),
            )
        return cursor.rowcount == 1

    async def create_batch(
        self,
        batch: NewBatch,
        jobs: Sequence[NewJob],
        now: datetime,
        *,
        unless_running: bool = False,
    ) -> Batch | None:
        """Create a batch with the jobs not taken before (by ``dedupe_key``); committed when this
        returns.

        Returns None when every job was already taken (the message was handled before) or, with
        ``unless_running``, when a batch for the same message is still at work: checked in the
        same transaction, so two requests at once cannot both start one.

        Requests made at the same time share one transaction, written in the order they came:
        a burst of shared files (each waiting for its commit before Slack gets its ack) then
        costs a few round trips to the database instead of several per file.
        """
        if self._closed:
            raise RuntimeError("the database is closed")
        request = _BatchRequest(
            batch, list(jobs), now, unless_running, asyncio.get_running_loop().create_future()
        )
        self._new_batches.append(request)
        if self._batch_writer is None:
            self._batch_writer = asyncio.create_task(self._write_new_batches())
            self._batch_writer.add_done_callback(self._batch_writer_stopped)
        return await request.outcome

    async def _write_new_batches(self) -> None:
        while self._new_batches:
            self._writing, self._new_batches = self._new_batches, []
            try:
                created = await self._insert_batches(self._writing)
            except Exception as exc:
                if len(self._writing) == 1:
                    _settle(self._writing[0].outcome, exc)
                else:
                    # One request's fault must not fail the others: each is written alone.
                    for request in self._writing:
                        await self._write_alone(request)
            else:
                for request, batch in zip(self._writing, created, strict=True):
                    _settle(request.outcome, batch)
            self._writing = []
        # No await since the loop found nothing more: a request made from now on starts a
        # writer of its own.
        self._batch_writer = None

    def _batch_writer_stopped(self, writer: asyncio.Task[None]) -> None:
        """Runs however the writer ended. Stopped part-way (cancelled, even before it began),
        it must not leave anyone waiting for ever."""
        if self._batch_writer is writer:
            self._batch_writer = None
            for request in [*self._writing, *self._new_batches]:
                _settle(request.outcome, RuntimeError("the batch was not written"))
            self._writing, self._new_batches = [], []

    async def _write_alone(self, request: _BatchRequest) -> None:
        try:
            (batch,) = await self._insert_batches([request])
        except Exception as exc:
            _settle(request.outcome, exc)
        else:
            _settle(request.outcome, batch)

    async def _insert_batches(self, group: Sequence[_BatchRequest]) -> list[Batch | None]:
        for _ in range(ID_ATTEMPTS):
            ids = [new_batch_id() for _ in group]
            if len(set(ids)) < len(ids):
                continue
            try:
                async with self._transaction() as db:
                    return await self._insert_batches_in(db, group, ids)
            except sqlite3.IntegrityError as exc:
                if "batches.id" not in str(exc):
                    raise
        raise RuntimeError("could not draw unused batch ids")

    async def _insert_batches_in(
        self, db: aiosqlite.Connection, group: Sequence[_BatchRequest], ids: Sequence[str]
    ) -> list[Batch | None]:
        """Insert every request's batch and jobs; drop the batches that got no job."""
        batch_rows: list[tuple[Any, ...]] = []
        job_rows: list[tuple[Any, ...]] = []
        wanted: list[str | None] = []
        for batch_id, request in zip(ids, group, strict=True):
            batch, stamp = request.batch, _to_text(request.now)
            if request.unless_running:
                # Earlier requests of this group are written first, so that the check sees them.
                await self._insert_rows(db, batch_rows, job_rows)
                batch_rows, job_rows = [], []
                if await self._running(db, batch):
                    wanted.append(None)
                    continue
            wanted.append(batch_id)
            batch_rows.append(
                (
                    batch_id,
                    batch.team_id,
                    batch.channel_id,
                    batch.message_ts,
                    batch.thread_ts,
                    batch.user_id,
                    batch.provider,
                    batch.source,
                    BatchState.OPEN.value,
                    json.dumps(batch.language_hints),
                    int(batch.language_hints_strict),
                    stamp,
                    stamp,
                )
            )
            for position, job in enumerate(request.jobs):
                state = JobState.FAILED if job.refused_reason else JobState.QUEUED
                job_rows.append(
                    (
                        uuid.uuid4().hex,
                        batch_id,
                        position,
                        job.kind.value,
                        batch.provider,
                        job.filename,
                        job.slack_file_id,
                        job.url,
                        job.download_url,
                        job.mimetype,
                        job.size_bytes,
                        job.duration_ms,
                        int(job.needs_file_info),
                        job.dedupe_key,
                        state.value,
                        job.refused_reason,
                        stamp,
                        stamp,
                        stamp if job.refused_reason else None,
                    )
                )
        await self._insert_rows(db, batch_rows, job_rows)
        inserted = [batch_id for batch_id in wanted if batch_id is not None]
        taken: set[str] = set()
        for start in range(0, len(inserted), IDS_PER_QUERY):
            chunk = inserted[start : start + IDS_PER_QUERY]
            placeholders = ",".join("?" for _ in chunk)
            rows = await db.execute_fetchall(
                f"SELECT DISTINCT batch_id FROM jobs WHERE batch_id IN ({placeholders})", chunk
            )
            taken.update(str(row[0]) for row in rows)
        # Everything in these was taken before: leave no empty batch behind.
        empty = [(batch_id,) for batch_id in inserted if batch_id not in taken]
        if empty:
            await db.executemany("DELETE FROM batches WHERE id = ?", empty)
        return [
            _new_batch(batch_id, request) if batch_id is not None and batch_id in taken else None
            for batch_id, request in zip(wanted, group, strict=True)
        ]

    @staticmethod
    async def _insert_rows(
        db: aiosqlite.Connection,
        batch_rows: Sequence[tuple[Any, ...]],
        job_rows: Sequence[tuple[Any, ...]],
    ) -> None:
        if batch_rows:
            await db.executemany(
                """INSERT INTO batches (id, team_id, channel_id, message_ts, thread_ts, user_id,
                       provider, source, state, language_hints, language_hints_strict,
                       created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                batch_rows,
            )
        if job_rows:
            await db.executemany(
                """INSERT OR IGNORE INTO jobs (id, batch_id, position, kind, provider,
                       filename, slack_file_id, url, download_url, mimetype, size_bytes,
                       duration_ms, needs_file_info, dedupe_key, state, error, created_at,
                       updated_at, finished_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                job_rows,
            )

    @staticmethod
    async def _running(db: aiosqlite.Connection, batch: NewBatch) -> bool:
        """Whether a batch for the same message is open or delivering; a batch of this group
        counts once it has a job."""
        rows = await db.execute_fetchall(
            """SELECT 1 FROM batches WHERE channel_id = ? AND message_ts = ?
               AND state IN (?, ?)
               AND EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id) LIMIT 1""",
            (
                batch.channel_id,
                batch.message_ts,
                BatchState.OPEN.value,
                BatchState.DELIVERING.value,
            ),
        )
        return bool(rows)

    async def get_batch(self, batch_id: str) -> Batch | None:
        batches = await self._batches("WHERE id = ?", (batch_id,))
        return batches[0] if batches else None

    async def jobs_of(self, batch_id: str) -> list[Job]:
        return await self._jobs("WHERE batch_id = ? ORDER BY position", (batch_id,))

    async def get_job(self, job_id: str) -> Job | None:
        jobs = await self._jobs("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    async def jobs_by_id(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs with these ids as they are now, in batch order."""
        if not job_ids:
            return []
        placeholders = ",".join("?" for _ in job_ids)
        return await self._jobs(
            f"WHERE id IN ({placeholders}) ORDER BY batch_id, position", tuple(job_ids)
        )

    async def open_jobs(self, *, due_by: datetime | None = None) -> list[Job]:
        """Every job that still has a step to take, oldest batch first.

        With ``due_by``, only the jobs of batches where some job is due by then: a cycle reads
        what it may act on, not everything in flight.
        """
        where = f"""WHERE {_UNFINISHED}
                      AND batch_id IN (SELECT id FROM batches WHERE state = ?)"""
        parameters: list[Any] = [BatchState.OPEN.value]
        if due_by is not None:
            where += f"""
                      AND batch_id IN (SELECT batch_id FROM jobs
                                       WHERE {_UNFINISHED}
                                         AND (next_attempt_at IS NULL OR next_attempt_at <= ?))"""
            parameters.append(_to_text(due_by))
        return await self._jobs(f"{where} ORDER BY created_at, batch_id, position", parameters)

    async def count_unfinished_jobs(self) -> int:
        """Jobs of open batches that have a step left."""
        async with (
            self._read() as db,
            db.execute(
                f"""SELECT COUNT(*) FROM jobs WHERE {_UNFINISHED}
                    AND batch_id IN (SELECT id FROM batches WHERE state = ?)""",
                (BatchState.OPEN.value,),
            ) as cursor,
        ):
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def count_in_flight(self) -> dict[str, int]:
        """Per provider, jobs submitted and not finished."""
        async with (
            self._read() as db,
            db.execute(
                """SELECT provider, COUNT(*) FROM jobs WHERE state IN (?, ?)
                   AND batch_id IN (SELECT id FROM batches WHERE state = ?)
                   GROUP BY provider""",
                (JobState.SUBMITTED.value, JobState.PROCESSING.value, BatchState.OPEN.value),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    async def open_jobs_for_remote_id(self, provider: str, remote_id: str) -> list[Job]:
        """Submitted jobs waiting on the provider's ``remote_id`` (a transcription or batch)."""
        return await self._jobs(
            "WHERE provider = ? AND provider_job_id = ? AND state IN (?, ?)",
            (provider, remote_id, JobState.SUBMITTED.value, JobState.PROCESSING.value),
        )

    async def batches_to_deliver(self, now: datetime) -> list[Batch]:
        """Batches whose jobs are all terminal and whose reply is not posted yet, when due."""
        return await self._batches(
            f"""WHERE b.state IN (?, ?)
                  AND (b.next_attempt_at IS NULL OR b.next_attempt_at <= ?)
                  AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = b.id
                                  AND {_UNFINISHED})
                ORDER BY b.created_at""",
            (BatchState.OPEN.value, BatchState.DELIVERING.value, _to_text(now)),
        )

    async def jobs_to_clean_up(
        self, now: datetime, *, finished_early: Sequence[str] = ()
    ) -> list[Job]:
        """Jobs that may still hold something at the provider, when due: those of finished
        batches, and for the providers named in ``finished_early``, each job that has ended
        (its transcript is recorded, so the provider's copy is not needed any more)."""
        early = ""
        if finished_early:
            placeholders = ",".join("?" for _ in finished_early)
            early = f"""OR (provider IN ({placeholders}) AND state IN (?, ?)
                            AND sent_at IS NULL)"""
        return await self._jobs(
            f"""WHERE cleaned_up = 0
                 AND (provider_file_id IS NOT NULL OR provider_job_id IS NOT NULL)
                 AND (EXISTS (SELECT 1 FROM batches b WHERE b.id = jobs.batch_id
                              AND b.state IN (?, ?, ?))
                      {early})
                 AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
               ORDER BY batch_id, position""",
            (
                BatchState.DELIVERED.value,
                BatchState.UNDELIVERABLE.value,
                BatchState.CANCELLED.value,
                *(
                    (*finished_early, JobState.COMPLETED.value, JobState.FAILED.value)
                    if finished_early
                    else ()
                ),
                _to_text(now),
            ),
        )

    async def count_stored(self, provider: str) -> tuple[int, int]:
        """Files, and their bytes, that ``provider`` holds for us: uploaded and not deleted yet,
        or being uploaded (sent, with no answer recorded)."""
        async with self._read() as db:
            rows = await db.execute_fetchall(
                """SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM jobs
                   WHERE provider = ? AND cleaned_up = 0 AND provider_file_id IS NOT NULL""",
                (provider,),
            )
            sending = await db.execute_fetchall(
                """SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM jobs
                   WHERE sent_at IS NOT NULL AND provider = ? AND state = ?
                     AND provider_file_id IS NULL""",
                (provider, JobState.UPLOADING.value),
            )
        (files, size), (sent_files, sent_size) = next(iter(rows)), next(iter(sending))
        return int(files) + int(sent_files), int(size) + int(sent_size)

    async def spooled_jobs_of_closed_batches(self) -> list[Job]:
        """Jobs still holding a spool file although their batch will not go on."""
        return await self._jobs(
            """WHERE spool_path IS NOT NULL
                 AND EXISTS (SELECT 1 FROM batches b
                             WHERE b.id = jobs.batch_id AND b.state != ?)""",
            (BatchState.OPEN.value,),
        )

    async def sent_jobs_of_closed_batches(self) -> list[Job]:
        """Jobs whose last upload or submission was sent without its answer being recorded,
        in batches that will not go on."""
        return await self._jobs(
            """WHERE sent_at IS NOT NULL
                 AND EXISTS (SELECT 1 FROM batches b
                             WHERE b.id = jobs.batch_id AND b.state != ?)""",
            (BatchState.OPEN.value,),
        )

    async def cancelled_batches_with_progress(self, cancelled_text: str) -> list[Batch]:
        """Cancelled batches whose progress message does not say so yet."""
        return await self._batches(
            """WHERE state = ? AND status_ts IS NOT NULL
                 AND (status_text IS NULL OR status_text != ?)""",
            (BatchState.CANCELLED.value, cancelled_text),
        )

    async def purge_before(self, cutoff: datetime, now: datetime) -> int:
        """Erase transcripts of batches finished before ``cutoff``, and old event ids.

        What was said goes; the bookkeeping (file names, states, times) stays for ``status``.
        """
        finished = (
            BatchState.DELIVERED.value,
            BatchState.UNDELIVERABLE.value,
            BatchState.CANCELLED.value,
        )
        async with self._transaction() as db:
            cursor = await db.execute(
                """UPDATE jobs SET transcript = NULL, raw_result = NULL, updated_at = ?
                   WHERE (transcript IS NOT NULL OR raw_result IS NOT NULL)
                     AND batch_id IN (SELECT id FROM batches WHERE state IN (?, ?, ?)
                                      AND updated_at < ?)""",
                (_to_text(now), *finished, _to_text(cutoff)),
            )
            await db.execute("DELETE FROM processed_events WHERE seen_at < ?", (_to_text(cutoff),))
        return cursor.rowcount

    async def batches_needing_progress(
        self, now: datetime, *, after: timedelta, every: timedelta, held_note: str
    ) -> list[Batch]:
        """Open batches whose progress message is due: older than ``after`` and not shown yet
        (or lost mid-post), or, at most once per ``every``, with a job finished since it was
        last shown, or with jobs waiting for their provider's account (``held_by``) while the
        message does not start with ``held_note`` (or the other way round). Others cannot have
        a different message, so they are not read at all."""
        return await self._batches(
            f"""WHERE b.state = ?
                 AND ((b.status_ts IS NULL AND b.created_at <= ?)
                      OR b.status_ts = ?
                      OR ((b.status_updated_at IS NULL OR b.status_updated_at <= ?)
                          AND (EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id
                                       AND j.finished_at > b.status_updated_at)
                               OR (EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id
                                           AND j.held_by IS NOT NULL AND j.{_UNFINISHED})
                                   != (b.status_text IS NOT NULL
                                       AND substr(b.status_text, 1, ?) = ?)))))
               ORDER BY b.created_at""",
            (
                BatchState.OPEN.value,
                _to_text(now - after),
                PENDING_STATUS,
                _to_text(now - every),
                len(held_note),
                held_note,
            ),
        )

    # -- provider accounts -------------------------------------------------------------------

    async def account_problems(self) -> list[ProviderAccountProblem]:
        """Every provider account that refuses new work now, by provider."""
        async with (
            self._read() as db,
            db.execute(
                """SELECT provider, reason, detail, message, steps, since
                   FROM provider_account_problems ORDER BY provider"""
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return [
            ProviderAccountProblem(
                provider=row[0],
                reason=row[1],
                detail=row[2],
                message=row[3],
                steps=json.loads(row[4]),
                since=_required_time(row[5]),
            )
            for row in rows
        ]

    async def save_account_problem(self, problem: ProviderAccountProblem, now: datetime) -> None:
        async with self._transaction() as db:
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
                    _to_text(problem.since),
                    _to_text(now),
                ),
            )

    async def account_works_again(self, provider: str, now: datetime) -> int:
        """Forget ``provider``'s account problem and make the jobs waiting for it due now, with
        a fresh allowance of time, in one transaction; returns how many jobs that was."""
        async with self._transaction() as db:
            await db.execute(
                "DELETE FROM provider_account_problems WHERE provider = ?", (provider,)
            )
            cursor = await db.execute(
                f"""UPDATE jobs SET held_by = NULL, next_attempt_at = NULL, stalled_since = NULL,
                        updated_at = ?
                    WHERE held_by = ? AND {_UNFINISHED}""",
                (_to_text(now), provider),
            )
        return cursor.rowcount

    # -- writing -----------------------------------------------------------------------------

    async def update_job(self, job_id: str, now: datetime, **fields: Any) -> None:
        await self.update_jobs([job_id], now, **fields)

    async def update_jobs(self, job_ids: Iterable[str], now: datetime, **fields: Any) -> None:
        """Set ``fields`` on every job in ``job_ids`` in one transaction."""
        unknown = set(fields) - _JOB_COLUMNS
        if unknown:
            raise ValueError(f"not columns of jobs: {sorted(unknown)}")
        ids = list(job_ids)
        if not ids:
            return
        assignments = ", ".join(f"{column} = ?" for column in fields)
        values = [_encode(column, value) for column, value in fields.items()]
        async with self._transaction() as db:
            await db.executemany(
                f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ?",
                [(*values, _to_text(now), job_id) for job_id in ids],
            )

    async def update_batch(self, batch_id: str, now: datetime, **fields: Any) -> None:
        unknown = set(fields) - _BATCH_COLUMNS
        if unknown:
            raise ValueError(f"not columns of batches: {sorted(unknown)}")
        assignments = ", ".join(f"{column} = ?" for column in fields)
        values = [_encode(column, value) for column, value in fields.items()]
        async with self._transaction() as db:
            await db.execute(
                f"UPDATE batches SET {assignments}, updated_at = ? WHERE id = ?",
                (*values, _to_text(now), batch_id),
            )

    # -- channel settings --------------------------------------------------------------------

    async def channel_settings(self, channel_id: str) -> ChannelSettings:
        """The channel's choices (defaults if it never made any). Every shared file asks, and
        only :meth:`save_channel_settings` changes them, so they are kept in memory once read."""
        known = self._channel_settings.get(channel_id)
        if known is None:
            async with (
                self._read() as db,
                db.execute(
                    "SELECT * FROM channel_settings WHERE channel_id = ?", (channel_id,)
                ) as cursor,
            ):
                row = await cursor.fetchone()
            known = ChannelSettings(channel_id=channel_id)
            if row is not None:
                known = ChannelSettings(
                    channel_id=channel_id,
                    provider=row["provider"],
                    auto=bool(row["auto"]),
                    language_hints=json.loads(row["language_hints"]),
                    language_hints_strict=bool(row["language_hints_strict"]),
                )
            self._channel_settings[channel_id] = known
        # A copy: a caller changing it before saving must not change what others read.
        return dataclasses.replace(known, language_hints=list(known.language_hints))

    async def save_channel_settings(self, settings: ChannelSettings, now: datetime) -> None:
        async with self._transaction() as db:
            await db.execute(
                """INSERT INTO channel_settings
                       (channel_id, provider, auto, language_hints, language_hints_strict,
                        updated_at)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (channel_id) DO UPDATE SET provider = excluded.provider,
                   auto = excluded.auto, language_hints = excluded.language_hints,
                   language_hints_strict = excluded.language_hints_strict,
                   updated_at = excluded.updated_at""",
                (
                    settings.channel_id,
                    settings.provider,
                    int(settings.auto),
                    json.dumps(settings.language_hints),
                    int(settings.language_hints_strict),
                    _to_text(now),
                ),
            )
        self._channel_settings[settings.channel_id] = dataclasses.replace(
            settings, language_hints=list(settings.language_hints)
        )

    # -- helpers -----------------------------------------------------------------------------

    async def _jobs(self, where: str, parameters: Sequence[Any]) -> list[Job]:
        async with (
            self._read() as db,
            db.execute(f"SELECT {_JOB_SELECT} FROM jobs {where}", parameters) as cursor,
        ):
            rows = await cursor.fetchall()
        return [_job(row) for row in rows]

    async def _batches(self, where: str, parameters: Sequence[Any]) -> list[Batch]:
        """Batches matching ``where``, which may name the table ``b``."""
        async with (
            self._read() as db,
            db.execute(f"SELECT {_BATCH_SELECT} FROM batches AS b {where}", parameters) as cursor,
        ):
            rows = await cursor.fetchall()
        return [_batch(row) for row in rows]

    # -- channel views (slash commands) -------------------------------------------------------

    async def running_batches(self, channel_id: str) -> list[Batch]:
        """The channel's batches whose reply is not posted yet, oldest first."""
        return await self._batches(
            "WHERE channel_id = ? AND state IN (?, ?) ORDER BY created_at, id",
            (channel_id, BatchState.OPEN.value, BatchState.DELIVERING.value),
        )

    async def finished_batches(self, channel_id: str, limit: int) -> list[Batch]:
        """The channel's last ``limit`` batches that will not change any more, newest first."""
        return await self._batches(
            """WHERE channel_id = ? AND state IN (?, ?, ?)
               ORDER BY updated_at DESC, created_at DESC LIMIT ?""",
            (
                channel_id,
                BatchState.DELIVERED.value,
                BatchState.UNDELIVERABLE.value,
                BatchState.CANCELLED.value,
                limit,
            ),
        )

    async def active_batch_for_message(self, channel_id: str, message_ts: str) -> Batch | None:
        """A batch for this message that is still at work, if any: asking twice for the same
        message while the first answer is pending should not start a second one."""
        batches = await self._batches(
            """WHERE channel_id = ? AND message_ts = ? AND state IN (?, ?)
               ORDER BY created_at DESC LIMIT 1""",
            (channel_id, message_ts, BatchState.OPEN.value, BatchState.DELIVERING.value),
        )
        return batches[0] if batches else None

    async def last_failed_batch(self, channel_id: str) -> Batch | None:
        """The channel's newest finished batch with a failed job that no later batch for the same
        message has superseded (a retry, a shortcut, a mention): retrying it twice would post the
        same transcript twice."""
        batches = await self._batches(
            """WHERE channel_id = ? AND state IN (?, ?)
                 AND EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.state = ?)
                 AND NOT EXISTS (SELECT 1 FROM batches later
                                 WHERE later.channel_id = b.channel_id
                                   AND later.message_ts = b.message_ts
                                   AND later.created_at > b.created_at)
               ORDER BY created_at DESC LIMIT 1""",
            (
                channel_id,
                BatchState.DELIVERED.value,
                BatchState.UNDELIVERABLE.value,
                JobState.FAILED.value,
            ),
        )
        return batches[0] if batches else None

    async def jobs_of_batches(self, batch_ids: Sequence[str]) -> dict[str, list[Job]]:
        """The jobs of several batches at once, in order, keyed by batch id."""
        found: dict[str, list[Job]] = {batch_id: [] for batch_id in batch_ids}
        if not batch_ids:
            return found
        placeholders = ",".join("?" for _ in batch_ids)
        for job in await self._jobs(
            f"WHERE batch_id IN ({placeholders}) ORDER BY batch_id, position", batch_ids
        ):
            found[job.batch_id].append(job)
        return found

    async def change_batch_state(
        self,
        batch_id: str,
        now: datetime,
        *,
        expected: Iterable[BatchState],
        state: BatchState,
    ) -> bool:
        """Move a batch to ``state`` only if it is in one of the ``expected`` states, atomically;
        False when it was not (someone else moved it first). Cancelling uses this so that a
        batch the pipeline has started to deliver is never marked cancelled, and the pipeline can
        use it so that a cancelled batch is never moved back to delivering."""
        states = [s.value for s in expected]
        placeholders = ",".join("?" for _ in states)
        async with self._transaction() as db:
            cursor = await db.execute(
                f"""UPDATE batches SET state = ?, updated_at = ?
                    WHERE id = ? AND state IN ({placeholders})""",
                (state.value, _to_text(now), batch_id, *states),
            )
        return cursor.rowcount == 1

    # -- operations: figures for /metrics ------------------------------------------------------

    async def count_jobs_by_state_and_provider(self) -> dict[tuple[str, str], int]:
        """``{(state, provider): count}`` over every job kept, for the metrics page."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT state, provider, COUNT(*) FROM jobs GROUP BY state, provider"
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return {(str(row[0]), str(row[1])): int(row[2]) for row in rows}

    async def count_batches_by_state(self) -> dict[str, int]:
        """``{state: count}`` over every batch kept; undeliverable ones are worth an alert."""
        async with (
            self._read() as db,
            db.execute("SELECT state, COUNT(*) FROM batches GROUP BY state") as cursor,
        ):
            rows = await cursor.fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    # -- operations: bulk forms for a cycle with thousands of units in flight ------------------

    async def language_hints_in_use(self) -> dict[str, LanguageHints]:
        """Language hints of the open batches that have any, keyed by id; every other open
        batch has none. Most batches have none, so this reads few rows where asking by id would
        read every batch polled."""
        async with (
            self._read() as db,
            db.execute(
                "SELECT id, language_hints, language_hints_strict FROM batches"
                " WHERE state = ? AND language_hints != '[]'",
                (BatchState.OPEN.value,),
            ) as cursor,
        ):
            rows = await cursor.fetchall()
        return {row[0]: _language_hints(row[1], row[2]) for row in rows}

    async def language_hints_of(self, batch_ids: Iterable[str]) -> dict[str, LanguageHints]:
        """Each batch's language hints, keyed by id: only the columns a provider call needs."""
        ids = list(dict.fromkeys(batch_ids))
        found: dict[str, LanguageHints] = {}
        async with self._read() as db:
            for start in range(0, len(ids), IDS_PER_QUERY):
                chunk = ids[start : start + IDS_PER_QUERY]
                placeholders = ",".join("?" for _ in chunk)
                async with db.execute(
                    "SELECT id, language_hints, language_hints_strict FROM batches"
                    f" WHERE id IN ({placeholders})",
                    chunk,
                ) as cursor:
                    for row in await cursor.fetchall():
                        found[row[0]] = _language_hints(row[1], row[2])
        return found

    async def update_jobs_unless_changed(
        self, changes: dict[str, tuple[datetime, dict[str, Any]]], now: datetime
    ) -> int:
        """Like :meth:`update_jobs_each`, but each job only if its ``updated_at`` is still the
        one given: a write decided on an earlier reading never overwrites a newer change.
        Returns how many jobs were updated."""
        return await self._update_each(
            "jobs",
            _JOB_COLUMNS,
            [(job_id, fields, seen_at) for job_id, (seen_at, fields) in changes.items()],
            now,
        )

    async def update_jobs_each(self, changes: dict[str, dict[str, Any]], now: datetime) -> None:
        """Set different ``fields`` on each job (``{job_id: fields}``) in one transaction.

        For the answers of one poll round: recording them one transaction each costs three
        round trips and a lock hand-over per job, which dominates a cycle with many jobs.
        """
        await self._update_each(
            "jobs",
            _JOB_COLUMNS,
            [(job_id, fields, None) for job_id, fields in changes.items()],
            now,
        )

    async def update_batches_each(self, changes: dict[str, dict[str, Any]], now: datetime) -> None:
        """Set different ``fields`` on each batch (``{batch_id: fields}``) in one transaction."""
        await self._update_each(
            "batches",
            _BATCH_COLUMNS,
            [(batch_id, fields, None) for batch_id, fields in changes.items()],
            now,
        )

    async def _update_each(
        self,
        table: str,
        columns_allowed: frozenset[str],
        changes: Sequence[tuple[str, dict[str, Any], datetime | None]],
        now: datetime,
    ) -> int:
        """One transaction, one ``executemany`` per set of columns; a change with a
        ``seen_at`` applies only while the row's ``updated_at`` is still that."""
        groups: dict[tuple[tuple[str, ...], bool], list[tuple[Any, ...]]] = {}
        updated_at = _to_text(now)
        for row_id, fields, seen_at in changes:
            columns = tuple(fields)
            conditional = seen_at is not None
            rows = groups.get((columns, conditional))
            if rows is None:
                unknown = set(columns) - columns_allowed
                if unknown:
                    raise ValueError(f"not columns of {table}: {sorted(unknown)}")
                rows = groups[(columns, conditional)] = []
            row = (*map(_encode, columns, fields.values()), updated_at, row_id)
            rows.append((*row, _to_text(seen_at)) if conditional else row)
        updated = 0
        if not groups:
            return updated
        async with self._transaction() as db:
            for (columns, conditional), rows in groups.items():
                assignments = "".join(f"{column} = ?, " for column in columns)
                condition = " AND updated_at = ?" if conditional else ""
                cursor = await db.executemany(
                    f"UPDATE {table} SET {assignments}updated_at = ? WHERE id = ?{condition}", rows
                )
                updated += cursor.rowcount
        return updated


#: Column lists in the order of each dataclass's fields, which ``_batch`` and ``_job`` unpack.
_BATCH_SELECT = ", ".join(field.name for field in dataclasses.fields(Batch))
_JOB_SELECT = ", ".join(field.name for field in dataclasses.fields(Job))
_BATCH_STATES = {state.value: state for state in BatchState}
_JOB_STATES = {state.value: state for state in JobState}
_JOB_KINDS = {kind.value: kind for kind in JobKind}


# Rows are unpacked by position, and enums found in a dict: a poll cycle converts thousands of
# rows, and this costs a third of reading each column by name and calling the Enum.


def _batch(row: Sequence[Any]) -> Batch:
    (
        id_,
        team_id,
        channel_id,
        message_ts,
        thread_ts,
        user_id,
        provider,
        source,
        state,
        language_hints,
        reply_ts,
        attempts,
        next_attempt_at,
        created_at,
        updated_at,
        delivered_at,
        status_ts,
        status_text,
        status_updated_at,
        failing_since,
        language_hints_strict,
    ) = row
    return Batch(
        id=id_,
        team_id=team_id,
        channel_id=channel_id,
        message_ts=message_ts,
        thread_ts=thread_ts,
        user_id=user_id,
        provider=provider,
        source=source,
        state=_BATCH_STATES[state],
        language_hints=json.loads(language_hints) if language_hints != "[]" else [],
        reply_ts=reply_ts,
        attempts=attempts,
        next_attempt_at=_to_time(next_attempt_at),
        created_at=_required_time(created_at),
        updated_at=_required_time(updated_at),
        delivered_at=_to_time(delivered_at),
        status_ts=status_ts,
        status_text=status_text,
        status_updated_at=_to_time(status_updated_at),
        failing_since=_to_time(failing_since),
        language_hints_strict=bool(language_hints_strict),
    )


def _language_hints(codes: str | None, strict: int) -> LanguageHints:
    if not codes or codes == "[]":
        return LanguageHints()
    return LanguageHints(codes=tuple(json.loads(codes)), strict=bool(strict))


def _job(row: Sequence[Any]) -> Job:
    (
        id_,
        batch_id,
        position,
        kind,
        provider,
        filename,
        slack_file_id,
        url,
        download_url,
        mimetype,
        size_bytes,
        needs_file_info,
        state,
        attempts,
        next_attempt_at,
        error,
        error_detail,
        spool_path,
        provider_file_id,
        provider_upload_id,
        provider_job_id,
        provider_eta_at,
        transcript,
        raw_result,
        attachment_uploaded,
        cleaned_up,
        created_at,
        updated_at,
        finished_at,
        stalled_since,
        sent_at,
        resubmissions,
        duration_ms,
        held_by,
    ) = row
    return Job(
        id=id_,
        batch_id=batch_id,
        position=position,
        kind=_JOB_KINDS[kind],
        provider=provider,
        filename=filename,
        slack_file_id=slack_file_id,
        url=url,
        download_url=download_url,
        mimetype=mimetype,
        size_bytes=size_bytes,
        needs_file_info=bool(needs_file_info),
        state=_JOB_STATES[state],
        attempts=attempts,
        next_attempt_at=_to_time(next_attempt_at),
        error=error,
        error_detail=error_detail,
        spool_path=spool_path,
        provider_file_id=provider_file_id,
        provider_upload_id=provider_upload_id,
        provider_job_id=provider_job_id,
        provider_eta_at=_to_time(provider_eta_at),
        transcript=json.loads(transcript) if transcript else None,
        raw_result=json.loads(raw_result) if raw_result else None,
        attachment_uploaded=bool(attachment_uploaded),
        cleaned_up=bool(cleaned_up),
        created_at=_required_time(created_at),
        updated_at=_required_time(updated_at),
        finished_at=_to_time(finished_at),
        stalled_since=_to_time(stalled_since),
        sent_at=_to_time(sent_at),
        resubmissions=resubmissions,
        duration_ms=duration_ms,
        held_by=held_by,
    )
