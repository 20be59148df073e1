"""How rows and values look in SQLite, and back: times, JSON columns, states, whole rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from storage.models import Batch, Job, LanguageHints, TranscriptionOptions
from storage.rows import BATCH_STATES, JOB_KINDS, JOB_STATES, states_sql
from storage.states import FINISHED_JOB_STATES
from storage.store import InvalidRecord, naive_time_message

#: Ids bound in one ``IN (…)``: far below SQLite's limit on variables, whatever the build.
IDS_PER_QUERY = 500


#: Jobs with a step left: exactly the condition of the index ``jobs_unfinished`` (migration 7).
UNFINISHED = f"state NOT IN {states_sql(FINISHED_JOB_STATES)}"


def to_text(value: datetime | None) -> str | None:
    """The stored form, ``2026-11-21T09:00:00.000000Z``: fixed width, so text order is time
    order."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.utcoffset() is None:
            # astimezone would take it as local time, where PostgreSQL takes it as UTC.
            raise InvalidRecord(naive_time_message(value))
        value = value.astimezone(UTC)
    # isoformat is several times cheaper than strftime, which showed in cycles of many jobs.
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def required_text(value: datetime) -> str:
    text = to_text(value)
    assert text is not None
    return text


def to_time(value: str | None) -> datetime | None:
    # fromisoformat reads the stored "...Z" form and is far cheaper than strptime, which
    # mattered: a cycle over thousands of jobs parses several times per row.
    return None if value is None else datetime.fromisoformat(value)


def required_time(value: str) -> datetime:
    parsed = to_time(value)
    assert parsed is not None
    return parsed


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def placeholders(count: int) -> str:
    return ",".join("?" * count)


def chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


# Rows are unpacked by position, and enums found in a dict: a poll cycle converts thousands of
# rows, and this costs a third of reading each column by name and calling the Enum. The lists are
# kept dense (formatting off) so that each stays readable in one screen.

# fmt: off


def batch_of(row: Sequence[Any]) -> Batch:
    (
        id_, team_id, channel_id, message_ts, thread_ts, user_id, provider, source, state,
        language_hints, reply_ts, attempts, next_attempt_at, created_at, updated_at, delivered_at,
        status_ts, status_text, status_updated_at, failing_since, language_hints_strict,
        enterprise_id,
    ) = row
    return Batch(
        id=id_, team_id=team_id, channel_id=channel_id, message_ts=message_ts,
        thread_ts=thread_ts, user_id=user_id, provider=provider, source=source,
        state=BATCH_STATES[state],
        language_hints=json.loads(language_hints) if language_hints != "[]" else [],
        reply_ts=reply_ts, attempts=attempts, next_attempt_at=to_time(next_attempt_at),
        created_at=required_time(created_at), updated_at=required_time(updated_at),
        delivered_at=to_time(delivered_at), status_ts=status_ts, status_text=status_text,
        status_updated_at=to_time(status_updated_at), failing_since=to_time(failing_since),
        language_hints_strict=bool(language_hints_strict), enterprise_id=enterprise_id,
    )


def job_of(row: Sequence[Any]) -> Job:
    (
        id_, batch_id, position, kind, provider, filename, slack_file_id, url, download_url,
        mimetype, size_bytes, needs_file_info, state, attempts, next_attempt_at, error,
        error_detail, spool_path, provider_file_id, provider_upload_id, provider_job_id,
        provider_eta_at, transcript, raw_result, attachment_uploaded, cleaned_up, created_at,
        updated_at, finished_at, stalled_since, sent_at, resubmissions, duration_ms, held_by,
    ) = row
    return Job(
        id=id_, batch_id=batch_id, position=position, kind=JOB_KINDS[kind], provider=provider,
        filename=filename, slack_file_id=slack_file_id, url=url, download_url=download_url,
        mimetype=mimetype, size_bytes=size_bytes, needs_file_info=bool(needs_file_info),
        state=JOB_STATES[state], attempts=attempts, next_attempt_at=to_time(next_attempt_at),
        error=error, error_detail=error_detail, spool_path=spool_path,
        provider_file_id=provider_file_id, provider_upload_id=provider_upload_id,
        provider_job_id=provider_job_id, provider_eta_at=to_time(provider_eta_at),
        transcript=json.loads(transcript) if transcript else None,
        raw_result=json.loads(raw_result) if raw_result else None,
        attachment_uploaded=bool(attachment_uploaded), cleaned_up=bool(cleaned_up),
        created_at=required_time(created_at), updated_at=required_time(updated_at),
        finished_at=to_time(finished_at), stalled_since=to_time(stalled_since),
        sent_at=to_time(sent_at), resubmissions=resubmissions, duration_ms=duration_ms,
        held_by=held_by,
    )


# fmt: on


def language_hints_of(codes: str | None, strict: int) -> LanguageHints:
    if not codes or codes == "[]":
        return LanguageHints()
    return LanguageHints(codes=tuple(json.loads(codes)), strict=bool(strict))


#: The columns :func:`transcription_options_of` reads, in its order.
OPTIONS_COLUMNS = "vocabulary, context_text, translation, mark_doubtful"


def transcription_options_of(
    vocabulary: str, context: str | None, translation: str | None, mark_doubtful: int
) -> TranscriptionOptions:
    return TranscriptionOptions(
        terms=tuple(json.loads(vocabulary)) if vocabulary != "[]" else (),
        context=context,
        translation=translation_of(translation),
        mark_doubtful=bool(mark_doubtful),
    )


def translation_text(languages: Sequence[str]) -> str | None:
    """A translation's stored form: ``de``, ``en:es``; None for none."""
    return ":".join(languages) or None


def translation_of(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(":")) if text else ()
