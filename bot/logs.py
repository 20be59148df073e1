"""Logging set-up. Every record passes a filter that masks the configured secrets, those learnt
while running (:data:`learned_secrets`: the tokens of the workspaces the app is installed in,
read from the database), and anything shaped like a Slack token, so a library that logs a header
or an answer at DEBUG cannot leak a token.

Two formats, one line per event either way:

* ``text`` (default): ``time LEVEL logger: message``, for people reading a terminal;
* ``json``: one JSON object per line (``time``, ``level``, ``logger``, ``message``, and
  ``exc_info`` with the traceback when there is one), for log collectors. A traceback stays inside
  its event instead of spilling over many lines that a collector would read as separate events.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, cast

MASK = "[redacted]"

LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


#: The password of a URL (``postgresql://user:password@host``), whatever its length.
_URL_PASSWORD = re.compile(r"(?<=://)([^/\s:@]*):[^@\s/]+@")
#: A password given as a setting: ``?password=…`` in a URL's query, ``password=…`` in libpq's
#: ``key=value`` form.
_PASSWORD_SETTING = re.compile(r"(?i)(?<![\w%])(password\s*=\s*)(?:'[^']*'|[^\s&'\"]+)")


#: Slack's tokens by their shape: bot, user and app-level tokens, rotating ones (``xoxe.xoxb-``)
#: and refresh tokens (``xoxe-``). Masked whether or not they are known yet: the SDK logs the
#: answer of an OAuth exchange at DEBUG before anything could learn the token in it.
_SLACK_TOKEN = re.compile(r"\b(?:xox[a-z](?:\.xox[a-z])?|xapp)-[A-Za-z0-9-]{6,}")

#: Shorter secrets are not masked: they would mask ordinary words.
MIN_SECRET_LENGTH = 6


class SecretRegistry:
    """Secrets learnt while running, which every handler's filter masks as it masks the
    configured ones: the tokens of installations, read from the database, are not settings.

    It keeps the ``limit`` most recently added: rotated tokens keep coming for as long as the
    app runs, and one that old has long expired (tokens shaped like Slack's are masked by their
    shape anyway)."""

    def __init__(self, limit: int = 10_000) -> None:
        self._limit = limit
        self._secrets: dict[str, None] = {}
        self._lock = threading.Lock()
        #: Counts up at every change, so a filter rebuilds what it masks only then.
        self.version = 0

    def add(self, *secrets: str | None) -> None:
        """Mask these from now on (None and short values are ignored)."""
        fresh = [s for s in secrets if s is not None and len(s) >= MIN_SECRET_LENGTH]
        if not fresh:
            return
        with self._lock:
            changed = False
            for secret in fresh:
                if secret in self._secrets:
                    continue
                self._secrets[secret] = None
                changed = True
            while len(self._secrets) > self._limit:
                del self._secrets[next(iter(self._secrets))]
            if changed:
                self.version += 1

    def secrets(self) -> tuple[int, list[str]]:
        """The version, and every secret kept."""
        with self._lock:
            return self.version, list(self._secrets)


#: The registry the app adds to as it learns secrets; every handler built here masks them.
learned_secrets = SecretRegistry()


class RedactSecrets(logging.Filter):
    """Masks the configured secrets (six characters or more: shorter ones would mask ordinary
    words), those in ``registry`` at the time of each record, anything shaped like a Slack
    token, the password of any URL written with one, and any ``password=`` setting."""

    def __init__(self, secrets: Iterable[str], registry: SecretRegistry | None = None) -> None:
        super().__init__()
        self._configured = {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}
        self._registry = registry
        self._version = -1
        self._secrets = self._longest_first(self._configured)

    @staticmethod
    def _longest_first(secrets: Iterable[str]) -> list[str]:
        # Longest first, so a secret containing another is masked whole.
        return sorted(set(secrets), key=len, reverse=True)

    def _current(self) -> list[str]:
        registry = self._registry
        if registry is not None and registry.version != self._version:
            version, learnt = registry.secrets()
            self._secrets = self._longest_first([*self._configured, *learnt])
            self._version = version
        return self._secrets

    def redact(self, text: str) -> str:
        for secret in self._current():
            text = text.replace(secret, MASK)
        if "xox" in text or "xapp" in text:
            text = _SLACK_TOKEN.sub(MASK, text)
        if "://" in text:
            text = _URL_PASSWORD.sub(rf"\1:{MASK}@", text)
        if "=" in text:
            text = _PASSWORD_SETTING.sub(rf"\1{MASK}", text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redact(formatted)
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        return True


class RedactedStream(io.TextIOBase):
    """A text stream that masks secrets before ``inner`` sees them: what the commands print
    (``check``, ``migrate``, ``copy-db``, ``run``'s refusals) never passes the logs' filter, and
    may quote a driver's message holding a password."""

    def __init__(self, inner: TextIO, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._inner = inner
        self._redact = redact

    def write(self, text: str, /) -> int:
        self._inner.write(self._redact(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def writable(self) -> bool:
        return True


@contextmanager
def redacted_output(secrets: Iterable[str]) -> Iterator[None]:
    """Inside, what is printed to stdout and stderr is masked as the logs are."""
    redact = RedactSecrets(secrets, learned_secrets).redact
    # print() looks the streams up at each call, so every message goes through the mask.
    out = cast(TextIO, RedactedStream(sys.stdout, redact))
    err = cast(TextIO, RedactedStream(sys.stderr, redact))
    with redirect_stdout(out), redirect_stderr(err):
        yield


class DropExpectedSchedulerNotices(logging.Filter):
    """APScheduler warns at every tick it skips because the previous poll cycle is still running.

    The scheduler is set up that way on purpose (one cycle at a time; a kick during a cycle runs
    another right after it), so under load the warning repeats every tick and buries real ones.
    Slow cycles show in the ``threadscribe_poll_cycle_duration_seconds`` metric instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "apscheduler.scheduler"
            and "maximum number of running instances reached" in str(record.msg)
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    The traceback comes from ``record.exc_text`` when the redacting filter has set it, so what is
    written is the masked text, never a fresh rendering of the exception.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        # ensure_ascii keeps every line plain ASCII whatever the message holds; a collector that
        # splits on newlines never sees a raw one inside an event.
        return json.dumps(entry, ensure_ascii=True, default=str)


def _utc_timestamp(created: float) -> str:
    """RFC 3339 in UTC with milliseconds: sorts as text and parses everywhere."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def build_handler(
    secrets: Iterable[str] = (),
    log_format: LogFormat = "text",
    stream: Any = None,
    registry: SecretRegistry | None = learned_secrets,
) -> logging.Handler:
    """A stderr handler (or ``stream``) with the chosen format and the redacting filter, which
    masks ``secrets`` and what ``registry`` learns."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.addFilter(DropExpectedSchedulerNotices())
    handler.addFilter(RedactSecrets(secrets, registry))
    return handler


def configure_logging(
    level: str, secrets: Iterable[str] = (), log_format: LogFormat = "text"
) -> None:
    handler = build_handler(secrets, log_format)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Per-request lines of the HTTP libraries are noise at INFO.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
