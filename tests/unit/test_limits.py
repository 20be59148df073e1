"""Which limit applies to a file, and how a refusal reads."""

from __future__ import annotations

import httpx

from bot.limits import MIB, FileLimits, duration_text
from bot.providers.soket import SoketProvider
from bot.providers.soniox import SonioxProvider

SONIOX_BYTES = 524_288_000


def soniox() -> SonioxProvider:
    return SonioxProvider(
        httpx.AsyncClient(), api_url="http://127.0.0.1:9/v1", api_key="k", model="stt-async-v5"
    )


def soket() -> SoketProvider:
    return SoketProvider(httpx.AsyncClient(), api_url="http://127.0.0.1:9", api_token="t")


def test_the_smaller_limit_wins_and_is_the_one_named() -> None:
    above = FileLimits.of(2000 * MIB, soniox())
    assert above.max_bytes == SONIOX_BYTES
    assert above.refusal(size_bytes=600 * MIB, duration_ms=None) == (
        "This file is 600 MB; Soniox takes at most 500 MB per file. Trim or compress it and "
        "share it again."
    )
    # The default MAX_FILE_MB equals Soniox's limit: Soniox is named, as raising the setting
    # would not help.
    assert FileLimits.of(500 * MIB, soniox()).size_limited_by == "Soniox"
    below = FileLimits.of(100 * MIB, soniox())
    assert below.max_bytes == 100 * MIB
    assert below.refusal(size_bytes=101 * MIB, duration_ms=None) == (
        "This file is 101 MB; the limit of this app is 100 MB. Trim or compress it and share it "
        "again."
    )


def test_soket_sets_no_limit_of_its_own() -> None:
    limits = FileLimits.of(500 * MIB, soket())
    assert (limits.max_bytes, limits.size_limited_by, limits.max_duration_seconds) == (
        500 * MIB,
        None,
        None,
    )
    assert limits.refusal(size_bytes=500 * MIB, duration_ms=10**9) is None


def test_a_file_just_over_the_limit_is_not_said_to_be_the_limit() -> None:
    limits = FileLimits.of(2000 * MIB, soniox())
    assert limits.refusal(size_bytes=SONIOX_BYTES, duration_ms=None) is None
    assert limits.refusal(size_bytes=SONIOX_BYTES + 1, duration_ms=None) == (
        "This file is 524,288,001 bytes; Soniox takes at most 524,288,000 bytes per file. Trim "
        "or compress it and share it again."
    )


def test_durations_over_the_limit_read_as_over_it() -> None:
    limits = FileLimits.of(500 * MIB, soniox())
    assert limits.refusal(size_bytes=1, duration_ms=300 * 60 * 1000) is None
    assert limits.refusal(size_bytes=1, duration_ms=300 * 60 * 1000 + 1) == (
        "This recording is 5 h 1 min long; Soniox takes at most 300 minutes per file. Split it "
        "into shorter parts and share them again."
    )
    assert duration_text(5 * 3600 + 12 * 60) == "5 h 12 min"
    assert duration_text(45 * 60 - 1) == "45 min"


def test_a_size_found_out_by_the_download_is_said_as_over_the_limit() -> None:
    assert (
        FileLimits.of(2000 * MIB, soniox())
        .too_large(None)
        .startswith("This file is over 500 MB; Soniox takes at most 500 MB per file.")
    )
    assert (
        FileLimits.of(1 * MIB, None)
        .too_large(None)
        .startswith("This file is over 1 MB; the limit of this app is 1 MB.")
    )
