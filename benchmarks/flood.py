"""Fairness between workspaces: one workspace floods the bot with files while another shares one;
how long the lone file waits for its reply, against its time on an idle bot.

One real ``python -m bot run`` process in the multi-workspace mode (HTTP mode, ``SLACK_CLIENT_ID``
and ``SLACK_CLIENT_SECRET``, no bot token), on SQLite, or on PostgreSQL with ``--database-url``
(in a schema of its own, dropped afterwards). The fake Slack and the fake Soniox run in a process
of their own, which also sends the events and times what the fakes see. Workspaces A and B are
installed through the real OAuth flow: the bot's install page, Slack's authorize page, the
redirect back with its state.

Every setting of the bot is its default (``POLL_INTERVAL_SECONDS`` 5, ``MAX_CONCURRENT_TRANSFERS``
4, ``SONIOX_MAX_PENDING`` 50, ``LOG_LEVEL`` INFO), so the figures are a deployment's.

The fake Soniox takes ``--processing`` seconds (3 by default) per transcription: one is finished
by the first poll at least that long after it was created, as a short voice memo is by Soniox. A
processing time shorter than the poll interval makes every transcription end at its first poll,
so a file's reply time on an idle bot is about one poll interval, and any wait behind another
workspace's work (for a transfer slot, for one of the 50 submission slots, for a poll, for
delivery) shows on top of it. An instant provider would hide the submission slots (each would be
free again at the next poll) and a long one would drown the difference in processing time.
Every file is the same ``--seconds`` long WAV (10 s, 320 KB).

Each run starts a new bot on a new database and installs both workspaces, then:

1. **idle**: B shares one file ``--idle`` times (5), one after the other, each once the previous
   one was answered and cleaned up at the provider: the time from B's event sent to its final
   reply posted in its thread.
2. **flood**: A sends ``--files`` messages (200) with one file each, a few dozen requests in
   flight at a time as Slack delivers a burst, and once the first of them was acknowledged, B
   shares one file (``--lone-after N``: once N of them were, 200 puts B behind the whole burst):
   B's reply time, and the time until all of A's were answered.

For B's file, each stage is timed by what the fakes see: waiting until its download starts, the
transfer (download and upload), waiting for its submission, the provider's work and the poll that
sees it end, and the delivery of the reply; beside them, how many of A's files were downloaded and
submitted before B's.

The aim: B's reply time under the flood within 2x its median idle time.

    python -m benchmarks.flood --runs 3
    python -m benchmarks.flood --database-url postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import multiprocessing
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psycopg
from aiohttp import web

from benchmarks.bookkeeping import with_schema
from benchmarks.common import machine, table, verdict

TEAM_A, TEAM_B = "T0FLOODA", "T0LONEB"
CHANNEL_A, CHANNEL_B = "C0FLOODA", "C0LONEB"

#: The stages of a file, in order, each named by the moment that ends it.
STAGES = [
    ("download", "until its download started"),
    ("uploaded", "download and upload"),
    ("submitted", "until submitted"),
    ("finished", "provider and poll"),
    ("replied", "delivery"),
]


@dataclass
class Timeline:
    """When things happened to one file, in seconds since its event was sent (fakes' clock)."""

    sent: float
    acked: float | None = None
    points: dict[str, float] = field(default_factory=dict)
    #: A's files downloaded, and submitted, before this one's (in the flood).
    a_downloaded_before: int = 0
    a_submitted_before: int = 0
    polls: int = 0

    def at(self, point: str) -> float | None:
        found = self.points.get(point)
        return None if found is None else found - self.sent

    def stages(self) -> list[float | None]:
        """Each stage's length in seconds (None when a moment is missing)."""
        lengths: list[float | None] = []
        before: float | None = self.sent
        for point, _ in STAGES:
            now = self.points.get(point)
            lengths.append(None if now is None or before is None else now - before)
            before = now
        return lengths

    @property
    def reply(self) -> float:
        replied = self.at("replied")
        assert replied is not None
        return replied


# -- the fakes' process --------------------------------------------------------------------------


def fakes(commands: Connection, processing: float, seconds: float) -> None:
    """The fakes' process: Slack and Soniox, the browser that installs the app, and the sender."""
    asyncio.run(_fakes(commands, processing, seconds))


def _timed_fakes(processing: float) -> tuple[Any, Any]:
    """A fake Slack and a fake Soniox that note when each file reached each stage."""
    from tests.fakes.slack import FakeSlack
    from tests.fakes.soniox import FakeSoniox

    class TimedSlack(FakeSlack):
        def __init__(self) -> None:
            super().__init__()
            #: Slack file id -> when its first download request arrived.
            self.download_started: dict[str, float] = {}
            #: (channel, thread ts) -> when the final reply in that thread was posted.
            self.replied: dict[tuple[str, str], float] = {}

        async def _handle_download(self, request: web.Request) -> web.StreamResponse:
            file_id = request.match_info["key"].partition("-")[2]
            self.download_started.setdefault(file_id, time.perf_counter())
            return await super()._handle_download(request)

        async def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
            answer = await super()._chat_post_message(args)
            self._note_final(answer)
            return answer

        async def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
            # A batch that took longer than PROGRESS_AFTER_SECONDS has a progress message in
            # its thread, which becomes the reply.
            answer = await super()._chat_update(args)
            self._note_final(answer)
            return answer

        def _note_final(self, answer: dict[str, Any]) -> None:
            channel, ts = str(answer.get("channel")), str(answer.get("ts"))
            message = self.message(channel, ts)
            if message is not None and message.get("thread_ts"):
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("final"):
                    key = (channel, str(message["thread_ts"]))
                    self.replied.setdefault(key, time.perf_counter())

    class TimedSoniox(FakeSoniox):
        def __init__(self) -> None:
            super().__init__(polls_until_complete=10**9)
            #: Uploaded file name -> (when its upload was answered, the Soniox file id).
            self.uploaded: dict[str, tuple[float, str]] = {}
            #: Soniox file id -> (when a transcription of it was created, the transcription id).
            self.created: dict[str, tuple[float, str]] = {}
            #: Transcription id -> the times it was seen by a poll, and when it finished.
            self.observed: dict[str, list[float]] = {}
            self.finished: dict[str, float] = {}

        async def _upload_file(self, request: web.Request) -> web.Response:
            answer = await super()._upload_file(request)
            if answer.status == 201 and answer.text is not None:
                body = json.loads(answer.text)
                self.uploaded.setdefault(body["filename"], (time.perf_counter(), body["id"]))
            return answer

        async def _create_transcription(self, request: web.Request) -> web.Response:
            answer = await super()._create_transcription(request)
            if answer.status == 201 and answer.text is not None:
                body = json.loads(answer.text)
                if body.get("file_id"):
                    self.created.setdefault(body["file_id"], (time.perf_counter(), body["id"]))
            return answer

        def _observe(self, job: Any) -> None:
            if job.public["status"] not in ("queued", "processing"):
                return
            now = time.perf_counter()
            transcription_id = job.public["id"]
            self.observed.setdefault(transcription_id, []).append(now)
            created = next(
                (at for at, tid in self.created.values() if tid == transcription_id), now
            )
            job.polls += 1
            if now - created >= processing:
                self._finish(job)
                self.finished[transcription_id] = now
            else:
                job.public["status"] = "processing"

    return TimedSlack(), TimedSoniox()


async def _fakes(commands: Connection, processing: float, seconds: float) -> None:
    from tests.fakes.slack import silent_wav

    slack, soniox = _timed_fakes(processing)
    a = slack.add_workspace(TEAM_A, channels={CHANNEL_A})
    b = slack.add_workspace(TEAM_B, channels={CHANNEL_B})
    audio = silent_wav(seconds)
    async with slack, soniox:
        commands.send(
            {
                "SLACK_CLIENT_ID": slack.client_id,
                "SLACK_CLIENT_SECRET": slack.client_secret,
                "SLACK_SIGNING_SECRET": slack.signing_secret,
                "SLACK_API_URL": slack.api_url,
                "SONIOX_API_KEY": soniox.api_key,
                "SONIOX_API_URL": soniox.api_url,
            }
        )
        loop = asyncio.get_running_loop()
        sender = Sender(slack, soniox, audio, a, b)
        while True:
            order = await loop.run_in_executor(None, commands.recv)
            if order is None:
                return
            what, *args = order
            if what == "install":
                (port,) = args
                for workspace in (a, b):
                    await install(slack, port, workspace)
                commands.send(None)
            elif what == "idle":
                url, label = args
                commands.send(await sender.idle(url, label))
            else:
                url, files, lone_after, label = args
                commands.send(await sender.flood(url, files, lone_after, label))


async def install(slack: Any, port: int, workspace: Any) -> None:
    """Install the app in ``workspace`` as a person's browser does: the install page (keeping
    its state cookie), Slack's authorize page, the redirect back with the code and state."""
    base = f"http://127.0.0.1:{port}"
    slack.redirect_urls = [f"{base}/slack/oauth_redirect"]
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{base}/slack/install")
        page.raise_for_status()
        cookie = page.headers["set-cookie"].split(";", 1)[0]
        found = re.search(r'href="([^"]*/oauth/v2/authorize[^"]*)"', page.text)
        if found is None:
            raise RuntimeError(f"no authorize link on the install page: {page.text[:500]}")
        approved = await client.get(f"{html.unescape(found[1])}&team={workspace.team_id}")
        if approved.status_code != 302:
            raise RuntimeError(f"the authorize page refused: {approved.text[:500]}")
        back = await client.get(approved.headers["location"], headers={"Cookie": cookie})
        if back.status_code != 200:
            raise RuntimeError(f"the install failed: {back.status_code} {back.text[:500]}")


class Sender:
    """Shares files as Slack delivers them, and reads each file's timeline off the fakes."""

    def __init__(self, slack: Any, soniox: Any, audio: bytes, a: Any, b: Any) -> None:
        self.slack, self.soniox, self.audio, self.a, self.b = slack, soniox, audio, a, b

    def _event(self, workspace: Any, channel: str, name: str) -> tuple[dict[str, Any], str]:
        file = self.slack.add_file(name=name, content=self.audio, workspace=workspace)
        event = self.slack.message_event(channel=channel, files=[file])
        return event, json.dumps(self.slack.event_callback(event, workspace=workspace))

    async def _post(self, client: httpx.AsyncClient, url: str, body: str) -> None:
        answer = await client.post(
            f"{url}/slack/events", content=body, headers=self.slack.signed_headers(body)
        )
        answer.raise_for_status()

    def _replied(self, channel: str, event: dict[str, Any]) -> bool:
        return (channel, event["ts"]) in self.slack.replied

    async def idle(self, url: str, label: str) -> Timeline:
        event, body = self._event(self.b, CHANNEL_B, f"lone-{label}.wav")
        async with httpx.AsyncClient(timeout=30) as client:
            timeline = Timeline(sent=time.perf_counter())
            await self._post(client, url, body)
            timeline.acked = time.perf_counter()
        await self.slack.wait_for(lambda: self._replied(CHANNEL_B, event), timeout=120)
        # Idle again only once the provider's copies are deleted, which follows the reply.
        uploaded = f"lone-{label}.wav"
        await self.soniox.wait_for(
            lambda: (
                uploaded in self.soniox.uploaded
                and self.soniox.uploaded[uploaded][1] in self.soniox.deleted_files
            ),
            timeout=60,
        )
        return self._fill(timeline, event, CHANNEL_B, uploaded)

    async def flood(
        self, url: str, files: int, lone_after: int, label: str
    ) -> tuple[Timeline, float, int]:
        """A's ``files`` messages and B's one: B's timeline, the time until all of A's were
        answered (from the first sent), and how many were."""
        floods = [self._event(self.a, CHANNEL_A, f"flood-{label}-{i}.wav") for i in range(files)]
        lone, lone_body = self._event(self.b, CHANNEL_B, f"lone-{label}.wav")
        in_flight = asyncio.Semaphore(32)
        acked = 0
        enough_acked = asyncio.Event()
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:

            async def send(body: str) -> None:
                nonlocal acked
                async with in_flight:
                    await self._post(client, url, body)
                acked += 1
                if acked >= min(lone_after, files):
                    enough_acked.set()

            started = time.perf_counter()
            burst = asyncio.gather(*(send(body) for _, body in floods))
            await enough_acked.wait()
            timeline = Timeline(sent=time.perf_counter())
            await self._post(client, url, lone_body)
            timeline.acked = time.perf_counter()
            await burst

        def all_answered() -> bool:
            return all(self._replied(CHANNEL_A, event) for event, _ in floods)

        await self.slack.wait_for(lambda: self._replied(CHANNEL_B, lone), timeout=600)
        with suppress(TimeoutError):  # reported as fewer answered
            await self.slack.wait_for(all_answered, timeout=600)
        a_done = max(
            self.slack.replied.get((CHANNEL_A, event["ts"]), started) for event, _ in floods
        )
        answered = sum(1 for event, _ in floods if self._replied(CHANNEL_A, event))
        self._fill(timeline, lone, CHANNEL_B, f"lone-{label}.wav")
        downloads = [self.slack.download_started.get(e["files"][0]["id"]) for e, _ in floods]
        lone_download = timeline.points.get("download")
        if lone_download is not None:
            timeline.a_downloaded_before = sum(
                1 for at in downloads if at is not None and at < lone_download
            )
        submitted = timeline.points.get("submitted")
        if submitted is not None:
            timeline.a_submitted_before = sum(
                1
                for _, name in ((e, f"flood-{label}-{i}.wav") for i, (e, _) in enumerate(floods))
                if (at := self._submitted_at(name)) is not None and at < submitted
            )
        return timeline, a_done - started, answered

    def _submitted_at(self, uploaded_name: str) -> float | None:
        upload = self.soniox.uploaded.get(uploaded_name)
        if upload is None:
            return None
        created = self.soniox.created.get(upload[1])
        return None if created is None else float(created[0])

    def _fill(
        self, timeline: Timeline, event: dict[str, Any], channel: str, uploaded_name: str
    ) -> Timeline:
        points = timeline.points
        download = self.slack.download_started.get(event["files"][0]["id"])
        if download is not None:
            points["download"] = download
        upload = self.soniox.uploaded.get(uploaded_name)
        if upload is not None:
            points["uploaded"] = upload[0]
            created = self.soniox.created.get(upload[1])
            if created is not None:
                points["submitted"] = created[0]
                timeline.polls = len(self.soniox.observed.get(created[1], []))
                finished = self.soniox.finished.get(created[1])
                if finished is not None:
                    points["finished"] = finished
        points["replied"] = self.slack.replied[(channel, event["ts"])]
        return timeline


# -- the benchmark's process ---------------------------------------------------------------------


@dataclass
class Run:
    backend: str
    idle: list[Timeline]
    lone: Timeline
    a_done: float
    a_answered: int
    log_warnings: int


async def _in_executor(call: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, call)


async def one_run(
    env: dict[str, str],
    workdir: Path,
    commands: Connection,
    files: int,
    lone_after: int,
    idle: int,
    label: str,
) -> tuple[list[Timeline], Timeline, float, int, int]:
    from tests.bot_process import BotProcess, free_port

    bot = BotProcess({**env, "PORT": str(free_port())}, workdir, workdir / "bot.log")
    await bot.start()
    try:

        async def ask(order: tuple[Any, ...]) -> Any:
            def exchange() -> Any:
                commands.send(order)
                return commands.recv()

            return await _in_executor(exchange)

        await ask(("install", bot.port))
        idle_times = [await ask(("idle", bot.url, f"{label}-idle-{i}")) for i in range(idle)]
        lone, a_done, answered = await ask(("flood", bot.url, files, lone_after, label))
    finally:
        await bot.terminate()
    warnings = sum(1 for line in bot.log().splitlines() if " WARNING " in line or " ERROR " in line)
    return idle_times, lone, a_done, answered, warnings


def benchmark(
    database_url: str | None,
    runs: int,
    files: int,
    lone_after: int,
    idle: int,
    processing: float,
    seconds: float,
    keep_logs: Path | None,
) -> bool:
    from tests.bot_process import clean_environment

    context = multiprocessing.get_context("spawn")
    commands, theirs = context.Pipe()
    process = context.Process(target=fakes, args=(theirs, processing, seconds))
    process.start()
    fake_env = commands.recv()
    backend = "PostgreSQL" if database_url else "SQLite"
    results: list[Run] = []
    try:
        for index in range(runs):
            with tempfile.TemporaryDirectory() as workdir:
                env = clean_environment(
                    **fake_env, DATABASE_PATH=str(Path(workdir) / "threadscribe.db")
                )
                schema = None
                if database_url:
                    schema = f"threadscribe_bench_{uuid.uuid4().hex[:12]}"
                    with psycopg.connect(database_url, autocommit=True) as admin:
                        admin.execute(f'CREATE SCHEMA "{schema}"')
                    env["DATABASE_URL"] = with_schema(database_url, schema)
                try:
                    idle_times, lone, a_done, answered, warnings = asyncio.run(
                        one_run(env, Path(workdir), commands, files, lone_after, idle, f"r{index}")
                    )
                finally:
                    if keep_logs is not None:
                        keep_logs.mkdir(parents=True, exist_ok=True)
                        log = Path(workdir) / "bot.log"
                        if log.exists():
                            (keep_logs / f"run-{index + 1}.log").write_bytes(log.read_bytes())
                    if schema is not None and database_url:
                        with psycopg.connect(database_url, autocommit=True) as admin:
                            admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
                results.append(Run(backend, idle_times, lone, a_done, answered, warnings))
    finally:
        commands.send(None)
        process.join()
    return report(results, files, lone_after, processing, seconds)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(
    results: list[Run], files: int, lone_after: int, processing: float, seconds: float
) -> bool:
    print(f"machine: {machine()}")
    print(
        f"one bot, multi-workspace mode, {results[0].backend}, default settings; "
        f"fake Soniox: {processing:g} s per transcription; files: {seconds:g} s WAV; "
        f"workspace A floods {files} files, workspace B shares 1 once {min(lone_after, files)} "
        "of A's were acknowledged"
    )
    rows = []
    ok = True
    for number, run in enumerate(results, start=1):
        idle = [timeline.reply for timeline in run.idle]
        median = statistics.median(idle)
        ratio = run.lone.reply / median
        ok = ok and ratio <= 2
        rows.append(
            [
                number,
                f"{median:.2f} s",
                f"{max(idle):.2f} s",
                f"{run.lone.reply:.2f} s",
                f"{ratio:.1f}x",
                f"{run.a_done:.1f} s",
                f"{run.a_answered}/{files}",
                run.log_warnings,
            ]
        )
    print(
        table(
            [
                "run",
                "B idle: median",
                "B idle: max",
                "B under flood",
                "vs idle median",
                f"A's {files} answered in",
                "A answered",
                "warnings logged",
            ],
            rows,
        )
    )
    print()
    print("where B's file spent its time (seconds; each stage ends at the moment named):")
    stage_rows = []
    for number, run in enumerate(results, start=1):
        for what, timelines in (("idle (median run)", run.idle), ("flood", [run.lone])):
            timeline = sorted(timelines, key=lambda t: t.reply)[len(timelines) // 2]
            stage_rows.append(
                [
                    number,
                    what,
                    *(_s(length) for length in timeline.stages()),
                    timeline.polls,
                    timeline.a_downloaded_before if what == "flood" else "",
                    timeline.a_submitted_before if what == "flood" else "",
                ]
            )
    print(
        table(
            [
                "run",
                "B's file",
                *(label for _, label in STAGES),
                "polls seen",
                "A's downloaded before",
                "A's submitted before",
            ],
            stage_rows,
        )
    )
    print(
        f"aim: B's reply under the flood within 2x its idle median, in every run -> {verdict(ok)}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=None, metavar="URL", help="PostgreSQL (default: SQLite)"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=200, help="A's files in the flood")
    parser.add_argument(
        "--lone-after",
        type=int,
        default=1,
        metavar="N",
        help="B shares its file once N of A's messages were acknowledged (1: as the burst starts)",
    )
    parser.add_argument("--idle", type=int, default=5, help="B's files on the idle bot, per run")
    parser.add_argument(
        "--processing", type=float, default=3.0, help="seconds the fake Soniox takes per file"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="each file's audio length")
    parser.add_argument("--logs", type=Path, default=None, help="keep each run's bot log here")
    args = parser.parse_args()
    ok = benchmark(
        args.database_url,
        args.runs,
        args.files,
        args.lone_after,
        args.idle,
        args.processing,
        args.seconds,
        args.logs,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
