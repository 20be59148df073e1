"""How rows and values look in PostgreSQL, and back: states, JSON, text from outside, whole rows.

Times: the driver reads ``timestamptz`` as an aware ``datetime`` (in UTC: the pool sets the
session's time zone) and writes an aware one as it is. One without a time zone is refused
(:class:`AwareTimeDumper`), as the store's contract says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg.adapt import Buffer, Dumper, PyFormat
from psycopg.pq import Format
from psycopg.types.json import Jsonb

from storage.models import Batch, Job, LanguageHints, TranscriptionOptions
from storage.rows import BATCH_STATES, JOB_KINDS, JOB_STATES, states_sql
from storage.states import FINISHED_JOB_STATES
from storage.store import naive_time_message

#: Jobs with a step left: exactly the condition of the index ``jobs_unfinished``.
UNFINISHED = f"state NOT IN {states_sql(FINISHED_JOB_STATES)}"


class AwareTimeDumper(Dumper):
    """Writes a ``datetime`` as the driver does, but refuses one without a time zone: the driver
    would send it as a ``timestamp`` that the server reads in the session's time zone (UTC),
    where SQLite would take it as local time. Refused with ``DataError``, which the store
    raises as :class:`storage.store.InvalidRecord`."""

    format = Format.BINARY

    def __init__(self, cls: type, context: Any = None) -> None:
        super().__init__(cls, context)
        # The driver's own dumper (in C), for the times that are aware: nearly every one.
        found = psycopg.adapters.get_dumper(datetime, PyFormat.from_pq(self.format))
        inner = found(cls, context)
        self.oid = inner.oid
        self._dump = inner.dump

    def dump(self, obj: datetime) -> Buffer | None:
        if obj.utcoffset() is None:
            raise psycopg.DataError(naive_time_message(obj))
        return self._dump(obj)


class AwareTimeTextDumper(AwareTimeDumper):
    format = Format.TEXT


def refuse_naive_times(connection: psycopg.AsyncConnection[Any]) -> None:
    """Make ``connection`` refuse times without a time zone, in parameters and in arrays."""
    # Binary last: the last one registered serves ``%s``, binary as with the driver's own.
    for dumper in (AwareTimeTextDumper, AwareTimeDumper):
        connection.adapters.register_dumper(datetime, dumper)


#: PostgreSQL's text cannot hold a NUL character, which outside text (a file name, a provider's
#: message, a transcript) may: it is kept as U+FFFD instead of refusing the whole write.
_NUL, _REPLACEMENT = "\x00", "\ufffd"
#: ``\u0000`` in JSON text, but not an escaped backslash followed by ``u0000``.
JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def safe_text(value: str | None) -> str | None:
    """Outside text as PostgreSQL can keep it."""
    if value is None or _NUL not in value:
        return value
    return value.replace(_NUL, _REPLACEMENT)


def _dumps(value: Any) -> str:
    dumped = json.dumps(value)
    return JSON_NUL.sub(r"\1\\ufffd", dumped) if "\\u0000" in dumped else dumped


def to_jsonb(value: Any) -> Jsonb | None:
    """A JSON column's value; None stays SQL NULL."""
    return None if value is None else Jsonb(value, dumps=_dumps)


# Rows are unpacked by position, and enums found in a dict, as in the SQLite store: a poll cycle
# converts thousands of rows. The lists are kept dense (formatting off) to stay readable.

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
        state=BATCH_STATES[state], language_hints=language_hints, reply_ts=reply_ts,
        attempts=attempts, next_attempt_at=next_attempt_at, created_at=created_at,
        updated_at=updated_at, delivered_at=delivered_at, status_ts=status_ts,
        status_text=status_text, status_updated_at=status_updated_at,
        failing_since=failing_since, language_hints_strict=language_hints_strict,
        enterprise_id=enterprise_id,
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
        mimetype=mimetype, size_bytes=size_bytes, needs_file_info=needs_file_info,
        state=JOB_STATES[state], attempts=attempts, next_attempt_at=next_attempt_at,
        error=error, error_detail=error_detail, spool_path=spool_path,
        provider_file_id=provider_file_id, provider_upload_id=provider_upload_id,
        provider_job_id=provider_job_id, provider_eta_at=provider_eta_at,
        transcript=transcript, raw_result=raw_result,
        attachment_uploaded=attachment_uploaded, cleaned_up=cleaned_up,
        created_at=created_at, updated_at=updated_at, finished_at=finished_at,
        stalled_since=stalled_since, sent_at=sent_at, resubmissions=resubmissions,
        duration_ms=duration_ms, held_by=held_by,
    )


# fmt: on


def language_hints_of(codes: list[str], strict: bool) -> LanguageHints:
    if not codes:
        return LanguageHints()
    return LanguageHints(codes=tuple(codes), strict=strict)


#: The columns :func:`transcription_options_of` reads, in its order.
OPTIONS_COLUMNS = "vocabulary, context_text, translation, mark_doubtful"


def transcription_options_of(
    vocabulary: list[str], context: str | None, translation: str | None, mark_doubtful: bool
) -> TranscriptionOptions:
    return TranscriptionOptions(
        terms=tuple(vocabulary),
        context=context,
        translation=translation_of(translation),
        mark_doubtful=mark_doubtful,
    )


def translation_text(languages: Sequence[str]) -> str | None:
    """A translation's stored form: ``de``, ``en:es``; None for none."""
    return ":".join(languages) or None


def translation_of(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(":")) if text else ()
