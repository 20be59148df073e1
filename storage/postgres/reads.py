"""What the bot reads from the PostgreSQL store: each query named after what its caller needs."""

from __future__ import annotations

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
from storage.postgres.base import StoreBase
from storage.postgres.rows import (
    OPTIONS_COLUMNS,
    UNFINISHED,
    language_hints_of,
    transcription_options_of,
)
from storage.rows import states_sql
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
_FINISHED_BATCH = states_sql(FINISHED_BATCH_STATES)
_FINISHED_JOB = states_sql(FINISHED_JOB_STATES)
_RUNNING_BATCH = states_sql(RUNNING_BATCH_STATES)
_RUNNING_AT_PROVIDER = states_sql(JobMoves.KEEP_RUNNING.sources)
_OF_OPEN_BATCHES = f"batch_id IN (SELECT id FROM batches WHERE state = {_OPEN})"
_JOB_ORDER = "ORDER BY created_at, batch_id, position"
#: Sorts after every other character (byte order, as ``COLLATE "C"`` compares).
_LAST_CHARACTER = "\U0010ffff"
#: How much of a progress text its index keeps (PostgreSQL migration 8): a held note is found
#: by its start, so it must be shorter.
_INDEXED_TEXT = 200


class Reads(StoreBase):
    # -- jobs --------------------------------------------------------------------------------

    async def due_jobs(self, now: datetime) -> list[Job]:
        # A cycle reads what it may act on, not everything in flight.
        return await self._jobs(
            f"""WHERE {UNFINISHED} AND {_OF_OPEN_BATCHES}
                  AND batch_id IN (SELECT batch_id FROM jobs
                                   WHERE {UNFINISHED}
                                     AND (next_attempt_at IS NULL OR next_attempt_at <= %s))
                {_JOB_ORDER}""",
            (now,),
        )

    async def unfinished_jobs(self) -> list[Job]:
        return await self._jobs(f"WHERE {UNFINISHED} AND {_OF_OPEN_BATCHES} {_JOB_ORDER}")

    async def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        if not job_ids:
            return []
        return await self._jobs(
            "WHERE id = ANY(%b::text[]) ORDER BY batch_id, position", (list(job_ids),)
        )

    async def get_job(self, job_id: str) -> Job | None:
        jobs = await self._jobs("WHERE id = %s", (job_id,))
        return jobs[0] if jobs else None

    async def jobs_of(self, batch_id: str) -> list[Job]:
        return await self._jobs("WHERE batch_id = %s ORDER BY position", (batch_id,))

    async def jobs_of_batches(self, batch_ids: Sequence[str]) -> dict[str, list[Job]]:
        found: dict[str, list[Job]] = {batch_id: [] for batch_id in batch_ids}
        if not batch_ids:
            return found
        for job in await self._jobs(
            "WHERE batch_id = ANY(%b::text[]) ORDER BY batch_id, position", (list(batch_ids),)
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
        # Two counts in one round trip; the first reads the index jobs_at_provider alone.
        ((files, size, sent_files, sent_size),) = await self._rows(
            """SELECT held.files, held.size, sent.files, sent.size
               FROM (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size FROM jobs
                     WHERE provider = %s AND NOT cleaned_up
                       AND provider_file_id IS NOT NULL) AS held,
                    (SELECT COUNT(*) AS files, COALESCE(SUM(size_bytes), 0) AS size FROM jobs
                     WHERE sent_at IS NOT NULL AND provider = %s AND state = %s
                       AND provider_file_id IS NULL) AS sent""",
            (provider, provider, JobState.UPLOADING.value),
        )
        return int(files) + int(sent_files), int(size) + int(sent_size)

    async def jobs_to_clean_up(
        self, now: datetime, *, finished_early: Collection[str] = ()
    ) -> list[Job]:
        ended = states_sql({JobState.COMPLETED, JobState.FAILED})
        # Looked for among the finished jobs not cleaned up (an index of their own) and the
        # jobs of cancelled batches, the one way a batch ends with jobs unfinished: not among
        # every job in flight.
        return await self._jobs(
            f"""WHERE id IN (
                    SELECT id FROM jobs WHERE NOT cleaned_up AND state IN {_FINISHED_JOB}
                        AND (provider_file_id IS NOT NULL OR provider_job_id IS NOT NULL)
                    UNION ALL
                    SELECT j.id FROM batches AS c JOIN jobs AS j ON j.batch_id = c.id
                    WHERE c.state = '{BatchState.CANCELLED.value}' AND NOT j.cleaned_up)
                 AND NOT cleaned_up
                 AND (provider_file_id IS NOT NULL OR provider_job_id IS NOT NULL)
                 AND (EXISTS (SELECT 1 FROM batches b WHERE b.id = jobs.batch_id
                              AND b.state IN {_FINISHED_BATCH})
                      OR (provider = ANY(%b::text[]) AND state IN {ended}
                          AND sent_at IS NULL))
                 AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
               ORDER BY batch_id, position""",
            (list(finished_early), now),
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
        batches = await self._batches("WHERE id = %s", (batch_id,))
        return batches[0] if batches else None

    async def language_hints_in_use(self, batch_ids: Collection[str]) -> dict[str, LanguageHints]:
        # Most batches have none: the ids are looked for in an index of the open batches with
        # some (batches_open_with_hints), small however many are polled or open.
        if not batch_ids:
            return {}
        rows = await self._rows(
            f"""SELECT id, language_hints, language_hints_strict FROM batches
                WHERE id = ANY(%b::text[])
                  AND state = {_OPEN} AND language_hints != '[]'::jsonb""",
            (list(dict.fromkeys(batch_ids)),),
        )
        return {row[0]: language_hints_of(row[1], row[2]) for row in rows}

    async def language_hints_of(self, batch_ids: Collection[str]) -> dict[str, LanguageHints]:
        if not batch_ids:
            return {}
        rows = await self._rows(
            """SELECT id, language_hints, language_hints_strict FROM batches
               WHERE id = ANY(%b::text[])""",
            (list(dict.fromkeys(batch_ids)),),
        )
        return {row[0]: language_hints_of(row[1], row[2]) for row in rows}

    async def transcription_options_in_use(
        self, batch_ids: Collection[str]
    ) -> dict[str, TranscriptionOptions]:
        # Most batches ask for nothing: as for the language hints (batches_open_with_options).
        if not batch_ids:
            return {}
        rows = await self._rows(
            f"""SELECT id, {OPTIONS_COLUMNS} FROM batches
                WHERE id = ANY(%b::text[])
                  AND state = {_OPEN} AND (vocabulary != '[]'::jsonb OR context_text IS NOT NULL
                    OR translation IS NOT NULL OR mark_doubtful)""",
            (list(dict.fromkeys(batch_ids)),),
        )
        return {row[0]: transcription_options_of(*row[1:]) for row in rows}

    async def transcription_options_of(
        self, batch_ids: Collection[str]
    ) -> dict[str, TranscriptionOptions]:
        if not batch_ids:
            return {}
        rows = await self._rows(
            f"SELECT id, {OPTIONS_COLUMNS} FROM batches WHERE id = ANY(%b::text[])",
            (list(dict.fromkeys(batch_ids)),),
        )
        return {row[0]: transcription_options_of(*row[1:]) for row in rows}

    async def batches_to_deliver(self, now: datetime) -> list[Batch]:
        # Only a batch with a finished job can have finished them all: the index
        # batches_with_finished_jobs holds those, not every running batch.
        return await self._batches(
            f"""WHERE b.state IN {_RUNNING_BATCH} AND b.jobs_finished_at IS NOT NULL
                  AND (b.next_attempt_at IS NULL OR b.next_attempt_at <= %s)
                  AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = b.id
                                  AND {UNFINISHED})
                ORDER BY b.created_at""",
            (now,),
        )

    async def batches_needing_progress(
        self, now: datetime, *, after: timedelta, every: timedelta, held_note: str
    ) -> list[Batch]:
        if len(held_note) >= _INDEXED_TEXT:
            raise ValueError(f"a held note is found by its first {_INDEXED_TEXT} characters")
        # Others cannot have a different message, so they are not read at all. The batches
        # looked at are found through indexes, each reason on its own (a superset, which the
        # full condition then narrows): without a message; being posted; with a finished job;
        # with a job held; with a message that says work is held. Not every open batch.
        return await self._batches(
            f"""WHERE b.id IN (
                    SELECT id FROM batches WHERE state = {_OPEN} AND status_ts IS NULL
                    UNION ALL
                    SELECT id FROM batches WHERE state = {_OPEN} AND status_ts = %(pending)s
                    UNION ALL
                    SELECT id FROM batches WHERE state IN {_RUNNING_BATCH}
                        AND jobs_finished_at IS NOT NULL
                    UNION ALL
                    SELECT batch_id FROM jobs WHERE held_by IS NOT NULL AND {UNFINISHED}
                    UNION ALL
                    SELECT id FROM batches WHERE state = {_OPEN}
                        AND left(status_text, {_INDEXED_TEXT}) COLLATE "C" >= %(note)s
                        AND left(status_text, {_INDEXED_TEXT}) COLLATE "C" < %(past_note)s)
                 AND b.state = {_OPEN}
                 AND ((b.status_ts IS NULL AND b.created_at <= %(after)s)
                      OR b.status_ts = %(pending)s
                      OR ((b.status_updated_at IS NULL OR b.status_updated_at <= %(every)s)
                          AND (EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id
                                       AND j.finished_at > b.status_updated_at)
                               OR (EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id
                                           AND j.held_by IS NOT NULL AND j.{UNFINISHED})
                                   != COALESCE(left(b.status_text, %(length)s) = %(note)s,
                                               false)))))
               ORDER BY b.created_at""",
            {
                "after": now - after,
                "pending": PENDING_STATUS,
                "every": now - every,
                "length": len(held_note),
                "note": held_note,
                # Every text that starts with the note sorts from it to this (byte order).
                "past_note": held_note + _LAST_CHARACTER,
            },
        )

    async def cancelled_batches_to_settle(self, note: str) -> list[Batch]:
        return await self._batches(
            """WHERE state = %s AND status_ts IS NOT NULL AND channel_id != ''
                 AND (status_text IS NULL OR status_text != %s)""",
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
                steps=row[4],
                since=row[5],
            )
            for row in rows
        ]

    # -- channel views -----------------------------------------------------------------------

    async def running_batches(self, workspace: Workspace, channel_id: str) -> list[Batch]:
        team, values = team_condition(workspace, "%s")
        return await self._batches(
            f"""WHERE {team} AND channel_id = %s AND state IN {_RUNNING_BATCH}
                ORDER BY created_at, id""",
            (*values, channel_id),
        )

    async def finished_batches(
        self, workspace: Workspace, channel_id: str, limit: int
    ) -> list[Batch]:
        team, values = team_condition(workspace, "%s")
        return await self._batches(
            f"""WHERE {team} AND channel_id = %s AND state IN {_FINISHED_BATCH}
                ORDER BY updated_at DESC, created_at DESC LIMIT %s""",
            (*values, channel_id, limit),
        )

    async def active_batch_for_message(
        self, workspace: Workspace, channel_id: str, message_ts: str
    ) -> Batch | None:
        team, values = team_condition(workspace, "%s")
        batches = await self._batches(
            f"""WHERE {team} AND channel_id = %s AND message_ts = %s
                  AND state IN {_RUNNING_BATCH}
                ORDER BY created_at DESC LIMIT 1""",
            (*values, channel_id, message_ts),
        )
        return batches[0] if batches else None

    async def last_failed_batch(self, workspace: Workspace, channel_id: str) -> Batch | None:
        # A batch already retried (by a later batch for the same message) is left out: retrying
        # it twice would post the same transcript twice.
        team, values = team_condition(workspace, "%s", "b")
        batches = await self._batches(
            f"""WHERE {team} AND channel_id = %s AND state IN (%s, %s)
                 AND EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.state = %s)
                 AND NOT EXISTS (SELECT 1 FROM batches later
                                 WHERE later.team_id IS NOT DISTINCT FROM b.team_id
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
