"""``python -m bot transcribe`` run as an operator runs it: a separate process, configured by its
environment, talking to the loopback fakes."""

from __future__ import annotations

from pathlib import Path

from tests.bot_process import clean_environment, run_cli
from tests.fakes.slack import silent_wav
from tests.fakes.soket import FakeSoket
from tests.fakes.soniox import FakeSoniox

MIB = 1024 * 1024


def sparse_file(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no room on disk: only its size matters here."""
    with path.open("wb") as file:
        file.truncate(size)
    return path


async def test_transcribe_a_file_with_soket(fake_soket: FakeSoket, tmp_path: Path) -> None:
    fake_soket.estimated_completion_seconds = 0.1
    fake_soket.polls_until_complete = 2
    audio = tmp_path / "memo.wav"
    audio.write_bytes(silent_wav())
    env = clean_environment(
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
    env = clean_environment(
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


async def test_transcribe_refuses_a_file_soniox_would_refuse_before_uploading_it(
    fake_soniox: FakeSoniox, tmp_path: Path
) -> None:
    audio = sparse_file(tmp_path / "webinar.wav", 600 * MIB)
    env = clean_environment(
        SONIOX_API_KEY=fake_soniox.api_key,
        SONIOX_API_URL=fake_soniox.api_url,
        MAX_FILE_MB="2000",
    )

    code, stdout, stderr = await run_cli("transcribe", str(audio), env=env, cwd=tmp_path)

    assert code == 1 and stdout == ""
    assert "This file is 600 MB; Soniox takes at most 500 MB per file." in stderr
    assert fake_soniox.requests == []


async def test_transcribe_refuses_a_file_over_max_file_mb(
    fake_soket: FakeSoket, tmp_path: Path
) -> None:
    audio = sparse_file(tmp_path / "memo.wav", 3 * MIB)
    env = clean_environment(
        SOKET_API_TOKEN=fake_soket.token,
        SOKET_API_URL=fake_soket.api_url,
        TRANSCRIBE_PROVIDER="soket",
        MAX_FILE_MB="1",
    )

    code, stdout, stderr = await run_cli("transcribe", str(audio), env=env, cwd=tmp_path)

    assert code == 1 and stdout == ""
    assert "This file is 3 MB; the limit of this app is 1 MB." in stderr
    assert fake_soket.requests == []
