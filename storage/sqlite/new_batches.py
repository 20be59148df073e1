"""Creating batches in SQLite: the group of requests made at the same time
(:mod:`storage.batch_writer`) is written in one transaction."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Sequence
from typing import Any

import aiosqlite

from storage.batch_writer import BatchIdTaken, BatchRequest, BatchWriter, new_batch
from storage.models import Batch, BatchState, JobState, NewBatch
from storage.rows import states_sql
from storage.sqlite.connection import Database
from storage.sqlite.rows import chunks, placeholders, to_text, translation_text
from storage.states import RUNNING_BATCH_STATES
from storage.workspace_sql import removed_sql, team_condition


def batch_writer(database: Database) -> BatchWriter:
    """The writer of ``create_batch``, writing each group in one ``database`` transaction."""

    async def write_group(group: Sequence[BatchRequest], ids: Sequence[str]) -> list[Batch | None]:
        async with database.transaction() as db:
            return await _insert_group(db, group, ids)

    return BatchWriter(write_group)


async def _insert_group(
    db: aiosqlite.Connection, group: Sequence[BatchRequest], ids: Sequence[str]
) -> list[Batch | None]:
    """Insert every request's batch and jobs; drop the batches that got no job."""
    batch_rows: list[tuple[Any, ...]] = []
    job_rows: list[tuple[Any, ...]] = []
    wanted: list[str | None] = []
    for batch_id, request in zip(ids, group, strict=True):
        if await _removed(db, request.batch):
            wanted.append(None)
            continue
        if request.unless_running:
            # Earlier requests of this group are written first, so that the check sees them.
            await _insert_rows(db, batch_rows, job_rows)
            batch_rows, job_rows = [], []
            if await _running(db, request.batch):
                wanted.append(None)
                continue
        wanted.append(batch_id)
        batch_rows.append(_batch_row(batch_id, request))
        job_rows += _job_rows(batch_id, request)
    await _insert_rows(db, batch_rows, job_rows)
    inserted = [batch_id for batch_id in wanted if batch_id is not None]
    taken: set[str] = set()
    for chunk in chunks(inserted):
        rows = await db.execute_fetchall(
            f"SELECT DISTINCT batch_id FROM jobs WHERE batch_id IN ({placeholders(len(chunk))})",
            chunk,
        )
        taken.update(str(row[0]) for row in rows)
    # Everything in these was taken before: leave no empty batch behind.
    empty = [(batch_id,) for batch_id in inserted if batch_id not in taken]
    if empty:
        await db.executemany("DELETE FROM batches WHERE id = ?", empty)
    return [
        new_batch(batch_id, request) if batch_id is not None and batch_id in taken else None
        for batch_id, request in zip(wanted, group, strict=True)
    ]


def _batch_row(batch_id: str, request: BatchRequest) -> tuple[Any, ...]:
    batch, stamp = request.batch, to_text(request.now)
    return (
        batch_id,
        batch.team_id,
        batch.enterprise_id,
        batch.channel_id,
        batch.message_ts,
        batch.thread_ts,
        batch.user_id,
        batch.provider,
        batch.source,
        BatchState.OPEN.value,
        json.dumps(batch.language_hints),
        int(batch.language_hints_strict),
        json.dumps(list(batch.options.terms)),
        batch.options.context,
        translation_text(batch.options.translation),
        int(batch.options.mark_doubtful),
        stamp,
        stamp,
        # A refused file is a job finished at once.
        stamp if any(job.refused_reason for job in request.jobs) else None,
    )


def _job_rows(batch_id: str, request: BatchRequest) -> list[tuple[Any, ...]]:
    stamp = to_text(request.now)
    return [
        (
            uuid.uuid4().hex,
            batch_id,
            position,
            job.kind.value,
            request.batch.provider,
            job.filename,
            job.slack_file_id,
            job.url,
            job.download_url,
            job.mimetype,
            job.size_bytes,
            job.duration_ms,
            int(job.needs_file_info),
            job.dedupe_key,
            (JobState.FAILED if job.refused_reason else JobState.QUEUED).value,
            job.refused_reason,
            stamp,
            stamp,
            stamp if job.refused_reason else None,
        )
        for position, job in enumerate(request.jobs)
    ]


async def _insert_rows(
    db: aiosqlite.Connection,
    batch_rows: Sequence[tuple[Any, ...]],
    job_rows: Sequence[tuple[Any, ...]],
) -> None:
    if batch_rows:
        try:
            await db.executemany(
                """INSERT INTO batches (id, team_id, enterprise_id, channel_id, message_ts,
                       thread_ts, user_id, provider, source, state, language_hints,
                       language_hints_strict, vocabulary, context_text, translation,
                       mark_doubtful, created_at, updated_at, jobs_finished_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                batch_rows,
            )
        except sqlite3.IntegrityError as exc:
            if "batches.id" in str(exc):
                raise BatchIdTaken from exc
            raise
    if job_rows:
        # A job whose dedupe key was taken before is left out: that file of that message is
        # already someone's work. Only that conflict: OR IGNORE would drop a job breaking any
        # other rule (a NOT NULL) without a word.
        await db.executemany(
            """INSERT INTO jobs (id, batch_id, position, kind, provider,
                   filename, slack_file_id, url, download_url, mimetype, size_bytes,
                   duration_ms, needs_file_info, dedupe_key, state, error, created_at,
                   updated_at, finished_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (dedupe_key) DO NOTHING""",
            job_rows,
        )


async def _running(db: aiosqlite.Connection, batch: NewBatch) -> bool:
    """Whether a batch for the same message is running; a batch of this group counts once it
    has a job."""
    team, values = team_condition(batch.workspace, "?")
    rows = await db.execute_fetchall(
        f"""SELECT 1 FROM batches WHERE {team} AND channel_id = ? AND message_ts = ?
            AND state IN {states_sql(RUNNING_BATCH_STATES)}
            AND EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id) LIMIT 1""",
        (*values, batch.channel_id, batch.message_ts),
    )
    return bool(rows)


async def _removed(db: aiosqlite.Connection, batch: NewBatch) -> bool:
    """Whether the batch's workspace removed the app: nothing is recorded for it."""
    if not batch.team_id and not batch.enterprise_id:
        return False
    return bool(await db.execute_fetchall(*removed_sql(batch.workspace, "?")))
