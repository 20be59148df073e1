"""Speaker names, and the files attached to each reply, as the SQLite store records them."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from storage.models import Batch, ReplyFile, SpeakerNames, SpeakerNaming, Workspace
from storage.sqlite.base import StoreBase
from storage.sqlite.rows import placeholders, required_time, to_text, to_time
from storage.states import BatchState
from storage.workspace_sql import team_condition

_DELIVERED = f"'{BatchState.DELIVERED.value}'"
_NAMING_SELECT = """SELECT batch_id, names, version, shown, files_version, replacing_since,
                           attempts, next_attempt_at, failing_since, updated_at
                    FROM speaker_names"""


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
        names=json.loads(names),
        version=version,
        shown=shown,
        files_version=files_version,
        replacing_since=to_time(replacing_since),
        attempts=attempts,
        next_attempt_at=to_time(next_attempt_at),
        failing_since=to_time(failing_since),
        updated_at=required_time(updated_at),
    )


class SpeakerSteps(StoreBase):
    async def latest_reply_in_thread(
        self, workspace: Workspace, channel_id: str, thread_ts: str
    ) -> Batch | None:
        team, values = team_condition(workspace, "?")
        batches = await self._batches(
            f"""WHERE {team} AND channel_id = ? AND thread_ts = ? AND state = {_DELIVERED}
                  AND reply_ts IS NOT NULL
                ORDER BY delivered_at DESC, created_at DESC LIMIT 1""",
            (*values, channel_id, thread_ts),
        )
        return batches[0] if batches else None

    async def speaker_naming(self, batch_id: str) -> SpeakerNaming | None:
        rows = await self._rows(f"{_NAMING_SELECT} WHERE batch_id = ?", (batch_id,))
        return _naming_of(rows[0]) if rows else None

    async def name_speakers(
        self, batch_id: str, names: SpeakerNames, now: datetime
    ) -> SpeakerNaming | None:
        stamp = to_text(now)
        async with self._database.transaction() as db:
            # "WHERE" in the SELECT also tells SQLite's parser that ON CONFLICT is the upsert's.
            cursor = await db.execute(
                f"""INSERT INTO speaker_names (batch_id, names, version, updated_at)
                    SELECT id, ?, 1, ? FROM batches
                    WHERE id = ? AND state = {_DELIVERED} AND reply_ts IS NOT NULL
                    ON CONFLICT (batch_id) DO UPDATE SET names = excluded.names,
                        version = speaker_names.version + 1, attempts = 0,
                        next_attempt_at = NULL, failing_since = NULL,
                        updated_at = excluded.updated_at""",
                (json.dumps(names, sort_keys=True), stamp, batch_id),
            )
            if cursor.rowcount != 1:
                return None
            (row,) = await db.execute_fetchall(f"{_NAMING_SELECT} WHERE batch_id = ?", (batch_id,))
        return _naming_of(row)

    async def namings_to_show(self, now: datetime) -> list[SpeakerNaming]:
        rows = await self._rows(
            f"""{_NAMING_SELECT} WHERE shown < version
                  AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
                ORDER BY updated_at, batch_id""",
            (to_text(now),),
        )
        return [_naming_of(row) for row in rows]

    async def record_names_shown(self, batch_id: str, version: int, now: datetime) -> bool:
        return await self._update_naming(
            batch_id,
            """shown = MAX(shown, ?), attempts = 0, next_attempt_at = NULL,
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
            "attempts = ?, next_attempt_at = ?, failing_since = ?",
            (attempts, to_text(retry_at), to_text(failing_since)),
            now,
        )

    async def reply_files(self, batch_id: str) -> list[ReplyFile]:
        rows = await self._rows(
            """SELECT file_id, filename, retiring FROM reply_files WHERE batch_id = ?
               ORDER BY created_at, file_id""",
            (batch_id,),
        )
        return [ReplyFile(file_id=row[0], filename=row[1], retiring=bool(row[2])) for row in rows]

    async def record_reply_files(
        self, batch_id: str, files: Sequence[ReplyFile], now: datetime
    ) -> int:
        if not files:
            return 0
        async with self._database.transaction() as db:
            cursor = await db.executemany(
                """INSERT OR IGNORE INTO reply_files (batch_id, file_id, filename, retiring,
                                                      created_at)
                   VALUES (?, ?, ?, ?, ?)""",
                [
                    (batch_id, each.file_id, each.filename, int(each.retiring), to_text(now))
                    for each in files
                ],
            )
        return cursor.rowcount

    async def begin_file_replacement(self, batch_id: str, now: datetime) -> SpeakerNaming | None:
        stamp = to_text(now)
        async with self._database.transaction() as db:
            cursor = await db.execute(
                """UPDATE speaker_names SET replacing_since = ?, updated_at = ?
                   WHERE batch_id = ? AND replacing_since IS NULL""",
                (stamp, stamp, batch_id),
            )
            if cursor.rowcount == 1:
                await db.execute(
                    "UPDATE reply_files SET retiring = 1 WHERE batch_id = ?", (batch_id,)
                )
            rows = list(
                await db.execute_fetchall(f"{_NAMING_SELECT} WHERE batch_id = ?", (batch_id,))
            )
        return _naming_of(rows[0]) if rows else None

    async def finish_file_replacement(
        self, batch_id: str, files: Sequence[ReplyFile], version: int, now: datetime
    ) -> bool:
        stamp = to_text(now)
        async with self._database.transaction() as db:
            cursor = await db.execute(
                """UPDATE speaker_names SET replacing_since = NULL,
                       files_version = MAX(files_version, ?), updated_at = ?
                   WHERE batch_id = ? AND replacing_since IS NOT NULL""",
                (version, stamp, batch_id),
            )
            if cursor.rowcount != 1:
                return False
            await db.executemany(
                """INSERT INTO reply_files (batch_id, file_id, filename, retiring, created_at)
                   VALUES (?, ?, ?, 0, ?)
                   ON CONFLICT (batch_id, file_id) DO UPDATE SET retiring = 0""",
                [(batch_id, each.file_id, each.filename, stamp) for each in files],
            )
        return True

    async def forget_reply_files(
        self, batch_id: str, file_ids: Collection[str], now: datetime
    ) -> int:
        if not file_ids:
            return 0
        ids = list(file_ids)
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"""DELETE FROM reply_files
                    WHERE batch_id = ? AND file_id IN ({placeholders(len(ids))})""",
                (batch_id, *ids),
            )
        return cursor.rowcount

    async def _update_naming(
        self, batch_id: str, assignments: str, values: Sequence[Any], now: datetime
    ) -> bool:
        async with self._database.transaction() as db:
            cursor = await db.execute(
                f"UPDATE speaker_names SET {assignments}, updated_at = ? WHERE batch_id = ?",
                (*values, to_text(now), batch_id),
            )
        return cursor.rowcount == 1
