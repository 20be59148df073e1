"""Room at a provider with storage caps (``max_stored_files`` and ``max_stored_bytes``: how many
files, and how many bytes, one account may keep there): uploads beyond them wait here, with their
spool files, until deleting finished ones frees room.

The room is counted in the database, and taken as the uploads are marked sent, under a lock
(:meth:`storage.store.Store.take_upload_room`): the caps hold across every process sharing the
account. A cycle's plan (which downloads to start) is only an estimate from the same counts."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.providers.base import Provider
from bot.work.context import Unit, WorkContext, needs_transfer
from storage.models import Job

log = logging.getLogger(__name__)


class StorageRoom:
    def __init__(self, ctx: WorkContext) -> None:
        self._ctx = ctx

    async def plan(self, units: Sequence[Unit]) -> list[Unit]:
        """The transfer units (oldest first) whose uploads fit in their provider's storage caps
        now; the others wait, unchanged, for a later cycle.

        First come, first served: once one unit must wait, every later one of the same
        provider waits too, so a large file is not passed for ever by smaller ones. Waiting
        costs no time of a job's age allowance: nothing failed.
        """
        providers = self._ctx.providers
        capped = {
            jobs[0].provider
            for _, jobs in units
            if has_storage_caps(providers.get(jobs[0].provider))
        }
        if not capped:
            return list(units)
        planned = {name: list(await self._ctx.store.stored_at_provider(name)) for name in capped}
        full: set[str] = set()
        going: list[Unit] = []
        for key, jobs in units:
            provider = providers[jobs[0].provider] if jobs[0].provider in capped else None
            if provider is None:
                going.append((key, jobs))
                continue
            if provider.name in full:
                continue
            # Sizes from Slack; an upload already sent is counted at the provider already.
            uploads = [job for job in jobs if needs_transfer(job) and job.sent_at is None]
            size = sum(job.size_bytes or 0 for job in uploads)
            held = planned[provider.name]
            if not fits(provider, held, len(uploads), size):
                full.add(provider.name)
                continue
            held[0] += len(uploads)
            held[1] += size
            going.append((key, jobs))
        return going

    async def take(self, provider: Provider, jobs: Sequence[Job]) -> bool:
        """Mark ``jobs`` sent if their files fit in the provider's storage caps, taking the
        room; False, with nothing changed, when they do not fit yet.

        A job already marked sent (its answer lost) is in the count of what the provider holds
        already: it takes no more room when it goes out again."""
        new = [job for job in jobs if job.sent_at is None]
        if not new:
            return True
        now = self._ctx.clock()
        if not await self._ctx.store.take_upload_room(
            provider.name,
            [job.id for job in new],
            max_files=provider.max_stored_files,
            max_bytes=provider.max_stored_bytes,
            now=now,
        ):
            log.info("jobs %s wait for room at %s", [job.id for job in jobs], provider.name)
            return False
        for job in new:
            job.sent_at = now
        return True


def has_storage_caps(provider: Provider | None) -> bool:
    return provider is not None and (
        provider.max_stored_files is not None or provider.max_stored_bytes is not None
    )


def fits(provider: Provider, held: Sequence[int], files: int, size: int) -> bool:
    """Whether ``files`` more files of ``size`` bytes stay within the provider's caps, given
    the (files, bytes) ``held`` there. With nothing held, anything goes: the provider decides."""
    held_files, held_bytes = held
    if held_files == 0:
        return True
    return (
        provider.max_stored_files is None or held_files + files <= provider.max_stored_files
    ) and (provider.max_stored_bytes is None or held_bytes + size <= provider.max_stored_bytes)
