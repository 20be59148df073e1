"""Logging set-up. Every record passes a filter that masks the configured secrets, so a library
that logs a header at DEBUG cannot leak a token."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

MASK = "[redacted]"


class RedactSecrets(logging.Filter):
    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(formatted)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        return True


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Per-request lines of the HTTP libraries are noise at INFO.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
