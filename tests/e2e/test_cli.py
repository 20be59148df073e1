"""``python -m bot transcribe`` run as an operator runs it: a separate process, configured by its
environment, talking to the loopback fakes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bot.config import Settings
from tests.fakes.slack import silent_wav
from tests.fakes.soket import FakeSoket

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def cli_environment(**values: str) -> dict[str, str]:
    """This process's environment minus every setting of the app, plus ``values``.

    A setting left over in the test runner's environment must not change what the command does.
    """
    settings = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in settings}
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if part
    )
    env.update(values)
    return env


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    # The fakes run in this event loop: wait for the child without blocking it.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_transcribe_a_file_with_soket(fake_soket: FakeSoket, tmp_path: Path) -> None:
    fake_soket.estimated_completion_seconds = 0.1
    fake_soket.polls_until_complete = 2
    audio = tmp_path / "memo.wav"
    audio.write_bytes(silent_wav())
    env = cli_environment(
        SOKET_API_TOKEN=fake_soket.token,
        SOKET_API_URL=fake_soket.api_url,
        POLL_INTERVAL_SECONDS="0.1",
        TRANSCRIBE_PROVIDER="soket",
    )

    code, stdout, stderr = await run_cli(
        "transcribe", str(audio), "--provider", "soket", env=env, cwd=tmp_path
    )

    assert code == 0, stderr
    assert "Speaker 1 [00:00]: Hello from memo.wav." in stdout
    assert "Speaker 2" in stdout
    assert len(fake_soket.requests_to(r"/files/upload$", "POST")) == 1
    assert len(fake_soket.batch_bodies) == 1
    # The command leaves nothing behind at Soket.
    assert len(fake_soket.deleted_files) == 1 and not fake_soket.files
    assert fake_soket.token not in stderr


async def test_transcribe_with_a_wrong_soket_token_says_so(
    fake_soket: FakeSoket, tmp_path: Path
) -> None:
    audio = tmp_path / "memo.wav"
    audio.write_bytes(silent_wav())
    env = cli_environment(
        SOKET_API_TOKEN="wrong-soket-token",
        SOKET_API_URL=fake_soket.api_url,
        POLL_INTERVAL_SECONDS="0.1",
        TRANSCRIBE_PROVIDER="soket",
    )

    code, stdout, stderr = await run_cli("transcribe", str(audio), env=env, cwd=tmp_path)

    assert code == 1
    assert stdout == ""
    assert "SOKET_API_TOKEN" in stderr
    assert "wrong-soket-token" not in stderr
