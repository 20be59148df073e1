"""Several replicas on one PostgreSQL: the bookkeeping of a large backlog split between them, and
end-to-end throughput with 1, 2 and 4 replicas.

**Split bookkeeping** (``split``): ``--jobs`` (100,000) messages with one file each, submitted and
processing, in a schema of their own, every job due; ``--replicas`` (4) processes, each an engine
over the shared database as ``python -m bot run`` builds it, with the provider and Slack
answering at once (as in :mod:`benchmarks.bookkeeping`), run their cycles at the same moment
until every job was polled, three rounds over. Each cycle claims at most ``claim_limit`` (5,000)
jobs, so each replica runs cycles back to back while due work is left. What is timed is each
cycle, per replica, and the round (until all jobs were polled). The state is written with SQL in
bulk (the store's verbs would take minutes for 100,000 jobs), as the verbs leave it; the first
round also posts each batch's first progress note.

**Throughput** (``throughput``): real ``python -m bot run`` processes (HTTP mode) on PostgreSQL,
1, 2 and 4 of them, and one on SQLite; the fake Slack and fake Soniox (instant: a transcription
is done at its first poll) run in a process of their own, which sends ``--files`` messages with
one file each, spread over the replicas in turn, as a load balancer would, and counts the files
answered per second, from the first message sent to the last reply posted.

    python -m benchmarks.replicas split --database-url postgresql://postgres@127.0.0.1:5432/test
    python -m benchmarks.replicas throughput --files 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psycopg
from pydantic import SecretStr

from benchmarks.bookkeeping import (
    POLL_INTERVAL,
    START,
    CallTimes,
    Clock,
    InstantProvider,
    InstantWebClient,
    with_schema,
)
from benchmarks.common import machine, table, verdict
from bot.app import keep_start_up_objects_out_of_collections
from bot.slack_api import SlackGateway
from bot.slack_files import SlackFileDownloader
from bot.work import Engine, EngineConfig
from bot.workspaces import OneWorkspace
from storage.postgres import PostgresStore

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROUNDS = ("first (also posts each batch's first progress note)", "second", "third")

# -- split bookkeeping ---------------------------------------------------------------------------

#: Every message and its one file, as the bot's verbs leave them once submitted and polled.
_BUILD = """
INSERT INTO batches (id, team_id, channel_id, message_ts, thread_ts, user_id, provider, source,
                     state, created_at, updated_at)
SELECT 'b-' || lpad(to_hex(i), 12, '0'), 'T0BENCH', 'C' || lpad((i %% 50)::text, 4, '0'),
       (1767225600 + i)::text || '.000100', (1767225600 + i)::text || '.000100', 'U0BENCH',
       'soniox', 'upload', 'open', %(start)s + i * interval '1 microsecond', %(start)s
FROM generate_series(0, %(jobs)s - 1) AS i;
--
INSERT INTO jobs (id, batch_id, position, kind, provider, filename, slack_file_id, download_url,
                  mimetype, size_bytes, needs_file_info, dedupe_key, state, provider_file_id,
                  provider_job_id, created_at, updated_at, stalled_since, next_attempt_at)
SELECT md5(i::text), 'b-' || lpad(to_hex(i), 12, '0'), 0, 'slack_file', 'soniox',
       'memo-' || i || '.m4a', 'F' || lpad(i::text, 8, '0'),
       'https://files.slack.com/files-pri/T0BENCH-F' || i || '/m.m4a', 'audio/mp4', 2000000,
       false, 'T0BENCH:' || i, 'processing', 'file-' || i, 'tr-' || i,
       %(start)s + i * interval '1 microsecond', %(start)s, %(start)s, %(start)s
FROM generate_series(0, %(jobs)s - 1) AS i;
"""


#: What one replica reports of a round: its index, the round, each cycle (seconds, jobs polled,
#: and with ``--steps`` the seconds spent in each store method), and the round's wall time.
Round = tuple[int, int, list[tuple[float, int, dict[str, tuple[int, float]]]], float]


def replica(
    url: str, rounds: int, barrier: Any, results: Connection, spool: str, index: int, steps: bool
) -> None:
    """One replica: an engine over the shared database, running its cycles when told to."""
    asyncio.run(_replica(url, rounds, barrier, results, Path(spool), index, steps))


async def _replica(
    url: str,
    rounds: int,
    barrier: Any,
    results: Connection,
    spool: Path,
    index: int,
    steps: bool,
) -> None:
    store = await PostgresStore.open(url, migrate=False)
    times = CallTimes(store) if steps else None
    clock, provider, web = Clock(), InstantProvider(), InstantWebClient()
    async with httpx.AsyncClient() as http:
        engine = Engine(
            store=store,
            providers={"soniox": provider},
            slack=OneWorkspace(SlackGateway(web), SecretStr("xoxb-bench")),  # type: ignore[arg-type]
            downloader=SlackFileDownloader(http, allowed_hosts=frozenset()),
            config=EngineConfig(
                spool_dir=spool,
                max_file_bytes=500 * 1024 * 1024,
                max_job_age=timedelta(hours=6),
                poll_interval=POLL_INTERVAL,
            ),
            clock=clock,
            owner=f"replica-{index}",
        )
        keep_start_up_objects_out_of_collections()
        for round_ in range(rounds):
            clock.now = START + timedelta(seconds=POLL_INTERVAL * 2 * (round_ + 1))
            await asyncio.get_running_loop().run_in_executor(None, barrier.wait)
            cycles: list[tuple[float, int, dict[str, tuple[int, float]]]] = []
            started = time.perf_counter()
            while True:
                polled = provider.polled
                if times is not None:
                    times.start_cycle()
                cycle_started = time.perf_counter()
                await engine.run_cycle()
                took = time.perf_counter() - cycle_started
                spent = times.cycles[-1] if times is not None else {}
                cycles.append((took, provider.polled - polled, spent))
                if provider.polled == polled:
                    break  # nothing left due (the others took the rest)
            results.send((index, round_, cycles, time.perf_counter() - started))
        await engine.stop()
    await store.close()


def split(database_url: str, jobs: int, replicas: int, target_ms: float, steps: bool) -> bool:
    schema = f"threadscribe_bench_{uuid.uuid4().hex[:12]}"
    url = with_schema(database_url, schema)
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[arg-type]
        try:
            started = time.perf_counter()
            asyncio.run(_migrate(url))
            with psycopg.connect(url, autocommit=True) as db:
                for statement in _BUILD.split("--"):
                    db.execute(statement, {"start": START, "jobs": jobs})  # type: ignore[arg-type]
            admin.execute(f'VACUUM ANALYZE "{schema}".jobs, "{schema}".batches')  # type: ignore[arg-type]
            built = time.perf_counter() - started
            rows = _run_replicas(url, replicas, steps)
        finally:
            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')  # type: ignore[arg-type]
    print(f"machine: {machine()}")
    print(
        f"{jobs:,} jobs in flight on PostgreSQL (built in {built:.0f} s), every one due, "
        f"{replicas} replicas at once; each cycle claims at most {EngineConfig.claim_limit:,}"
    )
    lines = []
    worst_after_first = 0.0
    for round_, label in enumerate(ROUNDS):
        of_round = [row for row in rows if row[1] == round_]
        for index, _, cycles, wall in sorted(of_round):
            times = [seconds for seconds, polled, _ in cycles if polled]
            polled = sum(count for _, count, _ in cycles)
            if round_:
                worst_after_first = max([worst_after_first, *times])
            lines.append(
                [
                    label,
                    f"replica {index}",
                    f"{len(times)}",
                    f"{polled:,}",
                    ", ".join(f"{seconds * 1000:,.0f}" for seconds in times) + " ms",
                    f"{wall:.2f} s",
                ]
            )
    print(
        table(
            ["round", "replica", "cycles", "jobs polled", "each cycle", "until all were polled"],
            lines,
        )
    )
    if steps:
        print(_steps_table(rows))
    ok = worst_after_first * 1000 < target_ms
    print(
        f"target: every replica cycle under {target_ms:.0f} ms (rounds after the first): "
        f"worst {worst_after_first * 1000:,.0f} ms -> {verdict(ok)}"
    )
    return ok


async def _migrate(url: str) -> None:
    store = await PostgresStore.open(url, min_size=1, max_size=1)
    await store.close()


def _steps_table(rows: list[Round]) -> str:
    """Where the cycles that polled something spend their time, after the first round: each
    store method's time per cycle (median and range over every replica's cycles), and the rest
    (the engine's own Python, and waiting for the event loop)."""
    cycles = [cycle for _, round_, of_round, _ in rows if round_ for cycle in of_round if cycle[1]]
    names = sorted(
        {name for _, _, spent in cycles for name in spent},
        key=lambda name: -sum(spent.get(name, (0, 0.0))[1] for _, _, spent in cycles),
    )
    lines = []
    for name in [*names, "(rest of the cycle)", "(whole cycle)"]:
        if name == "(rest of the cycle)":
            values = [took - sum(s for _, s in spent.values()) for took, _, spent in cycles]
            calls = ""
        elif name == "(whole cycle)":
            values = [took for took, _, _ in cycles]
            calls = ""
        else:
            values = [spent.get(name, (0, 0.0))[1] for _, _, spent in cycles]
            calls = f"{statistics.median(spent.get(name, (0, 0.0))[0] for _, _, spent in cycles):g}"
        ms = sorted(value * 1000 for value in values)
        lines.append([name, calls, f"{statistics.median(ms):,.0f}", f"{ms[0]:,.0f}-{ms[-1]:,.0f}"])
    return (
        f"where the time goes, over the {len(cycles)} cycles of the later rounds that polled:\n"
        + table(["store method", "calls per cycle", "median ms", "range ms"], lines)
    )


def _run_replicas(url: str, replicas: int, steps: bool) -> list[Round]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(replicas)
    receive, send = context.Pipe(duplex=False)
    with tempfile.TemporaryDirectory() as spool:
        processes = [
            context.Process(
                target=replica, args=(url, len(ROUNDS), barrier, send, spool, index, steps)
            )
            for index in range(replicas)
        ]
        for process in processes:
            process.start()
        rows = [receive.recv() for _ in range(replicas * len(ROUNDS))]
        for process in processes:
            process.join()
    return rows


# -- throughput ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time used so far by the PostgreSQL server's processes (those named postgres)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


def fakes(commands: Connection) -> None:
    """The fakes' process: Slack and Soniox, and the sender of the messages."""
    asyncio.run(_fakes(commands))


async def _fakes(commands: Connection) -> None:
    from tests.fakes.slack import FakeSlack
    from tests.fakes.soniox import FakeSoniox

    async with FakeSlack() as slack, FakeSoniox(polls_until_complete=1) as soniox:
        commands.send(
            {
                "SLACK_BOT_TOKEN": slack.bot_token,
                "SLACK_SIGNING_SECRET": slack.signing_secret,
                "SLACK_API_URL": slack.api_url,
                "SONIOX_API_KEY": soniox.api_key,
                "SONIOX_API_URL": soniox.api_url,
            }
        )
        loop = asyncio.get_running_loop()
        while True:
            order = await loop.run_in_executor(None, commands.recv)
            if order is None:
                return
            urls, files = order
            commands.send(await _send_and_wait(slack, soniox, urls, files))


async def _send_and_wait(
    slack: Any, soniox: Any, urls: list[str], files: int
) -> tuple[float, int, int]:
    """Send ``files`` messages with a file each, in turn to ``urls``; how long until all were
    answered, how many were, and how many transcriptions were made for them."""
    from tests.fakes.slack import silent_wav

    events = []
    for index in range(files):
        file = slack.add_file(name=f"memo-{index}.wav", content=silent_wav(0.1))
        events.append(slack.message_event(files=[file]))
    threads = {event["ts"] for event in events}
    created_before = len(soniox.create_bodies)
    requests = []
    for index, event in enumerate(events):
        body = json.dumps(slack.event_callback(event))
        requests.append((urls[index % len(urls)], body, slack.signed_headers(body)))
    # Slack sends events as they happen, many at once: a few dozen in flight at a time.
    in_flight = asyncio.Semaphore(32)

    def answered() -> int:
        return sum(
            1
            for message in slack.messages
            if message.get("thread_ts") in threads
            and ((message.get("metadata") or {}).get("event_payload") or {}).get("final")
        )

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:

        async def send(url: str, body: str, headers: dict[str, str]) -> None:
            async with in_flight:
                response = await client.post(f"{url}/slack/events", content=body, headers=headers)
                response.raise_for_status()

        await asyncio.gather(*(send(*request) for request in requests))
    await slack.wait_for(lambda: answered() >= files, timeout=600)
    elapsed = time.perf_counter() - started
    return elapsed, answered(), len(soniox.create_bodies) - created_before


async def _throughput_run(
    env: dict[str, str],
    workdir: Path,
    replicas: int,
    files: int,
    commands: Connection,
    fakes_pid: int,
) -> tuple[float, int, int, dict[str, float]]:
    from tests.bot_process import BotProcess, free_port

    bots = []
    for index in range(replicas):
        home = workdir / f"replica-{index}"
        home.mkdir(parents=True)
        bots.append(BotProcess({**env, "PORT": str(free_port())}, home, home / "bot.log"))
    await asyncio.gather(*(bot.start() for bot in bots))
    pids = [bot.process.pid for bot in bots if bot.process is not None]

    def cpu() -> dict[str, float]:
        return {
            "bots": sum(cpu_seconds(pid) for pid in pids),
            "fakes": cpu_seconds(fakes_pid),
            "postgres": postgres_cpu_seconds(),
        }

    try:
        before = cpu()
        commands.send(([bot.url for bot in bots], files))
        loop = asyncio.get_running_loop()
        elapsed, answered, created = await loop.run_in_executor(None, commands.recv)
        after = cpu()
    finally:
        for bot in bots:
            await bot.terminate()
    used = {key: after[key] - before[key] for key in after}
    # What the replicas had to retry or wait for, as their logs say it.
    used["warnings"] = float(
        sum(
            1
            for bot in bots
            for line in bot.log().splitlines()
            if " WARNING " in line or " ERROR " in line
        )
    )
    return elapsed, answered, created, used


def throughput(
    database_url: str,
    files: int,
    counts: list[int],
    logs: Path | None = None,
    settings: dict[str, str] | None = None,
) -> bool:
    from tests.bot_process import clean_environment

    context = multiprocessing.get_context("spawn")
    commands, theirs = context.Pipe()
    process = context.Process(target=fakes, args=(theirs,))
    process.start()
    fake_env = commands.recv()
    rows = []
    try:
        runs = [("SQLite", 1)] + [("PostgreSQL", count) for count in counts]
        for backend, count in runs:
            with tempfile.TemporaryDirectory() as workdir:
                env = clean_environment(
                    **fake_env,
                    POLL_INTERVAL_SECONDS="0.2",
                    SONIOX_MAX_PENDING="100",
                    LOG_LEVEL="WARNING",
                    DATABASE_PATH=str(Path(workdir) / "threadscribe.db"),
                    **(settings or {}),
                )
                schema = None
                if backend == "PostgreSQL":
                    schema = f"threadscribe_bench_{uuid.uuid4().hex[:12]}"
                    with psycopg.connect(database_url, autocommit=True) as admin:
                        admin.execute(f'CREATE SCHEMA "{schema}"')  # type: ignore[arg-type]
                    env["DATABASE_URL"] = with_schema(database_url, schema)
                try:
                    assert process.pid is not None
                    elapsed, answered, created, used = asyncio.run(
                        _throughput_run(env, Path(workdir), count, files, commands, process.pid)
                    )
                    if logs is not None:
                        kept = logs / f"{len(rows) + 1}-{backend.lower()}-{count}"
                        shutil.copytree(workdir, kept, ignore=shutil.ignore_patterns("spool"))
                finally:
                    if schema is not None:
                        with psycopg.connect(database_url, autocommit=True) as admin:
                            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')  # type: ignore[arg-type]
                rows.append((backend, count, elapsed, answered, created, used))
    finally:
        commands.send(None)
        process.join()
    print(f"machine: {machine()}")
    print(
        f"{files} messages with one file each, sent in turn to the replicas; the fakes (instant) "
        "and the sender in a process of their own"
    )
    base = next(
        (elapsed for backend, count, elapsed, *_ in rows if backend == "PostgreSQL" and count == 1),
        None,
    )
    lines = []
    for backend, count, elapsed, answered, created, used in rows:
        rate = answered / elapsed
        scale = f"{base / elapsed:.2f}x" if backend == "PostgreSQL" and base else ""
        busy = " / ".join(f"{used[key]:.1f}" for key in ("bots", "fakes", "postgres"))
        cpu = sum(used[key] for key in ("bots", "fakes", "postgres"))
        lines.append(
            [
                backend,
                count,
                f"{elapsed:.1f} s",
                f"{rate:.1f}",
                scale,
                f"{answered}",
                f"{created}",
                busy,
                f"{cpu / elapsed / (os.cpu_count() or 1):.0%}",
                f"{used['warnings']:.0f}",
            ]
        )
    print(
        table(
            [
                "backend",
                "replicas",
                "all answered in",
                "files/s",
                "vs 1 replica",
                "answered",
                "transcriptions",
                "CPU s: bots / fakes / PostgreSQL",
                "of the machine",
                "warnings logged",
            ],
            lines,
        )
    )
    two = next((elapsed for b, c, elapsed, *_ in rows if b == "PostgreSQL" and c == 2), None)
    ok = base is not None and two is not None and base / two >= 1.5
    print(f"aim: two replicas at least 1.5x one -> {verdict(ok)}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["split", "throughput"])
    parser.add_argument("--database-url", default=DEFAULT_URL, metavar="URL")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--target-ms", type=float, default=1000.0)
    parser.add_argument(
        "--steps", action="store_true", help="split: time each store method of the cycles"
    )
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument(
        "--logs", type=Path, default=None, help="throughput: keep each run's bot logs here"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="throughput: a setting of the bots (MAX_CONCURRENT_TRANSFERS=8), repeatable",
    )
    args = parser.parse_args()
    if args.what == "split":
        return (
            0
            if split(args.database_url, args.jobs, args.replicas, args.target_ms, args.steps)
            else 1
        )
    settings = dict(item.split("=", 1) for item in args.set)
    return 0 if throughput(args.database_url, args.files, args.counts, args.logs, settings) else 1


if __name__ == "__main__":
    raise SystemExit(main())
