"""Run ``python -m bot run`` as a real process, wired to the loopback fakes.

Used by tests that kill the process and by benchmarks that measure it alone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO

import httpx

from bot.config import setting_names
from tests.fakes.slack import FakeSlack
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PROJECT_ROOT = Path(__file__).resolve().parents[1]


def clean_environment(**values: str) -> dict[str, str]:
    """This process's environment minus every setting of the app, plus ``values``: a setting
    left over in the test runner's environment must not change what the child does."""
    names = set(setting_names())
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.update(values)
    return env


async def run_cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    """Run ``python -m bot ARGS``; returns the exit code, stdout and stderr."""
    # The fakes answer from this event loop: the child is awaited, never waited on blocking.
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def bot_environment(
    workdir: Path,
    slack: FakeSlack,
    soniox: FakeSoniox | None = None,
    soket: FakeSoket | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment an operator would set, pointing at the fakes (HTTP mode)."""
    env = clean_environment()
    env.update(
        {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_API_URL": slack.api_url,
            "DATABASE_PATH": str(workdir / "threadscribe.db"),
            "POLL_INTERVAL_SECONDS": "0.2",
            "PORT": str(free_port()),
            "LOG_LEVEL": "INFO",
        }
    )
    if soniox is not None:
        env.update({"SONIOX_API_KEY": soniox.api_key, "SONIOX_API_URL": soniox.api_url})
    if soket is not None:
        env.update({"SOKET_API_TOKEN": soket.token, "SOKET_API_URL": soket.api_url})
    env.update(extra)
    return env


class BotProcess:
    """One ``python -m bot run`` process; its stderr goes to ``log_path``."""

    def __init__(self, env: dict[str, str], workdir: Path, log_path: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.log_path = log_path
        self.port = int(env["PORT"])
        self.process: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            env=self.env,
            cwd=self.workdir,
            stdout=self._log,
            stderr=self._log,
        )
        await self.wait_healthy()

    async def wait_healthy(self, timeout: float = 20.0) -> None:
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with httpx.AsyncClient() as client:
            while loop.time() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"the bot exited: {self.log_path.read_text()[-2000:]}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("the bot did not become healthy")

    async def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a machine dies."""
        await self._signal_and_wait(signal.SIGKILL)

    async def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait for the exit; returns the exit code."""
        return await self._signal_and_wait(signal.SIGTERM, timeout)

    async def _signal_and_wait(self, signum: int, timeout: float = 10.0) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signum)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            if self._log is not None:
                self._log.close()
                self._log = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def run_again(
    env: dict[str, str], workdir: Path, until: Callable[[], Awaitable[object]]
) -> BotProcess:
    """A second ``python -m bot run`` on the same database, as after a crash: started, left to
    run until ``until()`` returns, then stopped with SIGTERM. Returned for its log."""
    second = BotProcess(env, workdir, workdir / "second.log")
    await second.start()
    try:
        await until()
    finally:
        await second.terminate()
    return second
