"""The database as an operator meets it, with real processes: SQLite refusing a second process,
``check`` and ``migrate`` beside a running bot, a schema newer than the code, ``migrate``, and
moving from SQLite to PostgreSQL with ``copy-db``."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg

from storage.sqlite.migrations import MIGRATIONS
from tests.bot_process import BotProcess, bot_environment, free_port, run_cli
from tests.conftest import environment_of, final_replies, on_both_backends
from tests.e2e.test_process import post_event
from tests.fakes.slack import FakeSlack, silent_wav
from tests.fakes.soniox import FakeSoniox
from tests.postgres import TestSchema

#: The password the tests put in DATABASE_URL. The test server trusts its clients and never asks
#: for it, which lets the tests check that it shows nowhere.
PASSWORD = "pg-pass-7e1d"


def with_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


async def run_expecting_exit(env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """``python -m bot run``, which is to refuse to start: its exit code and stderr. One that
    starts instead is stopped, and the test fails."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("the second process started instead of refusing") from None
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_a_second_process_on_one_sqlite_database_refuses_to_start(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    env = bot_environment(tmp_path, fake_slack, fake_soniox)
    first = BotProcess(env, tmp_path, tmp_path / "first.log")
    await first.start()
    try:
        code, stderr = await run_expecting_exit({**env, "PORT": str(free_port())}, tmp_path)
        assert code == 1
        assert stderr.startswith("threadscribe cannot start: another threadscribe process (pid ")
        assert first.process is not None and f"(pid {first.process.pid})" in stderr
        assert str(tmp_path / "threadscribe.db") in stderr
        assert "DATABASE_URL=postgresql://" in stderr

        # The first goes on alone, and answers once.
        event = fake_slack.message_event(files=[fake_slack.add_file(content=silent_wav())])
        await post_event(fake_slack, first, event)
        await fake_slack.wait_for(lambda: final_replies(fake_slack, event), timeout=20)
        assert len(fake_soniox.create_bodies) == 1
    finally:
        await first.terminate()

    # Once it has stopped, the next one starts.
    again = BotProcess({**env, "PORT": str(free_port())}, tmp_path, tmp_path / "again.log")
    await again.start()
    await again.terminate()


async def test_check_and_migrate_work_beside_a_running_bot(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    env = bot_environment(tmp_path, fake_slack, fake_soniox)
    bot = BotProcess(env, tmp_path, tmp_path / "bot.log")
    await bot.start()
    try:
        code, out, err = await run_cli("check", env=env, cwd=tmp_path)
        assert code == 0, err
        assert "Database: OK (SQLite at " in out and "in use by the running bot)" in out

        code, out, err = await run_cli("migrate", env=env, cwd=tmp_path)
        assert code == 0, err
        assert out.strip().endswith(f"already at schema version {len(MIGRATIONS)}")

        schema = TestSchema()
        code, out, err = await run_cli("copy-db", "--to", schema.url, env=env, cwd=tmp_path)
        assert code == 1 and "Nothing copied" in err and "already running" in err
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{bot.url}/healthz")).status_code == 200
    finally:
        await bot.terminate()


async def test_a_postgresql_out_of_reach_stops_the_start_with_its_reason(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    url = f"postgresql://bot:{PASSWORD}@127.0.0.1:{free_port()}/threadscribe"
    env = bot_environment(tmp_path, fake_slack, fake_soniox, DATABASE_URL=url)
    code, stderr = await run_expecting_exit(env, tmp_path)
    assert code == 1, stderr
    assert stderr.startswith("threadscribe cannot start: OperationalError: connection failed")
    assert "127.0.0.1" in stderr and PASSWORD not in stderr
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 1
    assert "the database (PostgreSQL at postgresql://bot:[redacted]@127.0.0.1:" in err
    assert "check DATABASE_URL" in err and PASSWORD not in out + err


@on_both_backends
async def test_migrate_applies_the_migrations_once_then_a_newer_schema_is_refused(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, database: dict[str, str]
) -> None:
    env = {**bot_environment(tmp_path, fake_slack, fake_soniox), **environment_of(database)}
    code, out, err = await run_cli("migrate", env=env, cwd=tmp_path)
    assert code == 0, err
    head, _, version_text = out.strip().rpartition(" ")
    assert head.endswith(": migrated from schema version 0 to")
    version = int(version_text)
    code, again, err = await run_cli("migrate", env=env, cwd=tmp_path)
    assert code == 0, err
    assert again.strip().endswith(f"already at schema version {version}")

    await _as_if_migrated_by_a_newer_version(tmp_path, database, version + 1)
    code, stderr = await run_expecting_exit(env, tmp_path)
    assert code == 1, stderr
    assert stderr.startswith("threadscribe cannot start: the ")
    assert f"is at schema version {version + 1}" in stderr
    assert f"knows versions up to {version}: a newer threadscribe migrated it" in stderr
    code, _, err = await run_cli("migrate", env=env, cwd=tmp_path)
    assert code == 1 and f"schema version {version + 1}" in err


async def _as_if_migrated_by_a_newer_version(
    workdir: Path, database: dict[str, str], version: int
) -> None:
    if "database_url" in database:
        async with await psycopg.AsyncConnection.connect(
            database["database_url"], autocommit=True
        ) as db:
            await db.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
        return
    with sqlite3.connect(workdir / "threadscribe.db") as db:
        db.execute(f"PRAGMA user_version = {version}")
    db.close()


async def test_copy_db_moves_work_in_flight_to_postgresql_which_finishes_it_once(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    env = bot_environment(tmp_path, fake_slack, fake_soniox)
    schema = TestSchema()
    target = with_password(await schema.create())
    try:
        events = await _work_left_in_flight_on_sqlite(env, tmp_path, fake_slack, fake_soniox)

        code, out, err = await run_cli("copy-db", "--to", target, env=env, cwd=tmp_path)
        assert code == 0, err
        assert "batches: 3 in SQLite, 3 in PostgreSQL" in out
        assert "jobs: 3 in SQLite, 3 in PostgreSQL" in out
        assert "channel_settings: 0 in SQLite, 0 in PostgreSQL" in out
        code, _, refused = await run_cli("copy-db", "--to", target, env=env, cwd=tmp_path)
        assert code == 1 and "already holds rows (3 batches, 3 jobs" in refused
        assert "--replace" in refused
        code, again, err = await run_cli(
            "copy-db", "--to", target, "--replace", env=env, cwd=tmp_path
        )
        assert code == 0, err

        fake_soniox.polls_until_complete = 0
        moved = {**env, "DATABASE_URL": target, "LOG_LEVEL": "DEBUG"}
        shown = await _finish_on_postgresql(moved, tmp_path, fake_slack, events)
        for event in events:
            assert len(final_replies(fake_slack, event)) == 1, "each answered once"
        assert len(fake_soniox.requests_to(r"^/v1/files$", "POST")) == 3, "no second upload"
        assert len(fake_soniox.create_bodies) == 3, "no second transcription"
        assert len(fake_slack.downloads) == 3, "no second download"
        for text in (out, again, refused, *shown):
            assert PASSWORD not in text
    finally:
        await schema.drop()


async def _work_left_in_flight_on_sqlite(
    env: dict[str, str], workdir: Path, slack: FakeSlack, soniox: FakeSoniox
) -> list[dict[str, Any]]:
    """One message answered, then two whose transcriptions are running when the bot stops."""
    bot = BotProcess(env, workdir, workdir / "sqlite.log")
    await bot.start()
    try:
        done = slack.message_event(files=[slack.add_file(name="a.wav", content=silent_wav())])
        await post_event(slack, bot, done)
        await slack.wait_for(lambda: final_replies(slack, done), timeout=20)
        soniox.polls_until_complete = 10**6
        events = [
            slack.message_event(files=[slack.add_file(name=f"{n}.wav", content=silent_wav())])
            for n in ("b", "c")
        ]
        for event in events:
            await post_event(slack, bot, event)
        await soniox.wait_for(lambda: len(soniox.create_bodies) == 3)
    finally:
        await bot.terminate()
    assert all(final_replies(slack, event) == [] for event in events)
    return events


async def _finish_on_postgresql(
    env: dict[str, str], workdir: Path, slack: FakeSlack, events: list[dict[str, Any]]
) -> list[str]:
    """Start the bot on PostgreSQL until it has answered ``events``; what it showed."""
    code, checked, err = await run_cli("check", env=env, cwd=workdir)
    assert code == 0, err
    assert "Database: OK (PostgreSQL at postgresql://postgres:[redacted]@127.0.0.1:" in checked
    bot = BotProcess(env, workdir, workdir / "postgres.log")
    await bot.start()
    try:
        await slack.wait_for(lambda: all(final_replies(slack, e) for e in events), timeout=20)
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"{bot.url}/healthz")).text
        assert '"backend": "postgresql"' in health
    finally:
        await bot.terminate()
    return [checked, err, health, bot.log()]


async def test_the_password_shows_nowhere_however_the_url_holds_it(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    schema = TestSchema()
    url = await schema.create()  # in the test schema: ?options=-csearch_path%3D…
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port or 5432}"
    secret = "pg?pass#7e1d"
    base = bot_environment(tmp_path, fake_slack, fake_soniox)
    code, _, err = await run_cli("migrate", env=base, cwd=tmp_path)  # the SQLite to copy
    assert code == 0, err
    try:
        # libpq reads both: the password unescaped in the user part, or in the query.
        in_user = f"postgresql://postgres:{secret}@{host}{parts.path}?{parts.query}"
        in_query = f"{url}&password={secret.replace('#', '%23')}"
        shown = []
        for command, written in (("migrate", in_user), ("check", in_user), ("migrate", in_query)):
            code, out, err = await run_cli(
                command, env={**base, "DATABASE_URL": written}, cwd=tmp_path
            )
            assert code == 0, err
            shown.append(out + err)
        code, out, err = await run_cli("copy-db", "--to", in_query, env=base, cwd=tmp_path)
        assert code == 0, err
        shown.append(out + err)
        for text in shown:
            assert "[redacted]" in text and "7e1d" not in text

        # libpq would misread these, and say so quoting them: refused before it sees them.
        upper = f"POSTGRESQL://postgres:pg-pass-7e1d@{host}/test"
        spaced = f"postgresql://postgres:pg pass-7e1d@{host}/test"
        for command, written, reason in (
            ("migrate", upper, "lowercase"),
            ("run", upper, "lowercase"),
            ("check", spaced, "percent-encode"),
        ):
            code, out, err = await run_cli(
                command, env={**base, "DATABASE_URL": written}, cwd=tmp_path
            )
            assert code == 2 and reason in err, err
            assert "7e1d" not in out + err
        code, out, err = await run_cli("copy-db", "--to", upper, env=base, cwd=tmp_path)
        assert code == 2 and "lowercase" in err and "7e1d" not in out + err
    finally:
        await schema.drop()


async def test_copy_db_refuses_a_sqlite_database_that_is_not_there(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    missing = tmp_path / "data" / "threadscribe.db"  # DATABASE_PATH mistyped, say
    env = bot_environment(tmp_path, fake_slack, fake_soniox, DATABASE_PATH=str(missing))
    schema = TestSchema()
    target = await schema.create()
    try:
        code, out, err = await run_cli("copy-db", "--to", target, env=env, cwd=tmp_path)
    finally:
        await schema.drop()
    assert code == 1, out + err
    assert f"Nothing copied: there is no SQLite database at {missing}" in err
    assert "DATABASE_PATH" in err
    assert not missing.parent.exists(), "nothing created in its place"


async def test_copy_db_refuses_a_source_column_the_target_lacks(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox
) -> None:
    env = bot_environment(tmp_path, fake_slack, fake_soniox)
    code, _, err = await run_cli("migrate", env=env, cwd=tmp_path)
    assert code == 0, err
    with sqlite3.connect(tmp_path / "threadscribe.db") as db:
        db.execute("ALTER TABLE jobs ADD COLUMN archived_note TEXT")
    db.close()
    schema = TestSchema()
    target = await schema.create()
    try:
        code, out, err = await run_cli("copy-db", "--to", target, env=env, cwd=tmp_path)
        assert code == 1, out + err
        assert (
            "Nothing copied: the SQLite database has columns the PostgreSQL database lacks" in err
        )
        assert "(jobs.archived_note)" in err
    finally:
        await schema.drop()


@on_both_backends
async def test_check_changes_no_schema_and_reports_a_pending_migration(
    tmp_path: Path, fake_slack: FakeSlack, fake_soniox: FakeSoniox, database: dict[str, str]
) -> None:
    # On PostgreSQL, replicas of the older version may be running on the database meanwhile.
    env = {**bot_environment(tmp_path, fake_slack, fake_soniox), **environment_of(database)}
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 0, err
    assert "Database: OK (" in out
    assert "is at schema version 0 and this threadscribe expects" in out
    assert "the bot migrates it when it starts" in out

    code, out, err = await run_cli("migrate", env=env, cwd=tmp_path)
    assert code == 0, err
    assert ": migrated from schema version 0 to" in out, "check left it as it was"
    code, out, err = await run_cli("check", env=env, cwd=tmp_path)
    assert code == 0 and "schema version" not in out, err
