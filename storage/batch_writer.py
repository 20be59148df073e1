"""Creating batches, for every backend: requests made at the same time are written together.

A burst of shared files (each waiting for its commit before Slack gets its ack) then costs a few
round trips to the database instead of several per file. A backend gives the writer one function
that writes a group in one transaction; the writer groups the requests, draws the batch ids, and
makes sure one faulty request fails alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from storage.models import Batch, BatchState, NewBatch, NewJob
from storage.store import StoreClosed, StoreUnavailable, WriteInterrupted

#: Draws of a fresh batch id before giving up (a second collision in a row is all but impossible).
ID_ATTEMPTS = 5


def new_batch_id() -> str:
    """Short enough to type in ``/transcribe retry b-1a2b3c4d5e6f``, long enough (48 random
    bits) that two batches practically never draw the same id; a batch that does draws again."""
    return f"b-{secrets.token_hex(6)}"


class BatchIdTaken(Exception):
    """An id drawn for this group is already a batch's: the group's transaction is rolled back
    and the group drawn again."""


@dataclasses.dataclass
class BatchRequest:
    batch: NewBatch
    jobs: list[NewJob]
    now: datetime
    unless_running: bool
    outcome: asyncio.Future[Batch | None]


#: Writes a group of requests with these batch ids in one transaction: for each request, the
#: batch created, or None (nothing left to take, or a batch for its message running). Raises
#: :class:`BatchIdTaken` when an id is in use.
GroupWrite = Callable[[Sequence[BatchRequest], Sequence[str]], Awaitable[list[Batch | None]]]


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

    def __init__(self, write_group: GroupWrite) -> None:
        self._write_group = write_group
        #: Requests waiting for the writer, which takes them as one group.
        self._waiting: list[BatchRequest] = []
        #: The group the writer is writing now.
        self._writing: list[BatchRequest] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def create(
        self, batch: NewBatch, jobs: Sequence[NewJob], now: datetime, *, unless_running: bool
    ) -> Batch | None:
        if self._closed:
            raise StoreClosed("the database is closed")
        request = BatchRequest(
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

    async def _write_alone(self, request: BatchRequest) -> None:
        try:
            (batch,) = await self._insert([request])
        except Exception as exc:
            _settle(request.outcome, exc)
        else:
            _settle(request.outcome, batch)

    async def _insert(self, group: Sequence[BatchRequest]) -> list[Batch | None]:
        for _ in range(ID_ATTEMPTS):
            ids = [new_batch_id() for _ in group]
            if len(set(ids)) < len(ids):
                continue
            try:
                return await self._write_group(group, ids)
            except BatchIdTaken:
                continue
        raise StoreUnavailable("could not draw unused batch ids")


def new_batch(batch_id: str, request: BatchRequest) -> Batch:
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
        enterprise_id=batch.enterprise_id,
    )
