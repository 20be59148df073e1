"""How large a file and how long a recording may be, refused before a byte is downloaded.

``MAX_FILE_MB`` is this app's own limit. A provider may take less whatever it says (its
``max_file_bytes`` and ``max_duration_seconds``): the smaller limit wins, and a reply names the
one that refused the file. Slack's file object gives the size, and for clips and many media files
the duration (``duration_ms``), so a file over a limit is answered at intake, or once ``files.info``
has described a Slack Connect stub, and the download stops at the same size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.messages import failures
from bot.providers.base import Provider

MIB = 1024 * 1024


@dataclass(frozen=True)
class FileLimits:
    max_bytes: int
    #: The provider whose own limit ``max_bytes`` is, by display name; None: this app's.
    size_limited_by: str | None = None
    max_duration_seconds: float | None = None
    #: The provider whose limit ``max_duration_seconds`` is, by display name.
    provider: str = ""

    @classmethod
    def of(cls, app_max_bytes: int, provider: Provider | None) -> FileLimits:
        """The limits of a job for ``provider`` (None when it is not configured)."""
        if provider is None:
            return cls(max_bytes=app_max_bytes)
        provider_bytes = provider.max_file_bytes
        # At equal limits the provider's is named: raising MAX_FILE_MB would not get past it.
        by_provider = provider_bytes is not None and provider_bytes <= app_max_bytes
        return cls(
            max_bytes=provider_bytes
            if provider_bytes is not None and by_provider
            else app_max_bytes,
            size_limited_by=provider.display_name if by_provider else None,
            max_duration_seconds=provider.max_duration_seconds,
            provider=provider.display_name,
        )

    def refusal(self, *, size_bytes: int | None, duration_ms: int | None) -> str | None:
        """Why a file of this size and duration is refused, in words for its thread; or None."""
        if size_bytes is not None and size_bytes > self.max_bytes:
            return self.too_large(size_bytes)
        limit = self.max_duration_seconds
        if duration_ms is not None and limit is not None and duration_ms > limit * 1000:
            return failures.too_long(duration_text(duration_ms / 1000), self.provider, limit / 60)
        return None

    def too_large(self, size_bytes: int | None) -> str:
        """The reply for a file over ``max_bytes``; ``None`` when only a download found it out."""
        limit = megabytes(self.max_bytes)
        if size_bytes is None:
            size = f"over {limit}"
        elif megabytes(size_bytes) == limit:
            # "500 MB; at most 500 MB" would read as no reason at all.
            size, limit = f"{size_bytes:,} bytes", f"{self.max_bytes:,} bytes"
        else:
            size = megabytes(size_bytes)
        return failures.too_large(size, limit, self.size_limited_by)


def megabytes(size_bytes: int) -> str:
    return f"{size_bytes / MIB:,.0f} MB"


def duration_text(seconds: float) -> str:
    """``5 h 12 min``, ``45 min``: rounded up, so a recording just over a limit reads as over."""
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"
