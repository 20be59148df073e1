"""The PostgreSQL store: one database shared by any number of processes
(:class:`storage.store.Store` on PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from storage.models import Batch, ChannelSettings, NewBatch, NewJob, Workspace
from storage.postgres.base import StoreBase
from storage.postgres.batch_steps import BatchSteps
from storage.postgres.connection import Database
from storage.postgres.installations import InstallationSteps
from storage.postgres.job_steps import JobSteps
from storage.postgres.leases import LeaseSteps
from storage.postgres.new_batches import batch_writer
from storage.postgres.reads import Reads
from storage.postgres.rows import safe_text, to_jsonb, translation_of, translation_text
from storage.postgres.speakers import SpeakerSteps
from storage.postgres.workspaces import WorkspaceSteps
from storage.rows import states_sql
from storage.states import FINISHED_BATCH_STATES


class PostgresStore(
    LeaseSteps,
    JobSteps,
    BatchSteps,
    SpeakerSteps,
    InstallationSteps,
    WorkspaceSteps,
    Reads,
    StoreBase,
):
    """Every method's contract is the protocol's (:class:`storage.store.Store`). Nothing is kept
    in memory between calls: another process may change any row at any time."""

    backend = "postgresql"

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self._new_batches = batch_writer(database)

    @classmethod
    async def open(
        cls, url: str, *, migrate: bool = True, min_size: int = 2, max_size: int = 10
    ) -> PostgresStore:
        """Connect to the database at ``url`` (``postgresql://user:password@host:5432/name``),
        migrate it, and keep a pool of ``min_size`` to ``max_size`` connections.

        Raises :class:`storage.store.StoreUnavailable` (with the server's reason) when it cannot
        be reached, :class:`storage.store.SchemaTooNew` for a database a newer version migrated,
        and without ``migrate``, :class:`storage.store.SchemaTooOld` for an older one."""
        return cls(await Database.open(url, migrate=migrate, min_size=min_size, max_size=max_size))

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
        changed = await self._execute(
            """INSERT INTO processed_events (event_id, seen_at) VALUES (%s, %s)
               ON CONFLICT (event_id) DO NOTHING""",
            (safe_text(event_id), now),
        )
        return changed == 1

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
        # Read every time: another process may have changed them a moment ago.
        rows = await self._rows(
            """SELECT provider, auto, language_hints, language_hints_strict, vocabulary,
                      context_text, translation, mark_doubtful
               FROM channel_settings WHERE team_id = %s AND channel_id = %s""",
            (safe_text(workspace.team_id), safe_text(channel_id)),
        )
        if not rows:
            return ChannelSettings(channel_id=channel_id)
        ((provider, auto, hints, strict, vocabulary, context, translation, doubtful),) = rows
        return ChannelSettings(
            channel_id=channel_id,
            provider=provider,
            auto=auto,
            language_hints=list(hints),
            language_hints_strict=strict,
            vocabulary=list(vocabulary),
            context=context,
            translation=translation_of(translation),
            mark_doubtful=doubtful,
        )

    async def save_channel_settings(
        self, workspace: Workspace, settings: ChannelSettings, now: datetime
    ) -> None:
        await self._execute(
            """INSERT INTO channel_settings
                   (team_id, enterprise_id, channel_id, provider, auto, language_hints,
                    language_hints_strict, vocabulary, context_text, translation, mark_doubtful,
                    updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (team_id, channel_id) DO UPDATE SET
                   enterprise_id = excluded.enterprise_id, provider = excluded.provider,
                   auto = excluded.auto, language_hints = excluded.language_hints,
                   language_hints_strict = excluded.language_hints_strict,
                   vocabulary = excluded.vocabulary, context_text = excluded.context_text,
                   translation = excluded.translation, mark_doubtful = excluded.mark_doubtful,
                   updated_at = excluded.updated_at""",
            (
                safe_text(workspace.team_id),
                safe_text(workspace.enterprise_id),
                safe_text(settings.channel_id),
                settings.provider,
                settings.auto,
                to_jsonb(settings.language_hints),
                settings.language_hints_strict,
                to_jsonb(settings.vocabulary),
                safe_text(settings.context),
                translation_text(settings.translation),
                settings.mark_doubtful,
                now,
            ),
        )

    # -- retention ---------------------------------------------------------------------------

    async def purge_transcripts_before(self, cutoff: datetime, now: datetime) -> int:
        # What was said goes; the bookkeeping (file names, states, times) stays for ``status``.
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"""UPDATE jobs SET transcript = NULL, raw_result = NULL, updated_at = %s
                    WHERE (transcript IS NOT NULL OR raw_result IS NOT NULL)
                      AND batch_id IN (SELECT id FROM batches
                                       WHERE state IN {states_sql(FINISHED_BATCH_STATES)}
                                         AND updated_at < %s)""",
                (now, cutoff),
            )
            # Who spoke goes with what was said; the reply keeps showing the names it has.
            await db.execute(
                f"""DELETE FROM speaker_names
                    WHERE batch_id IN (SELECT id FROM batches
                                       WHERE state IN {states_sql(FINISHED_BATCH_STATES)}
                                         AND updated_at < %s)""",
                (cutoff,),
            )
            await db.execute("DELETE FROM processed_events WHERE seen_at < %s", (cutoff,))
        return cursor.rowcount
