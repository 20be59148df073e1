"""Speaker names, and the files attached to each reply, as the PostgreSQL store records them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from storage.models import Batch, ReplyFile, SpeakerNames, SpeakerNaming, Workspace
from storage.postgres.base import StoreBase, columns
from storage.postgres.rows import safe_text, to_jsonb
from storage.states import BatchState
from storage.workspace_sql import team_condition

_DELIVERED = f"'{BatchState.DELIVERED.value}'"
_NAMING_COLUMNS = """batch_id, names, version, shown, files_version, replacing_since, attempts,
                     next_attempt_at, failing_since, updated_at"""
_NAMING_SELECT = f"SELECT {_NAMING_COLUMNS} FROM speaker_names"


def _naming_of(row: Sequence[Any]) -> SpeakerNaming:
    (
        batch_id,
        names,
        version,
        shown,
        files_version,
        replacing_since,
        attempts,
        next_attempt_at,
        failing_since,
        updated_at,
    ) = row
    return SpeakerNaming(
        batch_id=batch_id,
        names=names,
        version=version,
        shown=shown,
        files_version=files_version,
        replacing_since=replacing_since,
        attempts=attempts,
        next_attempt_at=next_attempt_at,
        failing_since=failing_since,
        updated_at=updated_at,
    )


class SpeakerSteps(StoreBase):
    async def latest_reply_in_thread(
        self, workspace: Workspace, channel_id: str, thread_ts: str
    ) -> Batch | None:
        team, values = team_condition(workspace, "%s")
        batches = await self._batches(
            f"""WHERE {team} AND channel_id = %s AND thread_ts = %s AND state = {_DELIVERED}
                  AND reply_ts IS NOT NULL
                ORDER BY delivered_at DESC, created_at DESC LIMIT 1""",
            (*(safe_text(value) for value in values), safe_text(channel_id), safe_text(thread_ts)),
        )
        return batches[0] if batches else None

    async def speaker_naming(self, batch_id: str) -> SpeakerNaming | None:
        rows = await self._rows(f"{_NAMING_SELECT} WHERE batch_id = %s", (safe_text(batch_id),))
        return _naming_of(rows[0]) if rows else None

    async def name_speakers(
        self, batch_id: str, names: SpeakerNames, now: datetime
    ) -> SpeakerNaming | None:
        # One statement: the batch's state is checked as the row is written.
        rows = await self._rows(
            f"""INSERT INTO speaker_names (batch_id, names, version, updated_at)
                SELECT id, %s, 1, %s FROM batches
                WHERE id = %s AND state = {_DELIVERED} AND reply_ts IS NOT NULL
                ON CONFLICT (batch_id) DO UPDATE SET names = excluded.names,
                    version = speaker_names.version + 1, attempts = 0, next_attempt_at = NULL,
                    failing_since = NULL, updated_at = excluded.updated_at
                RETURNING {_NAMING_COLUMNS}""",
            (to_jsonb(names), now, safe_text(batch_id)),
        )
        return _naming_of(rows[0]) if rows else None

    async def namings_to_show(self, now: datetime) -> list[SpeakerNaming]:
        rows = await self._rows(
            f"""{_NAMING_SELECT} WHERE shown < version
                  AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
                ORDER BY updated_at, batch_id""",
            (now,),
        )
        return [_naming_of(row) for row in rows]

    async def record_names_shown(self, batch_id: str, version: int, now: datetime) -> bool:
        return await self._update_naming(
            batch_id,
            """shown = GREATEST(shown, %s), attempts = 0, next_attempt_at = NULL,
               failing_since = NULL""",
            (version,),
            now,
        )

    async def schedule_naming_retry(
        self,
        batch_id: str,
        *,
        attempts: int,
        retry_at: datetime,
        failing_since: datetime,
        now: datetime,
    ) -> bool:
        return await self._update_naming(
            batch_id,
            "attempts = %s, next_attempt_at = %s, failing_since = %s",
            (attempts, retry_at, failing_since),
            now,
        )

    async def reply_files(self, batch_id: str) -> list[ReplyFile]:
        rows = await self._rows(
            """SELECT file_id, filename, retiring FROM reply_files WHERE batch_id = %s
               ORDER BY created_at, file_id""",
            (safe_text(batch_id),),
        )
        return [ReplyFile(file_id=row[0], filename=row[1], retiring=row[2]) for row in rows]

    async def record_reply_files(
        self, batch_id: str, files: Sequence[ReplyFile], now: datetime
    ) -> int:
        if not files:
            return 0
        rows = [
            (safe_text(each.file_id), safe_text(each.filename), each.retiring) for each in files
        ]
        return await self._execute(
            """INSERT INTO reply_files (batch_id, file_id, filename, retiring, created_at)
               SELECT %s, v.file_id, v.filename, v.retiring, %s
               FROM unnest(%b::text[], %b::text[], %b::boolean[]) AS v(file_id, filename, retiring)
               ON CONFLICT (batch_id, file_id) DO NOTHING""",
            (safe_text(batch_id), now, *columns(rows, 3)),
        )

    async def begin_file_replacement(self, batch_id: str, now: datetime) -> SpeakerNaming | None:
        async with self._database.transaction() as db:
            cursor = await db.execute(
                """UPDATE speaker_names SET replacing_since = %s, updated_at = %s
                   WHERE batch_id = %s AND replacing_since IS NULL""",
                (now, now, safe_text(batch_id)),
            )
            if cursor.rowcount == 1:
                await db.execute(
                    "UPDATE reply_files SET retiring = true WHERE batch_id = %s",
                    (safe_text(batch_id),),
                )
            cursor = await db.execute(
                f"{_NAMING_SELECT} WHERE batch_id = %s", (safe_text(batch_id),)
            )
            row = await cursor.fetchone()
        return _naming_of(row) if row is not None else None

    async def finish_file_replacement(
        self, batch_id: str, files: Sequence[ReplyFile], version: int, now: datetime
    ) -> bool:
        rows = [(safe_text(each.file_id), safe_text(each.filename)) for each in files]
        async with self._database.transaction() as db:
            cursor = await db.execute(
                """UPDATE speaker_names SET replacing_since = NULL,
                       files_version = GREATEST(files_version, %s), updated_at = %s
                   WHERE batch_id = %s AND replacing_since IS NOT NULL""",
                (version, now, safe_text(batch_id)),
            )
            if cursor.rowcount != 1:
                return False
            if rows:
                await db.execute(
                    """INSERT INTO reply_files (batch_id, file_id, filename, retiring, created_at)
                       SELECT %s, v.file_id, v.filename, false, %s
                       FROM unnest(%b::text[], %b::text[]) AS v(file_id, filename)
                       ON CONFLICT (batch_id, file_id) DO UPDATE SET retiring = false""",
                    (safe_text(batch_id), now, *columns(rows, 2)),
                )
        return True

    async def forget_reply_files(
        self, batch_id: str, file_ids: Collection[str], now: datetime
    ) -> int:
        if not file_ids:
            return 0
        return await self._execute(
            "DELETE FROM reply_files WHERE batch_id = %s AND file_id = ANY(%b::text[])",
            (safe_text(batch_id), [safe_text(each) for each in file_ids]),
        )

    async def _update_naming(
        self, batch_id: str, assignments: str, values: Sequence[Any], now: datetime
    ) -> bool:
        changed = await self._execute(
            f"UPDATE speaker_names SET {assignments}, updated_at = %s WHERE batch_id = %s",
            (*values, now, safe_text(batch_id)),
        )
        return changed == 1
