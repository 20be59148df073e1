"""Scale of the bookkeeping: one poll cycle with many jobs in flight.

The cycle's own work is reading the database, deciding what is due, recording each answer and
keeping the progress notes current. To measure that alone, the provider and Slack answer at once
(stubs: acceptable in a benchmark, never in tests), and the state is built with the store's own
verbs (:class:`storage.store.Store`, on SQLite), as the bot's steps record it, in a temporary
database. Each job is one Slack message with one file, submitted to the provider and still
processing: the largest number of units a cycle can have for that many jobs.

Cycles timed:

* **all due**: every job is due for a poll (the clock moved past every ``next_attempt_at``); the
  cycle polls each and records each answer. The first such cycle also posts each batch's first
  progress note.
* **none due**: between two polls, the cycle finds nothing to do.
* **steady state**: a random ``--due-fraction`` of the jobs (default 10 %) is due and the rest
  later, as with adaptive polling, where jobs started at different times come due spread out.

The target is checked against the all-due cycles (the worst case) and, separately, against the
steady-state one.

``--profile`` adds cProfile's figures for the all-due cycles after the first. It sees this
thread only: time spent in SQLite, on aiosqlite's thread, shows as waiting in ``select``; time
spent in PostgreSQL, in another process, likewise.

On SQLite by default, in a temporary file; with ``--database-url postgresql://…``, on
PostgreSQL, in a schema of its own created in that database and dropped afterwards.

    python -m benchmarks.bookkeeping --jobs 10000 [--database-url URL] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import random
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import psycopg
from pydantic import SecretStr

from benchmarks.common import machine, table, verdict
from bot.app import keep_start_up_objects_out_of_collections
from bot.errors import PermanentError
from bot.providers.base import (
    Progress,
    ProgressStatus,
    Provider,
    ProviderJob,
    Submitted,
    Uploaded,
)
from bot.slack_api import SlackGateway
from bot.slack_files import SlackFileDownloader
from bot.work import Engine, EngineConfig
from bot.workspaces import OneWorkspace
from storage.models import (
    Job,
    JobKind,
    JobState,
    NewBatch,
    NewJob,
    StillRunning,
    Submission,
    Upload,
)
from storage.postgres import PostgresStore
from storage.sqlite import SQLiteStore
from storage.store import Store

START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
POLL_INTERVAL = 5.0


class InstantProvider(Provider):
    """Answers every call at once: every job is still processing."""

    name = "soniox"

    def __init__(self) -> None:
        self.polled = 0

    async def check_credentials(self) -> None:
        return None

    async def upload(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Uploaded | PermanentError]:
        return {job.job_id: Uploaded(file_id=f"file-{job.job_id}") for job in jobs}

    async def submit(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Submitted | PermanentError]:
        return {job.job_id: Submitted(remote_id=f"tr-{job.job_id}") for job in jobs}

    async def poll(self, jobs: Sequence[ProviderJob]) -> Mapping[str, Progress]:
        self.polled += len(jobs)
        return {job.job_id: Progress(ProgressStatus.PROCESSING) for job in jobs}

    async def clean_up(self, jobs: Sequence[ProviderJob]) -> None:
        return None


class InstantWebClient:
    """Stands in for slack-sdk's client under the real gateway: every Web API method answers
    ``ok`` at once, with the fields the gateway reads."""

    def __init__(self) -> None:
        self.calls = 0

    def __getattr__(self, method: str) -> Any:
        async def answer(**_: Any) -> dict[str, Any]:
            self.calls += 1
            return {"ok": True, "ts": "1767225600.000100", "messages": [], "file": {}}

        return answer


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


async def build_state(store: Store, jobs: int, history: int = 0) -> None:
    """``history`` delivered messages, then ``jobs`` messages with one file each, every file at
    the provider and processing."""
    if history:
        await add_batches(store, range(jobs, jobs + history))
        finished = await to_processing(store)
        for job in finished:
            await store.complete_job(job.id, transcript={"text": "..."}, raw=None, now=START)
        await store.mark_cleaned_up([job.id for job in finished], START)
        for batch_id in {job.batch_id for job in finished}:
            await store.record_reply(batch_id, "1767225600.000200", START)
    await add_batches(store, range(jobs))
    await to_processing(store)


async def to_processing(store: Store) -> list[Job]:
    """Take every unfinished job the way the engine would: download, upload, submit, poll.
    Every job is due at ``START`` after it."""
    queued = await store.unfinished_jobs()
    ids = [job.id for job in queued]
    for job_id in ids:
        await store.start_download(job_id, START)
        await store.record_download(job_id, spool_path="/spool/x", size_bytes=2_000_000, now=START)
    await store.mark_upload_sent(ids, START)
    await store.record_uploads([Upload(job_id, "file-id") for job_id in ids], {}, START)
    for job_id in ids:
        await store.record_spool_deleted(job_id, START)
    await store.mark_submission_sent(ids, START)
    await store.record_submissions(
        [Submission(job_id, "transcription-id", None, None, poll_at=START) for job_id in ids],
        {},
        START,
    )
    await store.record_still_running(
        [StillRunning(job_id, JobState.SUBMITTED, START, poll_at=START) for job_id in ids], START
    )
    return await store.get_jobs(ids)


async def add_batches(store: Store, indexes: range) -> None:
    for index in indexes:
        await add_batch(store, index, f"{1767225600 + index}.000100")


async def add_batch(store: Store, index: int, ts: str) -> None:
    await store.create_batch(
        NewBatch(
            team_id="T0BENCH",
            channel_id=f"C{index % 50:04d}",
            message_ts=ts,
            thread_ts=ts,
            user_id="U0BENCH",
            provider="soniox",
            source="upload",
        ),
        [
            NewJob(
                kind=JobKind.SLACK_FILE,
                filename=f"memo-{index}.m4a",
                slack_file_id=f"F{index:08d}",
                download_url=f"https://files.slack.com/files-pri/T0BENCH-F{index:08d}/m.m4a",
                mimetype="audio/mp4",
                size_bytes=2_000_000,
                dedupe_key=f"T0BENCH:C{index % 50:04d}:{ts}:F{index:08d}",
            )
        ],
        START,
    )


class CallTimes:
    """Wall time and count of each store method in each timed cycle: where a cycle waits on
    the database (each call is at least one hop to aiosqlite's thread and back)."""

    def __init__(self, store: Store) -> None:
        #: One ``{method: (calls, seconds)}`` per timed cycle, in order.
        self.cycles: list[dict[str, tuple[int, float]]] = []
        self.active = False
        for name in dir(type(store)):
            attribute = getattr(store, name)
            if name.startswith("_") or not asyncio.iscoroutinefunction(attribute):
                continue
            setattr(store, name, self._wrap(name, attribute))

    def start_cycle(self) -> None:
        self.cycles.append({})
        self.active = True

    def _wrap(self, name: str, method: Any) -> Any:
        async def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return await method(*args, **kwargs)
            cycle = self.cycles[-1]
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                calls, seconds = cycle.get(name, (0, 0.0))
                cycle[name] = (calls + 1, seconds + time.perf_counter() - started)

        return timed


async def spread_due(store: Store, now: datetime, fraction: float, rng: random.Random) -> None:
    """Make a random ``fraction`` of the open jobs due (``next_attempt_at`` up to an interval in
    the past) and the rest due later (one to twelve intervals ahead, past the cycle's
    half-interval tolerance), as the answers of the last polls would have."""
    jobs = await store.unfinished_jobs()
    due = set(rng.sample([job.id for job in jobs], round(len(jobs) * fraction)))
    polled: list[StillRunning] = []
    for job in jobs:
        if job.id in due:
            offset = -rng.uniform(0, POLL_INTERVAL)
        else:
            offset = rng.uniform(POLL_INTERVAL, POLL_INTERVAL * 12)
        polled.append(
            StillRunning(job.id, job.state, job.updated_at, now + timedelta(seconds=offset))
        )
    await store.record_still_running(polled, now)


def database_mb(path: Path) -> float:
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(f.stat().st_size for f in files if f.exists()) / 1024 / 1024


async def _nothing() -> None:
    return None


@dataclass
class BenchDatabase:
    store: Store
    #: The database's size on disk in MB, once built.
    size_mb: Callable[[], Awaitable[float]]
    #: Run once the state is built: on PostgreSQL, what autovacuum does after such a burst.
    settle: Callable[[], Awaitable[None]] = _nothing


@asynccontextmanager
async def bench_database(
    workdir: Path, database_url: str | None, *, settle: bool = True
) -> AsyncIterator[BenchDatabase]:
    """A store on a database of the benchmark's own: a SQLite file in ``workdir``, or a schema
    created in the PostgreSQL database at ``database_url`` and dropped afterwards."""
    if database_url is None:
        path = workdir / "bench.db"
        store: Store = await SQLiteStore.open(path)

        async def sqlite_mb() -> float:
            return database_mb(path)

        try:
            yield BenchDatabase(store, sqlite_mb)
        finally:
            await store.close()
        return
    schema = f"threadscribe_bench_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
        await admin.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[arg-type]
        try:
            url = with_schema(database_url, schema)
            store = await PostgresStore.open(url)

            async def postgres_mb() -> float:
                cursor = await admin.execute(
                    """SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)
                       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = %s AND c.relkind = 'r'""",
                    (schema,),
                )
                row = await cursor.fetchone()
                return float(row[0] if row else 0) / 1024 / 1024

            async def vacuum() -> None:
                # The state was built in seconds, through eight writes per job: the dead row
                # versions and the missing statistics are what autovacuum clears within a
                # minute of such a burst (--no-vacuum measures without).
                await admin.execute(f'VACUUM ANALYZE "{schema}".jobs, "{schema}".batches')  # type: ignore[arg-type]

            try:
                yield BenchDatabase(store, postgres_mb, vacuum if settle else _nothing)
            finally:
                await store.close()
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')  # type: ignore[arg-type]


def with_schema(url: str, schema: str) -> str:
    """``url`` with its connections working in ``schema``."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def timed_cycle(engine: Engine, profiler: cProfile.Profile | None, times: CallTimes) -> float:
    if profiler is not None:
        profiler.enable()
    times.start_cycle()
    started = time.perf_counter()
    await engine.run_cycle()
    elapsed = time.perf_counter() - started
    times.active = False
    if profiler is not None:
        profiler.disable()
    return elapsed


#: Row labels, as printed (and pasted into RESULTS.md).
FIRST = "all due (first: also posts each batch's first progress note)"
ALL_DUE = "all due"
NONE_DUE = "none due (between two polls)"


async def measure(
    jobs: int,
    history: int,
    due_fraction: float,
    profile: bool,
    database_url: str | None = None,
    vacuum: bool = True,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as workdir:
        async with bench_database(Path(workdir), database_url, settle=vacuum) as bench:
            store = bench.store
            started = time.perf_counter()
            await build_state(store, jobs, history)
            built = time.perf_counter() - started
            await bench.settle()
            times = CallTimes(store)
            clock, provider, web = Clock(), InstantProvider(), InstantWebClient()
            async with httpx.AsyncClient() as http:
                engine = Engine(
                    store=store,
                    providers={"soniox": provider},
                    slack=OneWorkspace(SlackGateway(web), SecretStr("xoxb-bench")),  # type: ignore[arg-type]
                    downloader=SlackFileDownloader(http, allowed_hosts=frozenset()),
                    config=EngineConfig(
                        spool_dir=Path(workdir) / "spool",
                        max_file_bytes=500 * 1024 * 1024,
                        max_job_age=timedelta(hours=6),
                        poll_interval=POLL_INTERVAL,
                        # One cycle takes every due job, as the figures before measured.
                        claim_limit=10_000,
                    ),
                    clock=clock,
                )
                profiler = cProfile.Profile() if profile else None
                rows: list[tuple[str, float, int, int]] = []

                async def cycle(label: str) -> None:
                    polled, calls = provider.polled, web.calls
                    # Profiled: the cycles the target is judged on.
                    profiled = profiler if label == ALL_DUE else None
                    seconds = await timed_cycle(engine, profiled, times)
                    rows.append((label, seconds, provider.polled - polled, web.calls - calls))

                # As `python -m bot run` does once it has started.
                keep_start_up_objects_out_of_collections()
                for label in (FIRST, ALL_DUE, ALL_DUE):
                    # Past every next_attempt_at, and past the delay before a progress note.
                    clock.now += timedelta(seconds=POLL_INTERVAL * 2)
                    await cycle(label)
                # A tenth of an interval later: every job was just polled.
                clock.now += timedelta(seconds=POLL_INTERVAL / 10)
                await cycle(NONE_DUE)
                clock.now += timedelta(seconds=POLL_INTERVAL)
                await spread_due(store, clock.now, due_fraction, random.Random(7))
                await cycle(f"steady state ({due_fraction:.0%} due)")
                await engine.stop()
            size = await bench.size_mb()
    report = ""
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(25)
        report = out.getvalue()
    return {
        "jobs": jobs,
        "history": history,
        "built": built,
        "rows": rows,
        "db_mb": size,
        "profile": report,
        "breakdown": times.cycles,
    }


def breakdown_table(
    rows: Sequence[tuple[str, float, int, int]], cycles: Sequence[dict[str, tuple[int, float]]]
) -> str:
    """One row per store method, one column per timed cycle (headed by its row number in
    the table above), heaviest first; then what the cycle spent outside those methods."""
    totals: dict[str, float] = {}
    for cycle in cycles:
        for name, (_, seconds) in cycle.items():
            totals[name] = totals.get(name, 0.0) + seconds
    lines = [
        [
            name,
            *(
                f"{cycle[name][1] * 1000:,.0f} ms ({cycle[name][0]:,})" if name in cycle else "-"
                for cycle in cycles
            ),
        ]
        for name in sorted(totals, key=lambda name: -totals[name])
    ]
    rest = [
        f"{(row[1] - sum(seconds for _, seconds in cycle.values())) * 1000:,.0f} ms"
        for row, cycle in zip(rows, cycles, strict=True)
    ]
    lines.append(["(rest of the cycle)", *rest])
    headers = ["method", *(f"cycle {index}" for index in range(1, len(cycles) + 1))]
    return table(headers, lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument(
        "--history", type=int, default=0, help="delivered messages kept from earlier work"
    )
    parser.add_argument(
        "--due-fraction",
        type=float,
        default=0.1,
        help="share of the jobs due in the steady-state cycle (default 0.1)",
    )
    parser.add_argument("--target-ms", type=float, default=500.0)
    parser.add_argument(
        "--database-url",
        default=None,
        metavar="URL",
        help="measure on PostgreSQL (postgresql://user@host:5432/database), in a schema of its "
        "own that is dropped afterwards; SQLite in a temporary file without it",
    )
    parser.add_argument(
        "--no-vacuum",
        action="store_true",
        help="PostgreSQL: time the cycles right after the build, without the VACUUM ANALYZE "
        "that autovacuum would run after it",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="print where the all-due cycles after the first spend (cProfile, by own time)",
    )
    args = parser.parse_args()
    result = asyncio.run(
        measure(
            args.jobs,
            args.history,
            args.due_fraction,
            args.profile,
            args.database_url,
            not args.no_vacuum,
        )
    )
    print(f"machine: {machine()}")
    backend = "SQLite"
    if args.database_url:
        backend = "PostgreSQL" + (", not vacuumed after the build" if args.no_vacuum else "")
    print(f"backend: {backend}")
    print(
        f"{result['jobs']:,} jobs in flight and {result['history']:,} delivered "
        f"(built in {result['built']:.0f} s); database {result['db_mb']:.1f} MB"
    )
    print(
        table(
            ["cycle", "time", "provider polls", "Slack calls"],
            [
                [label, f"{seconds * 1000:,.0f} ms", f"{polls:,}", f"{calls:,}"]
                for label, seconds, polls, calls in result["rows"]
            ],
        )
    )
    print(
        "time in store methods in each cycle above (cycle 1 = the first row), with the "
        "calls made (they overlap when concurrent); the rest is the engine's own Python and "
        "the event loop:"
    )
    print(breakdown_table(result["rows"], result["breakdown"]))
    all_due = max(seconds for label, seconds, _, _ in result["rows"] if label == ALL_DUE)
    steady_label, steady, _, _ = result["rows"][-1]
    ok = all_due * 1000 < args.target_ms
    steady_ok = steady * 1000 < args.target_ms
    print(
        f"target: a cycle's own work under {args.target_ms:.0f} ms with all "
        f"{result['jobs']:,} jobs due: {all_due * 1000:,.0f} ms (worst) -> {verdict(ok)}"
    )
    print(
        f"{steady_label}: {steady * 1000:,.0f} ms -> "
        f"{'meets' if steady_ok else 'MISSES'} the {args.target_ms:.0f} ms target"
    )
    if result["profile"]:
        print(result["profile"])
    return 0 if ok and steady_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
