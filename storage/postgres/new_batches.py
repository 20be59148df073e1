"""Creating batches in PostgreSQL: the group of requests made at the same time
(:mod:`storage.batch_writer`) is written in one transaction, and its rules hold against other
processes writing at the same moment.

* A file taken once: ``dedupe_key`` is unique, and a job whose key another transaction holds
  waits for it to end, then is left out (``ON CONFLICT DO NOTHING``).
* "Unless running": the check and the insert happen under a transaction lock on the message
  (``pg_advisory_xact_lock``), so a second request for it, from any process, waits and then sees
  the first batch. The group takes its locks in one order, so two groups never wait on each
  other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence, Set
from typing import Any

from storage.batch_writer import BatchIdTaken, BatchRequest, BatchWriter, new_batch
from storage.models import Batch, BatchState, JobState, NewBatch, Workspace
from storage.postgres.base import columns
from storage.postgres.connection import Connection, Database
from storage.postgres.rows import safe_text, to_jsonb, translation_text
from storage.postgres.workspaces import workspace_lock_keys
from storage.rows import states_sql
from storage.states import RUNNING_BATCH_STATES
from storage.workspace_sql import removed_sql, team_condition

_BATCH_COLUMNS = """id, team_id, enterprise_id, channel_id, message_ts, thread_ts, user_id,
    provider, source, state, language_hints, language_hints_strict, vocabulary, context_text,
    translation, mark_doubtful, created_at, updated_at, jobs_finished_at"""
_BATCH_TYPES = """text[], text[], text[], text[], text[], text[], text[], text[], text[], text[],
    jsonb[], boolean[], jsonb[], text[], text[], boolean[], timestamptz[], timestamptz[],
    timestamptz[]"""
_JOB_COLUMNS = """id, batch_id, position, kind, provider, filename, slack_file_id, url,
    download_url, mimetype, size_bytes, duration_ms, needs_file_info, dedupe_key, state, error,
    created_at, updated_at, finished_at"""
_JOB_TYPES = """text[], text[], integer[], text[], text[], text[], text[], text[], text[],
    text[], bigint[], bigint[], boolean[], text[], text[], text[], timestamptz[], timestamptz[],
    timestamptz[]"""


def _unnest(types: str) -> str:
    return "unnest(" + ", ".join(f"%b::{kind.strip()}" for kind in types.split(",")) + ")"


_INSERT_BATCHES = f"""INSERT INTO batches ({_BATCH_COLUMNS}) SELECT * FROM {_unnest(_BATCH_TYPES)}
    ON CONFLICT (id) DO NOTHING RETURNING id"""
# A job whose dedupe key was taken before is left out: that file of that message is already
# someone's work.
_INSERT_JOBS = f"""INSERT INTO jobs ({_JOB_COLUMNS}) SELECT * FROM {_unnest(_JOB_TYPES)}
    ON CONFLICT (dedupe_key) DO NOTHING RETURNING batch_id"""


def batch_writer(database: Database) -> BatchWriter:
    """The writer of ``create_batch``, writing each group in one ``database`` transaction."""

    async def write_group(group: Sequence[BatchRequest], ids: Sequence[str]) -> list[Batch | None]:
        async with database.transaction() as db:
            return await _insert_group(db, group, ids)

    return BatchWriter(write_group)


async def _insert_group(
    db: Connection, group: Sequence[BatchRequest], ids: Sequence[str]
) -> list[Batch | None]:
    """Insert every request's batch and jobs; drop the batches that got no job."""
    for key in sorted({_message_key(r.batch) for r in group if r.unless_running}):
        await db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))
    removed = await _removed_workspaces(db, {r.batch.workspace for r in group})
    batch_rows: list[tuple[Any, ...]] = []
    job_rows: list[tuple[Any, ...]] = []
    wanted: list[str | None] = []
    taken: set[str] = set()
    for batch_id, request in zip(ids, group, strict=True):
        if request.batch.workspace in removed:
            wanted.append(None)
            continue
        if request.unless_running:
            # Earlier requests of this group are written first, so that the check sees them.
            taken |= await _insert_rows(db, batch_rows, job_rows)
            batch_rows, job_rows = [], []
            if await _running(db, request.batch):
                wanted.append(None)
                continue
        wanted.append(batch_id)
        batch_rows.append(_batch_row(batch_id, request))
        job_rows += _job_rows(batch_id, request)
    taken |= await _insert_rows(db, batch_rows, job_rows)
    # Everything in these was taken before: leave no empty batch behind.
    empty = [batch_id for batch_id in wanted if batch_id is not None and batch_id not in taken]
    if empty:
        await db.execute("DELETE FROM batches WHERE id = ANY(%b::text[])", (empty,))
    return [
        new_batch(batch_id, request) if batch_id is not None and batch_id in taken else None
        for batch_id, request in zip(wanted, group, strict=True)
    ]


def _message_key(batch: NewBatch) -> str:
    return f"threadscribe message {batch.team_id or ''} {batch.channel_id} {batch.message_ts}"


def _batch_row(batch_id: str, request: BatchRequest) -> tuple[Any, ...]:
    batch, stamp = request.batch, request.now
    return (
        batch_id,
        safe_text(batch.team_id),
        safe_text(batch.enterprise_id),
        safe_text(batch.channel_id),
        safe_text(batch.message_ts),
        safe_text(batch.thread_ts),
        safe_text(batch.user_id),
        batch.provider,
        batch.source,
        BatchState.OPEN.value,
        to_jsonb(batch.language_hints),
        batch.language_hints_strict,
        to_jsonb(list(batch.options.terms)),
        safe_text(batch.options.context),
        translation_text(batch.options.translation),
        batch.options.mark_doubtful,
        stamp,
        stamp,
        # A refused file is a job finished at once.
        stamp if any(job.refused_reason for job in request.jobs) else None,
    )


def _job_rows(batch_id: str, request: BatchRequest) -> list[tuple[Any, ...]]:
    stamp = request.now
    return [
        (
            uuid.uuid4().hex,
            batch_id,
            position,
            job.kind.value,
            request.batch.provider,
            safe_text(job.filename),
            safe_text(job.slack_file_id),
            safe_text(job.url),
            safe_text(job.download_url),
            safe_text(job.mimetype),
            job.size_bytes,
            job.duration_ms,
            job.needs_file_info,
            safe_text(job.dedupe_key),
            (JobState.FAILED if job.refused_reason else JobState.QUEUED).value,
            safe_text(job.refused_reason),
            stamp,
            stamp,
            stamp if job.refused_reason else None,
        )
        for position, job in enumerate(request.jobs)
    ]


async def _insert_rows(
    db: Connection, batch_rows: Sequence[tuple[Any, ...]], job_rows: Sequence[tuple[Any, ...]]
) -> set[str]:
    """Insert the batches, then those of the jobs not taken before; the batches that got one."""
    if batch_rows:
        cursor = await db.execute(_INSERT_BATCHES, columns(batch_rows, 18))
        if len(await cursor.fetchall()) < len(batch_rows):
            raise BatchIdTaken
    if not job_rows:
        return set()
    cursor = await db.execute(_INSERT_JOBS, columns(job_rows, 19))
    return {str(row[0]) for row in await cursor.fetchall()}


async def _running(db: Connection, batch: NewBatch) -> bool:
    """Whether a batch for the same message is running; a batch of this group counts once it
    has a job."""
    team, values = team_condition(batch.workspace, "%s")
    cursor = await db.execute(
        f"""SELECT 1 FROM batches WHERE {team} AND channel_id = %s AND message_ts = %s
            AND state IN {states_sql(RUNNING_BATCH_STATES)}
            AND EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id) LIMIT 1""",
        (
            *(safe_text(value) for value in values),
            safe_text(batch.channel_id),
            safe_text(batch.message_ts),
        ),
    )
    return await cursor.fetchone() is not None


async def _removed_workspaces(db: Connection, workspaces: Set[Workspace]) -> set[Workspace]:
    """Those of ``workspaces`` that removed the app: nothing is recorded for them. A removal
    takes its workspace's advisory lock exclusively; this takes the group's shared first (a
    statement of its own, so that the checks' snapshots come after it): a batch is created
    before a removal, which then stops and erases it, or not at all."""
    named = [workspace for workspace in workspaces if workspace.team_id or workspace.enterprise_id]
    keys = sorted({key for workspace in named for key in workspace_lock_keys(workspace)})
    if not keys:
        return set()
    await db.execute(
        "SELECT pg_advisory_xact_lock_shared(hashtextextended(k, 0)) FROM unnest(%s::text[]) k",
        ([safe_text(key) for key in keys],),
    )
    removed: set[Workspace] = set()
    for workspace in named:
        statement, values = removed_sql(workspace, "%s")
        cursor = await db.execute(statement, tuple(safe_text(value) for value in values))
        if await cursor.fetchone() is not None:
            removed.add(workspace)
    return removed
