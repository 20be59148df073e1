"""Creating batches: requests made at the same time are written together, in one transaction.

A burst of shared files (each waiting for its commit before Slack gets its ack) then costs a few
round trips to the database instead of several per file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import sqlite3
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from storage.models import Batch, BatchState, JobState, NewBatch, NewJob
from storage.sqlite.connection import Database
from storage.sqlite.rows import chunks, placeholders, states_sql, to_text
from storage.states import RUNNING_BATCH_STATES
from storage.store import StoreClosed, StoreUnavailable, WriteInterrupted

#: Draws of a fresh batch id before giving up (a second collision in a row is all but impossible).
ID_ATTEMPTS = 5


def new_batch_id() -> str:
    """Short enough to type in ``/transcribe retry b-1a2b3c4d5e6f``, long enough (48 random
    bits) that two batches practically never draw the same id; a batch that does draws again."""
    return f"b-{secrets.token_hex(6)}"


class _BatchIdTaken(Exception):
    """An id drawn for this group is already a batch's."""


@dataclasses.dataclass
class _Request:
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


class BatchWriter:
    """Takes ``create_batch`` requests and writes those waiting as one group, in order."""

    def __init__(self, database: Database) -> None:
        self._database = database
        #: Requests waiting for the writer, which takes them as one group.
        self._waiting: list[_Request] = []
        #: The group the writer is writing now.
        self._writing: list[_Request] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def create(
        self, batch: NewBatch, jobs: Sequence[NewJob], now: datetime, *, unless_running: bool
    ) -> Batch | None:
        if self._closed:
            raise StoreClosed("the database is closed")
        request = _Request(
            batch, list(jobs), now, unless_running, asyncio.get_running_loop().create_future()
        )
        self._waiting.append(request)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_waiting())
            self._writer.add_done_callback(self._writer_stopped)
        return await request.outcome

    async def close(self) -> None:
        """Refuse new requests; what was asked for before is still written."""
        self._closed = True
        if self._writer is not None:
            # Shielded: what is being written is finished even if closing is cancelled.
            await asyncio.shield(self._writer)

    async def _write_waiting(self) -> None:
        while self._waiting:
            self._writing, self._waiting = self._waiting, []
            try:
                created = await self._insert(self._writing)
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
        self._writer = None

    def _writer_stopped(self, writer: asyncio.Task[None]) -> None:
        """Runs however the writer ended. Stopped part-way (cancelled, even before it began),
        it must not leave anyone waiting for ever."""
        if self._writer is writer:
            self._writer = None
            for request in [*self._writing, *self._waiting]:
                _settle(request.outcome, WriteInterrupted("the batch was not written"))
            self._writing, self._waiting = [], []

    async def _write_alone(self, request: _Request) -> None:
        try:
            (batch,) = await self._insert([request])
        except Exception as exc:
            _settle(request.outcome, exc)
        else:
            _settle(request.outcome, batch)

    async def _insert(self, group: Sequence[_Request]) -> list[Batch | None]:
        for _ in range(ID_ATTEMPTS):
            ids = [new_batch_id() for _ in group]
            if len(set(ids)) < len(ids):
                continue
            try:
                async with self._database.transaction() as db:
                    return await _insert_group(db, group, ids)
            except _BatchIdTaken:
                continue
        raise StoreUnavailable("could not draw unused batch ids")


async def _insert_group(
    db: aiosqlite.Connection, group: Sequence[_Request], ids: Sequence[str]
) -> list[Batch | None]:
    """Insert every request's batch and jobs; drop the batches that got no job."""
    batch_rows: list[tuple[Any, ...]] = []
    job_rows: list[tuple[Any, ...]] = []
    wanted: list[str | None] = []
    for batch_id, request in zip(ids, group, strict=True):
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
        _new_batch(batch_id, request) if batch_id is not None and batch_id in taken else None
        for batch_id, request in zip(wanted, group, strict=True)
    ]


def _batch_row(batch_id: str, request: _Request) -> tuple[Any, ...]:
    batch, stamp = request.batch, to_text(request.now)
    return (
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


def _job_rows(batch_id: str, request: _Request) -> list[tuple[Any, ...]]:
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
                """INSERT INTO batches (id, team_id, channel_id, message_ts, thread_ts, user_id,
                       provider, source, state, language_hints, language_hints_strict,
                       created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                batch_rows,
            )
        except sqlite3.IntegrityError as exc:
            if "batches.id" in str(exc):
                raise _BatchIdTaken from exc
            raise
    if job_rows:
        # A job whose dedupe key was taken before is left out: that file of that message is
        # already someone's work.
        await db.executemany(
            """INSERT OR IGNORE INTO jobs (id, batch_id, position, kind, provider,
                   filename, slack_file_id, url, download_url, mimetype, size_bytes,
                   duration_ms, needs_file_info, dedupe_key, state, error, created_at,
                   updated_at, finished_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            job_rows,
        )


async def _running(db: aiosqlite.Connection, batch: NewBatch) -> bool:
    """Whether a batch for the same message is running; a batch of this group counts once it
    has a job."""
    rows = await db.execute_fetchall(
        f"""SELECT 1 FROM batches WHERE channel_id = ? AND message_ts = ?
            AND state IN {states_sql(RUNNING_BATCH_STATES)}
            AND EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = batches.id) LIMIT 1""",
        (batch.channel_id, batch.message_ts),
    )
    return bool(rows)


def _new_batch(batch_id: str, request: _Request) -> Batch:
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
