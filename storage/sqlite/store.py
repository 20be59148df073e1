"""The SQLite store: one file, one process (:class:`storage.store.Store` on SQLite)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from storage.models import (
    Batch,
    ChannelSettings,
    Leases,
    NewBatch,
    NewJob,
    StillRunning,
    Workspace,
)
from storage.rows import states_sql
from storage.sqlite.batch_steps import BatchSteps
from storage.sqlite.connection import Database
from storage.sqlite.installations import InstallationSteps
from storage.sqlite.job_steps import JobSteps
from storage.sqlite.leases import LeaseSteps
from storage.sqlite.new_batches import batch_writer
from storage.sqlite.reads import Reads
from storage.sqlite.rows import to_text, translation_of, translation_text
from storage.sqlite.speakers import SpeakerSteps
from storage.sqlite.workspaces import WorkspaceSteps
from storage.states import FINISHED_BATCH_STATES


class SQLiteStore(
    LeaseSteps, JobSteps, BatchSteps, SpeakerSteps, InstallationSteps, WorkspaceSteps, Reads
):
    """Every method's contract is the protocol's (:class:`storage.store.Store`)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._new_batches = batch_writer(database)
        #: Channel settings read or saved so far. One process is the only writer of its
        #: database (its process lock sees to that), so they are kept in memory once read.
        #: By team id and channel id.
        self._channel_settings: dict[tuple[str, str], ChannelSettings] = {}

    backend = "sqlite"

    async def record_still_running(
        self, polled: Sequence[StillRunning], now: datetime, *, owner: str | None = None
    ) -> int:
        recorded = await super().record_still_running(polled, now)
        if owner is not None:
            # The leases are this process's memory: given back once the answers are saved.
            await self.release_leases(owner, Leases(jobs=frozenset(p.job_id for p in polled)))
        return recorded

    @classmethod
    async def open(
        cls, path: Path | str, *, migrate: bool = True, exclusive: bool = True
    ) -> SQLiteStore:
        """Open (creating it if needed, readable by its owner only) and migrate the database at
        ``path``, holding its process lock until closed.

        Raises :class:`storage.store.DatabaseInUse` when another process holds the lock (not
        taken without ``exclusive``: to read beside a running bot, without ``migrate`` too),
        :class:`storage.store.SchemaTooNew` for a database a newer version migrated,
        :class:`storage.store.SchemaTooOld` for an older one not to be migrated, and
        :class:`storage.store.StoreUnavailable` when it cannot be opened."""
        return cls(await Database.open(path, migrate=migrate, exclusive=exclusive))

    @property
    def migrated(self) -> tuple[int, int]:
        """The schema version found when opening, and the one it is at now."""
        return self._database.migrated

    async def close(self) -> None:
        await self._new_batches.close()
        await self._database.close()

    async def ping(self) -> bool:
        return bool(await self._rows("SELECT 1"))

    # -- intake ------------------------------------------------------------------------------

    async def remember_event(self, event_id: str, now: datetime) -> bool:
        async with self._database.transaction() as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO processed_events (event_id, seen_at) VALUES (?, ?)",
                (event_id, to_text(now)),
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
        return await self._new_batches.create(batch, jobs, now, unless_running=unless_running)

    async def channel_settings(self, workspace: Workspace, channel_id: str) -> ChannelSettings:
        key = (workspace.team_id, channel_id)
        known = self._channel_settings.get(key)
        if known is None:
            rows = await self._rows(
                """SELECT provider, auto, language_hints, language_hints_strict, vocabulary,
                          context_text, translation, mark_doubtful
                   FROM channel_settings WHERE team_id = ? AND channel_id = ?""",
                key,
            )
            known = ChannelSettings(channel_id=channel_id)
            for provider, auto, hints, strict, vocabulary, context, translation, doubtful in rows:
                known = ChannelSettings(
                    channel_id=channel_id,
                    provider=provider,
                    auto=bool(auto),
                    language_hints=json.loads(hints),
                    language_hints_strict=bool(strict),
                    vocabulary=json.loads(vocabulary),
                    context=context,
                    translation=translation_of(translation),
                    mark_doubtful=bool(doubtful),
                )
            self._channel_settings[key] = known
        # A copy: a caller changing it before saving must not change what others read.
        return _copy(known)

    async def save_channel_settings(
        self, workspace: Workspace, settings: ChannelSettings, now: datetime
    ) -> None:
        async with self._database.transaction() as db:
            await db.execute(
                """INSERT INTO channel_settings
                       (team_id, enterprise_id, channel_id, provider, auto, language_hints,
                        language_hints_strict, vocabulary, context_text, translation,
                        mark_doubtful, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (team_id, channel_id) DO UPDATE SET
                       enterprise_id = excluded.enterprise_id, provider = excluded.provider,
                       auto = excluded.auto, language_hints = excluded.language_hints,
                       language_hints_strict = excluded.language_hints_strict,
                       vocabulary = excluded.vocabulary, context_text = excluded.context_text,
                       translation = excluded.translation,
                       mark_doubtful = excluded.mark_doubtful,
                       updated_at = excluded.updated_at""",
                (
                    workspace.team_id,
                    workspace.enterprise_id,
                    settings.channel_id,
                    settings.provider,
                    int(settings.auto),
                    json.dumps(settings.language_hints),
                    int(settings.language_hints_strict),
                    json.dumps(settings.vocabulary),
                    settings.context,
                    translation_text(settings.translation),
                    int(settings.mark_doubtful),
                    to_text(now),
                ),
            )
        self._channel_settings[(workspace.team_id, settings.channel_id)] = _copy(settings)

    def _forget_channel_settings(self) -> None:
        self._channel_settings.clear()

    # -- retention ---------------------------------------------------------------------------

    async def purge_transcripts_before(self, cutoff: datetime, now: datetime) -> int:
        # What was said goes; the bookkeeping (file names, states, times) stays for ``status``.
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"""UPDATE jobs SET transcript = NULL, raw_result = NULL, updated_at = ?
                    WHERE (transcript IS NOT NULL OR raw_result IS NOT NULL)
                      AND batch_id IN (SELECT id FROM batches
                                       WHERE state IN {states_sql(FINISHED_BATCH_STATES)}
                                         AND updated_at < ?)""",
                (to_text(now), to_text(cutoff)),
            )
            # Who spoke goes with what was said; the reply keeps showing the names it has.
            await db.execute(
                f"""DELETE FROM speaker_names
                    WHERE batch_id IN (SELECT id FROM batches
                                       WHERE state IN {states_sql(FINISHED_BATCH_STATES)}
                                         AND updated_at < ?)""",
                (to_text(cutoff),),
            )
            await db.execute("DELETE FROM processed_events WHERE seen_at < ?", (to_text(cutoff),))
        return cursor.rowcount


def _copy(settings: ChannelSettings) -> ChannelSettings:
    """Settings no one else holds: their lists are copies too."""
    return dataclasses.replace(
        settings,
        language_hints=list(settings.language_hints),
        vocabulary=list(settings.vocabulary),
    )
