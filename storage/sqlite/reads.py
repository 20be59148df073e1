"""What the bot reads from the SQLite store: each query named after what its caller needs."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from storage.models import (
    PENDING_STATUS,
    Batch,
    Job,
    LanguageHints,
    ProviderAccountProblem,
    TranscriptionOptions,
    Workspace,
)
from storage.rows import states_sql
from storage.sqlite.base import StoreBase
from storage.sqlite.rows import (
    OPTIONS_COLUMNS,
    UNFINISHED,
    chunks,
    language_hints_of,
    placeholders,
    required_time,
    to_text,
    transcription_options_of,
)
from storage.states import (
    FINISHED_BATCH_STATES,
    FINISHED_JOB_STATES,
    RUNNING_BATCH_STATES,
    BatchState,
    JobMoves,
    JobState,
)
from storage.workspace_sql import team_condition

_OPEN = f"'{BatchState.OPEN.value}'"
#: Sorts after every other character (byte order, as SQLite compares text by default).
_LAST_CHARACTER = "\U0010ffff"
_FINISHED_BATCH = states_sql(FINISHED_BATCH_STATES)
_FINISHED_JOB = states_sql(FINISHED_JOB_STATES)
_RUNNING_BATCH = states_sql(RUNNING_BATCH_STATES)
_RUNNING_AT_PROVIDER = states_sql(JobMoves.KEEP_RUNNING.sources)
_OF_OPEN_BATCHES = f"batch_id IN (SELECT id FROM batches WHERE state = {_OPEN})"


class Reads(StoreBase):
    # -- jobs --------------------------------------------------------------------------------

    async def due_jobs(self, now: datetime) -> list[Job]:
        # A cycle reads what it may act on, not everything in flight.
        return await self._jobs(
            f"""WHERE {UNFINISHED} AND {_OF_OPEN_BATCHES}
                  AND batch_id IN (SELECT batch_id FROM jobs
                                   WHERE {UNFINISHED}
                                     AND (next_attempt_at IS NULL OR next_attempt_at <= ?))
                ORDER BY created_at, batch_id, position""",
            (to_text(now),),
        )

    async def unfinished_jobs(self) -> list[Job]:
        return await self._jobs(
            f"WHERE {UNFINISHED} AND {_OF_OPEN_BATCHES} ORDER BY created_at, batch_id, position"
        )

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        return await self._jobs(
            f"WHERE id IN ({placeholders(len(job_ids))}) ORDER BY batch_id, position",
            tuple(job_ids),
        )

    async def get_job(self, job_id: str) -> Job | None:
        jobs = await self._jobs("WHERE id = ?", (job_id,))
        return jobs[0] if jobs else None

    async def jobs_of(self, batch_id: str) -> list[Job]:
        return await self._jobs("WHERE batch_id = ? ORDER BY position", (batch_id,))

    async def jobs_of_batches(self, batch_ids: Sequence[str]) -> dict[str, list[Job]]:
        found: dict[str, list[Job]] = {batch_id: [] for batch_id in batch_ids}
        if not batch_ids:
            return found
        for job in await self._jobs(
            f"WHERE batch_id IN ({placeholders(len(batch_ids))}) ORDER BY batch_id, position",
            batch_ids,
        ):
            found[job.batch_id].append(job)
        return found

    async def count_in_flight(self) -> dict[str, int]:
        rows = await self._rows(
            f"""SELECT provider, COUNT(*) FROM jobs WHERE state IN {_RUNNING_AT_PROVIDER}
                AND {_OF_OPEN_BATCHES} GROUP BY provider"""
        )
        return {str(row[0]): int(row[1]) for row in rows}

    async def count_unfinished_jobs(self) -> int:
        (row,) = await self._rows(
            f"SELECT COUNT(*) FROM jobs WHERE {UNFINISHED} AND {_OF_OPEN_BATCHES}"
        )
        return int(row[0])

    async def stored_at_provider(self, provider: str) -> tuple[int, int]:
        # One statement, so that an upload recorded meanwhile is counted on one side or the
        # other; each side has an index of its own.
        ((files, size, sent_files, sent_size),) = await self._rows(
            """SELECT held.files, held.size, sent.files, sent.size
               FROM (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size FROM jobs
                     WHERE provider = ? AND cleaned_up = 0
                       AND provider_file_id IS NOT NULL) AS held,
                    (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size FROM jobs
                     WHERE sent_at IS NOT NULL AND provider = ? AND state = ?
                       AND provider_file_id IS NULL) AS sent""",
            (provider, provider, JobState.UPLOADING.value),
        )
        return int(files) + int(sent_files), int(size) + int(sent_size)

    async def jobs_to_clean_up(
        self, now: datetime, *, finished_early: Collection[str] = ()
    ) -> list[Job]:
        early = ""
        if finished_early:
            ended = states_sql({JobState.COMPLETED, JobState.FAILED})
            early = f"""OR (provider IN ({placeholders(len(finished_early))})
                            AND state IN {ended} AND sent_at IS NULL)"""
        # Looked for among the finished jobs not cleaned up (an index of their own) and the
        # jobs of cancelled batches, the one way a batch ends with jobs unfinished: not among
        # every job in flight.
        return await self._jobs(
            f"""WHERE id IN (
                    SELECT id FROM jobs WHERE cleaned_up = 0 AND state IN {_FINISHED_JOB}
                        AND (provider_file_id IS NOT NULL OR provider_job_id IS NOT NULL)
                    UNION ALL
                    SELECT j.id FROM batches AS c JOIN jobs AS j ON j.batch_id = c.id
                    WHERE c.state = '{BatchState.CANCELLED.value}' AND j.cleaned_up = 0)
                 AND cleaned_up = 0
                 AND (provider_file_id IS NOT NULL OR provider_job_id IS NOT NULL)
                 AND (EXISTS (SELECT 1 FROM batches b WHERE b.id = jobs.batch_id
                              AND b.state IN {_FINISHED_BATCH})
                      {early})
                 AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
               ORDER BY batch_id, position""",
            (*finished_early, to_text(now)),
        )

    async def jobs_with_unneeded_spool(self) -> list[Job]:
        return await self._jobs(
            f"""WHERE spool_path IS NOT NULL
                 AND EXISTS (SELECT 1 FROM batches b
                             WHERE b.id = jobs.batch_id AND b.state != {_OPEN})"""
        )

    async def lost_answers_to_recover(self) -> list[Job]:
        return await self._jobs(
            f"""WHERE sent_at IS NOT NULL
                 AND EXISTS (SELECT 1 FROM batches b
                             WHERE b.id = jobs.batch_id AND b.state != {_OPEN})"""
        )

    # -- batches -----------------------------------------------------------------------------

    async def get_batch(self, batch_id: str) -> Batch | None:
        batches = await self._batches("WHERE id = ?", (batch_id,))
        return batches[0] if batches else None

    async def language_hints_in_use(self, batch_ids: Collection[str]) -> dict[str, LanguageHints]:
        # Most batches have none: this reads the few open batches with some (an index of their
        # own), where asking by id would read every batch polled.
        rows = await self._rows(
            f"""SELECT id, language_hints, language_hints_strict FROM batches
                WHERE state = {_OPEN} AND language_hints != '[]'"""
        )
        wanted = set(batch_ids)
        return {row[0]: language_hints_of(row[1], row[2]) for row in rows if row[0] in wanted}

    async def language_hints_of(self, batch_ids: Collection[str]) -> dict[str, LanguageHints]:
        found: dict[str, LanguageHints] = {}
        for chunk in chunks(list(dict.fromkeys(batch_ids))):
            rows = await self._rows(
                f"""SELECT id, language_hints, language_hints_strict FROM batches
                    WHERE id IN ({placeholders(len(chunk))})""",
                chunk,
            )
            found.update({row[0]: language_hints_of(row[1], row[2]) for row in rows})
        return found

    async def transcription_options_in_use(
        self, batch_ids: Collection[str]
    ) -> dict[str, TranscriptionOptions]:
        # Most batches ask for nothing: as for the language hints, few rows are read.
        rows = await self._rows(
            f"""SELECT id, {OPTIONS_COLUMNS} FROM batches
                WHERE state = {_OPEN} AND (vocabulary != '[]' OR context_text IS NOT NULL
                    OR translation IS NOT NULL OR mark_doubtful != 0)"""
        )
        wanted = set(batch_ids)
        return {row[0]: transcription_options_of(*row[1:]) for row in rows if row[0] in wanted}

    async def transcription_options_of(
        self, batch_ids: Collection[str]
    ) -> dict[str, TranscriptionOptions]:
        found: dict[str, TranscriptionOptions] = {}
        for chunk in chunks(list(dict.fromkeys(batch_ids))):
            rows = await self._rows(
                f"""SELECT id, {OPTIONS_COLUMNS} FROM batches
                    WHERE id IN ({placeholders(len(chunk))})""",
                chunk,
            )
            found.update({row[0]: transcription_options_of(*row[1:]) for row in rows})
        return found

    async def batches_to_deliver(self, now: datetime) -> list[Batch]:
        # Only a batch with a finished job can have finished them all: the index
        # batches_with_finished_jobs holds those, not every running batch.
        return await self._batches(
            f"""WHERE b.state IN {_RUNNING_BATCH} AND b.jobs_finished_at IS NOT NULL
                  AND (b.next_attempt_at IS NULL OR b.next_attempt_at <= ?)
                  AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = b.id
                                  AND {UNFINISHED})
                ORDER BY b.created_at""",
            (to_text(now),),
        )

    async def batches_needing_progress(
        self, now: datetime, *, after: timedelta, every: timedelta, held_note: str
    ) -> list[Batch]:
        # Others cannot have a different message, so they are not read at all. The batches
        # looked at are found through indexes, each reason on its own (a superset, which the
        # full condition then narrows): without a message; being posted; with a finished job;
        # with a job held; with a message that says work is held. Not every open batch.
        return await self._batches(
            f"""WHERE b.id IN (
                    SELECT id FROM batches WHERE state = {_OPEN} AND status_ts IS NULL
                    UNION ALL
                    SELECT id FROM batches WHERE state = {_OPEN} AND status_ts = ?
                    UNION ALL
                    SELECT id FROM batches WHERE state IN {_RUNNING_BATCH}
                        AND jobs_finished_at IS NOT NULL
                    UNION ALL
                    SELECT batch_id FROM jobs WHERE held_by IS NOT NULL AND {UNFINISHED}
                    UNION ALL
                    SELECT id FROM batches WHERE state = {_OPEN}
                        AND status_text >= ? AND status_text < ?)
                 AND b.state = {_OPEN}
                 AND ((b.status_ts IS NULL AND b.created_at <= ?)
                      OR b.status_ts = ?
                      OR ((b.status_updated_at IS NULL OR b.status_updated_at <= ?)
                          AND (EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id
                                       AND j.finished_at > b.status_updated_at)
                               OR (EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id
                                           AND j.held_by IS NOT NULL AND j.{UNFINISHED})
                                   != (b.status_text IS NOT NULL
                                       AND substr(b.status_text, 1, ?) = ?)))))
               ORDER BY b.created_at""",
            (
                PENDING_STATUS,
                held_note,
                # Every text that starts with the note sorts from it to this (byte order).
                held_note + _LAST_CHARACTER,
                to_text(now - after),
                PENDING_STATUS,
                to_text(now - every),
                len(held_note),
                held_note,
            ),
        )

    async def cancelled_batches_to_settle(self, note: str) -> list[Batch]:
        return await self._batches(
            """WHERE state = ? AND status_ts IS NOT NULL AND channel_id != ''
                 AND (status_text IS NULL OR status_text != ?)""",
            (BatchState.CANCELLED.value, note),
        )

    async def account_problems(self) -> list[ProviderAccountProblem]:
        rows = await self._rows(
            """SELECT provider, reason, detail, message, steps, since
               FROM provider_account_problems ORDER BY provider"""
        )
        return [
            ProviderAccountProblem(
                provider=row[0],
                reason=row[1],
                detail=row[2],
                message=row[3],
                steps=json.loads(row[4]),
                since=required_time(row[5]),
            )
            for row in rows
        ]

    # -- channel views -----------------------------------------------------------------------

    async def running_batches(self, workspace: Workspace, channel_id: str) -> list[Batch]:
        team, values = team_condition(workspace, "?")
        return await self._batches(
            f"""WHERE {team} AND channel_id = ? AND state IN {_RUNNING_BATCH}
                ORDER BY created_at, id""",
            (*values, channel_id),
        )

    async def finished_batches(
        self, workspace: Workspace, channel_id: str, limit: int
    ) -> list[Batch]:
        team, values = team_condition(workspace, "?")
        return await self._batches(
            f"""WHERE {team} AND channel_id = ? AND state IN {_FINISHED_BATCH}
                ORDER BY updated_at DESC, created_at DESC LIMIT ?""",
            (*values, channel_id, limit),
        )

    async def active_batch_for_message(
        self, workspace: Workspace, channel_id: str, message_ts: str
    ) -> Batch | None:
        team, values = team_condition(workspace, "?")
        batches = await self._batches(
            f"""WHERE {team} AND channel_id = ? AND message_ts = ? AND state IN {_RUNNING_BATCH}
                ORDER BY created_at DESC LIMIT 1""",
            (*values, channel_id, message_ts),
        )
        return batches[0] if batches else None

    async def last_failed_batch(self, workspace: Workspace, channel_id: str) -> Batch | None:
        # A batch already retried (by a later batch for the same message) is left out: retrying
        # it twice would post the same transcript twice.
        team, values = team_condition(workspace, "?", "b")
        batches = await self._batches(
            f"""WHERE {team} AND channel_id = ? AND state IN (?, ?)
                 AND EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.state = ?)
                 AND NOT EXISTS (SELECT 1 FROM batches later
                                 WHERE later.team_id IS b.team_id
                                   AND later.channel_id = b.channel_id
                                   AND later.message_ts = b.message_ts
                                   AND later.created_at > b.created_at)
               ORDER BY created_at DESC LIMIT 1""",
            (
                *values,
                channel_id,
                BatchState.DELIVERED.value,
                BatchState.UNDELIVERABLE.value,
                JobState.FAILED.value,
            ),
        )
        return batches[0] if batches else None

    # -- figures -----------------------------------------------------------------------------

    async def count_jobs_by_state_and_provider(self) -> dict[tuple[str, str], int]:
        rows = await self._rows(
            "SELECT state, provider, COUNT(*) FROM jobs GROUP BY state, provider"
        )
        return {(str(row[0]), str(row[1])): int(row[2]) for row in rows}

    async def count_batches_by_state(self) -> dict[str, int]:
        rows = await self._rows("SELECT state, COUNT(*) FROM batches GROUP BY state")
        return {str(row[0]): int(row[1]) for row in rows}
